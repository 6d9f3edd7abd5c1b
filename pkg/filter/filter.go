package filter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// ParseFilters parses the hubble-export-allowlist / -denylist syntax exactly as
// Cilium's hubble.ParseFlowFilters does: a stream of JSON objects, each decoded
// through FlowFilter's protojson UnmarshalJSON (proto or camelCase keys, enums
// by name or number, unknown keys rejected). A JSON array or comma-separated
// objects are rejected, as Cilium rejects them. "" gives no filters.
func ParseFilters(s string) ([]*flowpb.FlowFilter, error) {
	var out []*flowpb.FlowFilter
	dec := json.NewDecoder(strings.NewReader(s))
	for i := 0; ; i++ {
		var ff flowpb.FlowFilter
		err := dec.Decode(&ff)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("filter #%d (byte %d): %w", i, dec.InputOffset(), err)
		}
		out = append(out, &ff)
	}
}

// pred is one compiled field test; it must give Cilium's answer for f == nil
// (a non-flow event).
type pred func(f *flowpb.Flow) bool

type compiled struct {
	preds []pred
	// eventTypes is the filter's event_type list, evaluated separately for
	// non-flow events (Cilium's rules differ by event kind).
	eventTypes []*flowpb.EventTypeFilter
	hasCEL     bool
	fields     flow.FieldSet
}

// Program is a compiled allow/deny pair. It is immutable and safe for
// concurrent use.
type Program struct {
	allow, deny []compiled
	fields      flow.FieldSet
}

// Compile compiles allow and deny filter lists with Cilium v1.18.4's
// semantics. Errors name the list, the filter's index and the field.
func Compile(allow, deny []*flowpb.FlowFilter) (*Program, error) {
	p := &Program{}
	for i, ff := range allow {
		c, err := compileOne(ff)
		if err != nil {
			return nil, fmt.Errorf("allowlist filter #%d: %w", i, err)
		}
		p.allow = append(p.allow, c)
		p.fields = p.fields.Union(c.fields)
	}
	for i, ff := range deny {
		c, err := compileOne(ff)
		if err != nil {
			return nil, fmt.Errorf("denylist filter #%d: %w", i, err)
		}
		p.deny = append(p.deny, c)
		p.fields = p.fields.Union(c.fields)
	}
	return p, nil
}

// Fields reports the Flow fields the program reads.
func (p *Program) Fields() flow.FieldSet { return p.fields }

// MatchFlow reports whether a flow is exported: allow.MatchOne && deny.MatchNone.
func (p *Program) MatchFlow(f *flowpb.Flow) bool {
	if len(p.allow) > 0 {
		ok := false
		for i := range p.allow {
			if p.allow[i].matchFlow(f) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for i := range p.deny {
		if p.deny[i].matchFlow(f) {
			return false
		}
	}
	return true
}

// MatchNonFlow gives Cilium's answer for a *flowpb.LostEvent, *flowpb.AgentEvent
// or *flowpb.DebugEvent.
func (p *Program) MatchNonFlow(ev proto.Message) bool {
	if len(p.allow) > 0 {
		ok := false
		for i := range p.allow {
			if p.allow[i].matchNonFlow(ev) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for i := range p.deny {
		if p.deny[i].matchNonFlow(ev) {
			return false
		}
	}
	return true
}

func (c *compiled) matchFlow(f *flowpb.Flow) bool {
	for _, t := range c.preds {
		if !t(f) {
			return false
		}
	}
	return true
}

func (c *compiled) matchNonFlow(ev proto.Message) bool {
	if c.eventTypes != nil && !eventTypeNonFlow(c.eventTypes, ev) {
		return false
	}
	for _, t := range c.preds {
		if !t(nil) {
			return false
		}
	}
	return true
}

// Monitor message types (pkg/monitor/api).
const (
	messageTypeDebug     = 2
	messageTypeAccessLog = 129
	messageTypeAgent     = 130
)

func eventTypeNonFlow(types []*flowpb.EventTypeFilter, ev proto.Message) bool {
	var want, sub int32
	switch e := ev.(type) {
	case *flowpb.LostEvent:
		return true // Cilium: lost events always pass event_type filters
	case *flowpb.AgentEvent:
		want, sub = messageTypeAgent, int32(e.GetType())
	case *flowpb.DebugEvent:
		want, sub = messageTypeDebug, int32(e.GetType())
	default:
		return false
	}
	for _, t := range types {
		if t.GetType() != 0 && t.GetType() != want {
			continue
		}
		if t.GetMatchSubType() && t.GetSubType() != sub {
			continue
		}
		return true
	}
	return false
}

// compileOne builds one FlowFilter's tests. The order of tests does not
// change results (they are pure); cheap ones go first.
func compileOne(ff *flowpb.FlowFilter) (compiled, error) {
	var c compiled
	var cheap, costly []pred
	use := func(paths ...string) { c.fields = c.fields.Union(flow.Fields(paths...)) }

	if ids := ff.GetUuid(); len(ids) > 0 {
		use("uuid")
		cheap = append(cheap, func(f *flowpb.Flow) bool { return f != nil && slices.Contains(ids, f.GetUuid()) })
	}
	if types := ff.GetEventType(); types != nil {
		use("event_type")
		c.eventTypes = types
		cheap = append(cheap, func(f *flowpb.Flow) bool {
			if f == nil {
				return true // decided by eventTypeNonFlow
			}
			et := f.GetEventType()
			if et == nil {
				return false
			}
			for _, t := range types {
				if t.GetType() != 0 && et.Type != t.GetType() {
					continue
				}
				if t.GetMatchSubType() && t.GetSubType() != et.SubType {
					continue
				}
				return true
			}
			return false
		})
	}
	if vs := ff.GetVerdict(); vs != nil {
		use("verdict")
		cheap = append(cheap, func(f *flowpb.Flow) bool { return f != nil && slices.Contains(vs, f.GetVerdict()) })
	}
	if drs := ff.GetDropReasonDesc(); drs != nil {
		use("verdict", "drop_reason_desc")
		cheap = append(cheap, func(f *flowpb.Flow) bool {
			return f != nil && f.GetVerdict() == flowpb.Verdict_DROPPED && slices.Contains(drs, f.GetDropReasonDesc())
		})
	}
	if rs := ff.GetReply(); rs != nil {
		use("is_reply", "verdict")
		cheap = append(cheap, func(f *flowpb.Flow) bool {
			if len(rs) == 0 {
				return true
			}
			if f == nil {
				return false
			}
			if f.GetIsReply() == nil && f.GetVerdict() != flowpb.Verdict_DROPPED {
				return false
			}
			return slices.Contains(rs, f.GetIsReply().GetValue())
		})
	}
	if ids := ff.GetSourceIdentity(); ids != nil {
		use("source.identity")
		cheap = append(cheap, func(f *flowpb.Flow) bool {
			ep := f.GetSource()
			return ep != nil && slices.Contains(ids, ep.Identity)
		})
	}
	if ids := ff.GetDestinationIdentity(); ids != nil {
		use("destination.identity")
		cheap = append(cheap, func(f *flowpb.Flow) bool {
			ep := f.GetDestination()
			return ep != nil && slices.Contains(ids, ep.Identity)
		})
	}
	if ps := ff.GetProtocol(); ps != nil {
		t, err := protocolPred(ps)
		if err != nil {
			return c, fmt.Errorf("protocol: invalid protocol filter: %w", err)
		}
		use("l4", "l7.dns", "l7.http", "l7.kafka")
		cheap = append(cheap, t)
	}
	for _, ipf := range []struct {
		name, path string
		vals       []string
		get        func(*flowpb.Flow) string
	}{
		{"source_ip", "IP.source", ff.GetSourceIp(), func(f *flowpb.Flow) string { return f.GetIP().GetSource() }},
		{"destination_ip", "IP.destination", ff.GetDestinationIp(), func(f *flowpb.Flow) string { return f.GetIP().GetDestination() }},
		{"source_ip_xlated", "IP.source_xlated", ff.GetSourceIpXlated(), func(f *flowpb.Flow) string { return f.GetIP().GetSourceXlated() }},
	} {
		if ipf.vals == nil {
			continue
		}
		t, err := ipPred(ipf.vals, ipf.get)
		if err != nil {
			return c, fmt.Errorf("%s: %w", ipf.name, err)
		}
		use(ipf.path)
		cheap = append(cheap, t)
	}
	for _, nf := range []struct {
		name  string
		paths []string
		vals  []string
		get   func(*flowpb.Flow) (string, string)
	}{
		{"source_pod", []string{"source.namespace", "source.pod_name"}, ff.GetSourcePod(), func(f *flowpb.Flow) (string, string) {
			ep := f.GetSource()
			return ep.GetNamespace(), ep.GetPodName()
		}},
		{"destination_pod", []string{"destination.namespace", "destination.pod_name"}, ff.GetDestinationPod(), func(f *flowpb.Flow) (string, string) {
			ep := f.GetDestination()
			return ep.GetNamespace(), ep.GetPodName()
		}},
		{"source_service", []string{"source_service"}, ff.GetSourceService(), func(f *flowpb.Flow) (string, string) {
			s := f.GetSourceService()
			return s.GetNamespace(), s.GetName()
		}},
		{"destination_service", []string{"destination_service"}, ff.GetDestinationService(), func(f *flowpb.Flow) (string, string) {
			s := f.GetDestinationService()
			return s.GetNamespace(), s.GetName()
		}},
	} {
		if nf.vals == nil {
			continue
		}
		t, err := namespacedNamePred(nf.vals, nf.get)
		if err != nil {
			return c, fmt.Errorf("%s: %w", nf.name, err)
		}
		use(nf.paths...)
		cheap = append(cheap, t)
	}
	if wf := ff.GetSourceWorkload(); len(wf) > 0 {
		use("source.workloads")
		cheap = append(cheap, workloadPred(wf, func(f *flowpb.Flow) []*flowpb.Workload { return f.GetSource().GetWorkloads() }))
	}
	if wf := ff.GetDestinationWorkload(); len(wf) > 0 {
		use("destination.workloads")
		cheap = append(cheap, workloadPred(wf, func(f *flowpb.Flow) []*flowpb.Workload { return f.GetDestination().GetWorkloads() }))
	}
	if pats := ff.GetSourceFqdn(); pats != nil {
		re, err := compileFQDNPattern(pats)
		if err != nil {
			return c, fmt.Errorf("source_fqdn: %w", err)
		}
		use("source_names")
		costly = append(costly, func(f *flowpb.Flow) bool { return slices.ContainsFunc(f.GetSourceNames(), re.MatchString) })
	}
	if pats := ff.GetDestinationFqdn(); pats != nil {
		re, err := compileFQDNPattern(pats)
		if err != nil {
			return c, fmt.Errorf("destination_fqdn: %w", err)
		}
		use("destination_names")
		costly = append(costly, func(f *flowpb.Flow) bool { return slices.ContainsFunc(f.GetDestinationNames(), re.MatchString) })
	}
	if qs := ff.GetDnsQuery(); qs != nil {
		res := make([]*regexp.Regexp, 0, len(qs))
		for _, q := range qs {
			re, err := regexp.Compile(q)
			if err != nil {
				return c, fmt.Errorf("dns_query: invalid DNS query filter: failed to compile regexp: %w", err)
			}
			res = append(res, re)
		}
		use("l7.dns.query")
		costly = append(costly, func(f *flowpb.Flow) bool {
			dns := f.GetL7().GetDns()
			if dns == nil {
				return false
			}
			for _, re := range res {
				if re.MatchString(dns.Query) {
					return true
				}
			}
			return false
		})
	}
	for _, lf := range []struct {
		name, path string
		sels       []string
		get        func(*flowpb.Flow) []string
	}{
		{"source_label", "source.labels", ff.GetSourceLabel(), func(f *flowpb.Flow) []string { return f.GetSource().GetLabels() }},
		{"destination_label", "destination.labels", ff.GetDestinationLabel(), func(f *flowpb.Flow) []string { return f.GetDestination().GetLabels() }},
		{"node_labels", "node_labels", ff.GetNodeLabels(), func(f *flowpb.Flow) []string { return f.GetNodeLabels() }},
	} {
		if lf.sels == nil {
			continue
		}
		t, err := labelPred(lf.sels, lf.get)
		if err != nil {
			return c, fmt.Errorf("%s: %w", lf.name, err)
		}
		use(lf.path)
		costly = append(costly, t)
	}
	if ps := ff.GetSourcePort(); ps != nil {
		t, err := portPred(ps, sourcePort)
		if err != nil {
			return c, fmt.Errorf("source_port: invalid source port filter: %w", err)
		}
		use("l4")
		cheap = append(cheap, t)
	}
	if ps := ff.GetDestinationPort(); ps != nil {
		t, err := portPred(ps, destinationPort)
		if err != nil {
			return c, fmt.Errorf("destination_port: invalid destination port filter: %w", err)
		}
		use("l4")
		cheap = append(cheap, t)
	}
	httpT, err := httpPreds(ff)
	if err != nil {
		return c, err
	}
	if len(httpT) > 0 {
		use("l7.http")
		costly = append(costly, httpT...)
	}
	if flags := ff.GetTcpFlags(); flags != nil {
		use("l4.TCP.flags")
		cheap = append(cheap, tcpFlagsPred(flags))
	}
	if names := ff.GetNodeName(); names != nil {
		re, err := compileNodeNamePattern(names)
		if err != nil {
			return c, fmt.Errorf("node_name: %w", err)
		}
		use("node_name")
		costly = append(costly, func(f *flowpb.Flow) bool {
			name := f.GetNodeName()
			if name == "" {
				return false
			}
			if strings.IndexByte(name, '/') < 0 {
				return re.MatchString("default/" + name)
			}
			return re.MatchString(name)
		})
	}
	for _, cf := range []struct {
		name, path string
		vals       []string
		get        func(*flowpb.Flow) string
	}{
		{"source_cluster_name", "source.cluster_name", ff.GetSourceClusterName(), func(f *flowpb.Flow) string { return f.GetSource().GetClusterName() }},
		{"destination_cluster_name", "destination.cluster_name", ff.GetDestinationClusterName(), func(f *flowpb.Flow) string { return f.GetDestination().GetClusterName() }},
	} {
		if cf.vals == nil {
			continue
		}
		if slices.Contains(cf.vals, "") {
			return c, fmt.Errorf("%s: invalid filter, name must not be empty", cf.name)
		}
		vals, get := cf.vals, cf.get
		use(cf.path)
		cheap = append(cheap, func(f *flowpb.Flow) bool { return slices.Contains(vals, get(f)) })
	}
	if vs := ff.GetIpVersion(); vs != nil {
		use("IP.ipVersion")
		cheap = append(cheap, func(f *flowpb.Flow) bool { return f != nil && slices.Contains(vs, f.GetIP().GetIpVersion()) })
	}
	if ids := ff.GetTraceId(); ids != nil {
		use("trace_context")
		cheap = append(cheap, func(f *flowpb.Flow) bool {
			return slices.Contains(ids, f.GetTraceContext().GetParent().GetTraceId())
		})
	}
	if ds := ff.GetTrafficDirection(); len(ds) > 0 {
		use("traffic_direction")
		cheap = append(cheap, func(f *flowpb.Flow) bool { return f != nil && slices.Contains(ds, f.GetTrafficDirection()) })
	}
	if exprs := ff.GetExperimental().GetCelExpression(); exprs != nil {
		t, err := celPred(exprs)
		if err != nil {
			return c, fmt.Errorf("experimental.cel_expression: %w", err)
		}
		c.hasCEL = true
		c.fields = flow.AllFields()
		costly = append(costly, t)
	}
	if ifs := ff.GetInterface(); len(ifs) > 0 {
		use("interface")
		cheap = append(cheap, func(f *flowpb.Flow) bool {
			iface := f.GetInterface()
			if iface == nil {
				return false
			}
			for _, w := range ifs {
				if idx := w.GetIndex(); idx > 0 && idx != iface.GetIndex() {
					continue
				}
				if name := w.GetName(); name != "" && name != iface.GetName() {
					continue
				}
				return true
			}
			return false
		})
	}
	c.preds = append(cheap, costly...)
	return c, nil
}

func protocolPred(protocols []string) (pred, error) {
	var tcp, udp, sctp, icmp4, icmp6, dns, http, kafka bool
	for _, p := range protocols {
		switch strings.ToLower(p) {
		case "icmp":
			icmp4, icmp6 = true, true
		case "icmpv4":
			icmp4 = true
		case "icmpv6":
			icmp6 = true
		case "tcp":
			tcp = true
		case "udp":
			udp = true
		case "sctp":
			sctp = true
		case "dns":
			dns = true
		case "http":
			http = true
		case "kafka":
			kafka = true
		default:
			return nil, fmt.Errorf("unknown protocol: %q", p)
		}
	}
	return func(f *flowpb.Flow) bool {
		l4 := f.GetL4()
		if (tcp && l4.GetTCP() != nil) || (udp && l4.GetUDP() != nil) || (sctp && l4.GetSCTP() != nil) ||
			(icmp4 && l4.GetICMPv4() != nil) || (icmp6 && l4.GetICMPv6() != nil) {
			return true
		}
		l7 := f.GetL7()
		return (dns && l7.GetDns() != nil) || (http && l7.GetHttp() != nil) || (kafka && l7.GetKafka() != nil)
	}, nil
}

func ipPred(ips []string, get func(*flowpb.Flow) string) (pred, error) {
	var addrs []string
	var prefixes []netip.Prefix
	for _, ip := range ips {
		if strings.Contains(ip, "/") {
			p, err := netip.ParsePrefix(ip)
			if err != nil {
				return nil, fmt.Errorf("invalid IP prefix %q in filter: %w", ip, err)
			}
			prefixes = append(prefixes, p)
			continue
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			return nil, fmt.Errorf("invalid IP address %q in filter: %w", ip, err)
		}
		addrs = append(addrs, ip)
	}
	return func(f *flowpb.Flow) bool {
		ip := get(f)
		if ip == "" {
			return false
		}
		if slices.Contains(addrs, ip) {
			return true
		}
		if len(prefixes) == 0 {
			return false
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return false
		}
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}, nil
}

// parseNamespaceName is k8s.ParseNamespaceName of pkg/hubble/k8s.
func parseNamespaceName(s string) (ns, name string) {
	parts := strings.Split(s, "/")
	switch {
	case len(parts) > 1:
		return parts[0], parts[1]
	case parts[0] == "":
		return "", ""
	default:
		return "default", parts[0]
	}
}

func namespacedNamePred(names []string, get func(*flowpb.Flow) (string, string)) (pred, error) {
	type nf struct{ ns, prefix string }
	var fs []nf
	for _, n := range names {
		if n == "" {
			return nil, errors.New("invalid filter, name must not be empty")
		}
		ns, p := parseNamespaceName(n)
		fs = append(fs, nf{ns, p})
	}
	return func(f *flowpb.Flow) bool {
		ns, name := get(f)
		if ns == "" && name == "" {
			return false
		}
		for _, x := range fs {
			if (x.prefix == "" || strings.HasPrefix(name, x.prefix)) && (x.ns == "" || x.ns == ns) {
				return true
			}
		}
		return false
	}, nil
}

func workloadPred(wf []*flowpb.Workload, get func(*flowpb.Flow) []*flowpb.Workload) pred {
	return func(f *flowpb.Flow) bool {
		for _, w := range get(f) {
			for _, x := range wf {
				if (x.GetName() == "" || x.GetName() == w.GetName()) && (x.GetKind() == "" || x.GetKind() == w.GetKind()) {
					return true
				}
			}
		}
		return false
	}
}

func sourcePort(f *flowpb.Flow) (uint16, bool) {
	l4 := f.GetL4()
	if t := l4.GetTCP(); t != nil {
		return uint16(t.SourcePort), true
	}
	if u := l4.GetUDP(); u != nil {
		return uint16(u.SourcePort), true
	}
	if s := l4.GetSCTP(); s != nil {
		return uint16(s.SourcePort), true
	}
	return 0, false
}

func destinationPort(f *flowpb.Flow) (uint16, bool) {
	l4 := f.GetL4()
	if t := l4.GetTCP(); t != nil {
		return uint16(t.DestinationPort), true
	}
	if u := l4.GetUDP(); u != nil {
		return uint16(u.DestinationPort), true
	}
	if s := l4.GetSCTP(); s != nil {
		return uint16(s.DestinationPort), true
	}
	return 0, false
}

func portPred(ps []string, get func(*flowpb.Flow) (uint16, bool)) (pred, error) {
	ports := make([]uint16, 0, len(ps))
	for _, p := range ps {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("invalid port %q: %w", p, err)
		}
		ports = append(ports, uint16(n))
	}
	return func(f *flowpb.Flow) bool {
		p, ok := get(f)
		return ok && slices.Contains(ports, p)
	}, nil
}

func tcpFlagsPred(flags []*flowpb.TCPFlags) pred {
	return func(f *flowpb.Flow) bool {
		ff := f.GetL4().GetTCP().GetFlags()
		if ff == nil {
			return false
		}
		for _, x := range flags {
			if (x.FIN && !ff.FIN) || (x.SYN && !ff.SYN) || (x.RST && !ff.RST) || (x.PSH && !ff.PSH) ||
				(x.ACK && !ff.ACK) || (x.URG && !ff.URG) || (x.ECE && !ff.ECE) || (x.CWR && !ff.CWR) || (x.NS && !ff.NS) {
				continue
			}
			return true
		}
		return false
	}
}

var (
	httpStatusCodeFull   = regexp.MustCompile(`^[1-5][0-9]{2}$`)
	httpStatusCodePrefix = regexp.MustCompile(`^[1-5][0-9]?\+$`)
)

func httpPreds(ff *flowpb.FlowFilter) ([]pred, error) {
	compatible := len(ff.GetEventType()) == 0 || slices.ContainsFunc(ff.GetEventType(), func(t *flowpb.EventTypeFilter) bool {
		return t.GetType() == messageTypeAccessLog
	})
	var out []pred
	if codes := ff.GetHttpStatusCode(); codes != nil {
		if !compatible {
			return nil, errors.New("http_status_code: filtering by http status code requires the event type filter to only match 'l7' events")
		}
		// Codes are matched on their %03d form; precompute which of 0..999 match.
		var match [1000]bool
		for _, s := range codes {
			switch {
			case httpStatusCodeFull.MatchString(s):
				n, _ := strconv.Atoi(s)
				match[n] = true
			case httpStatusCodePrefix.MatchString(s):
				p := strings.TrimSuffix(s, "+")
				for n := 0; n < 1000; n++ {
					if strings.HasPrefix(fmt.Sprintf("%03d", n), p) {
						match[n] = true
					}
				}
			default:
				return nil, fmt.Errorf("http_status_code: invalid http status code filter: invalid status code prefix: %q", s)
			}
		}
		out = append(out, func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			if h == nil || h.Code == 0 {
				return false
			}
			if h.Code < 1000 {
				return match[h.Code]
			}
			// %03d of a code >= 1000 has four or more digits: only prefixes can match.
			s := strconv.FormatUint(uint64(h.Code), 10)
			for _, c := range codes {
				if p, ok := strings.CutSuffix(c, "+"); ok && strings.HasPrefix(s, p) {
					return true
				}
			}
			return false
		})
	}
	if methods := ff.GetHttpMethod(); methods != nil {
		if !compatible {
			return nil, errors.New("http_method: filtering by http method requires the event type filter to only match 'l7' events")
		}
		out = append(out, func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			if h == nil || h.Method == "" {
				return false
			}
			for _, m := range methods {
				if strings.EqualFold(h.Method, m) {
					return true
				}
			}
			return false
		})
	}
	if paths := ff.GetHttpPath(); paths != nil {
		if !compatible {
			return nil, errors.New("http_path: filtering by http path requires the event type filter to only match 'l7' events")
		}
		res, err := compileRegexps(paths)
		if err != nil {
			return nil, fmt.Errorf("http_path: invalid http path filter: %w", err)
		}
		out = append(out, func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			if h == nil || h.Url == "" {
				return false
			}
			u, err := url.ParseRequestURI(h.Url)
			if err != nil {
				return false
			}
			for _, re := range res {
				if re.MatchString(u.Path) {
					return true
				}
			}
			return false
		})
	}
	if urls := ff.GetHttpUrl(); urls != nil {
		if !compatible {
			return nil, errors.New("http_url: filtering by http url requires the event type filter to only match 'l7' events")
		}
		res, err := compileRegexps(urls)
		if err != nil {
			return nil, fmt.Errorf("http_url: invalid http url filter: %w", err)
		}
		out = append(out, func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			if h == nil || h.Url == "" {
				return false
			}
			for _, re := range res {
				if re.MatchString(h.Url) {
					return true
				}
			}
			return false
		})
	}
	if headers := ff.GetHttpHeader(); headers != nil {
		if !compatible {
			return nil, errors.New("http_header: filtering by http headers requires the event type filter to only match 'l7' events")
		}
		out = append(out, func(f *flowpb.Flow) bool {
			h := f.GetL7().GetHttp()
			if h == nil || h.GetHeaders() == nil {
				return false
			}
			for _, fh := range h.GetHeaders() {
				for _, w := range headers {
					if w.Key == fh.Key && w.Value == fh.Value {
						return true
					}
				}
			}
			return false
		})
	}
	return out, nil
}

func compileRegexps(exprs []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(exprs))
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e, err)
		}
		out = append(out, re)
	}
	return out, nil
}
