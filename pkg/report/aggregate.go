package report

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// DefaultPrivilegedPorts are the destination ports of section "privileged
// paths" unless Options.PrivilegedPorts says otherwise: SSH, RDP, the
// kube-apiserver and common databases (MySQL, PostgreSQL, Oracle, SQL Server,
// MongoDB, Redis). Flows to the kube-apiserver identity (7) count whatever
// their port.
var DefaultPrivilegedPorts = []uint32{22, 3389, 6443, 3306, 5432, 1521, 1433, 27017, 6379}

// identityKubeAPIServer is Cilium's reserved:kube-apiserver identity.
const identityKubeAPIServer = 7

// isWorld reports whether id is one of Cilium's world identities
// (reserved:world, world-ipv4, world-ipv6).
func isWorld(id uint32) bool { return id == 2 || id == 9 || id == 10 }

// worldLabels are the reserved labels of Cilium's world identities.
var worldLabels = []string{"reserved:world", "reserved:world-ipv4", "reserved:world-ipv6"}

// worldDest reports whether the flow goes to the internet: a world identity
// (2, 9, 10) or a reserved:world label on the destination.
func worldDest(r *flowRow) bool {
	if r.DestIdentity != nil && isWorld(*r.DestIdentity) {
		return true
	}
	for _, l := range r.DestLabels {
		if slices.Contains(worldLabels, l) {
			return true
		}
	}
	return false
}

// worldDestSQL is worldDest in DuckDB; never NULL.
const worldDestSQL = "(coalesce(destination_identity IN (2, 9, 10), false) OR coalesce(list_has_any(destination_labels, ['reserved:world', 'reserved:world-ipv4', 'reserved:world-ipv6']), false))"

// epKey identifies one endpoint of a flow by the fields the report groups on.
// Its strings point into the scanned row until the key is stored in a map for
// the first time (see own).
type epKey struct {
	ns, name, ip string
	id           uint32
	hasID        bool
}

func (k epKey) own() epKey {
	k.ns, k.name, k.ip = strings.Clone(k.ns), strings.Clone(k.name), strings.Clone(k.ip)
	return k
}

// String renders the endpoint as the report shows it: namespace/workload
// (or pod), else the first DNS name, else world:IP, identity:N or the IP.
func (k epKey) String() string {
	switch {
	case k.ns != "" && k.name != "":
		return k.ns + "/" + k.name
	case k.name != "":
		return k.name
	case k.hasID && isWorld(k.id):
		return "world:" + k.ip
	case k.hasID:
		return "identity:" + strconv.FormatUint(uint64(k.id), 10)
	case k.ip != "":
		return k.ip
	}
	return "unknown"
}

func endpointKey(ns *string, wl []archive.Workload, pod *string, id *uint32, names []string, ip *string) epKey {
	var k epKey
	switch {
	case ns != nil && len(wl) > 0:
		k.ns, k.name = *ns, wl[0].Name
	case ns != nil && pod != nil:
		k.ns, k.name = *ns, *pod
	case len(names) > 0:
		k.name = names[0]
	default:
		// Only what String shows is part of the key, so that groups are
		// exactly the rendered endpoints (and the SQL's DISTINCT).
		if id != nil {
			k.id, k.hasID = *id, true
		}
		if ip != nil && (id == nil || isWorld(*id)) {
			k.ip = *ip
		}
	}
	return k
}

type pairKey struct {
	src, dst                      epKey
	port                          uint32
	hasPort                       bool
	proto, reason, polNs, polName string
	verdict                       string
}

type httpKey struct {
	code   uint32
	method string
	dst    epKey
}

type dnsKey struct {
	rcode uint32
	query string
}

type egressKey struct {
	src  epKey
	name string
}

type privKey struct {
	src, dst epKey
	port     uint32
	hasPort  bool
	proto    string
	verdict  string
}

// aggregator folds flow rows into exact counts. Its maps are keyed by the
// groups the report shows, so memory grows with the number of distinct
// workloads, pairs and ports, never with the number of flows; a key's strings
// are copied once, when the key is first seen, so adding a row of an existing
// group allocates nothing.
type aggregator struct {
	loc        *time.Location
	privileged map[uint32]bool

	total, denied, worldTotal int64
	verdicts                  map[string]int64
	days                      map[int32]*dayAgg // yyyymmdd in loc
	nodes                     map[string]bool
	namespaces                map[string]bool
	pairs                     map[pairKey]int64
	talkers                   map[[2]epKey]int64
	httpErr                   map[httpKey]int64
	dnsFail                   map[dnsKey]int64
	world                     map[egressKey]int64
	priv                      map[privKey]int64
	zones                     []*zoneAgg
	// namespaceFilter keeps only flows from or to these namespaces (nil: all).
	namespaceFilter []string
	// previous holds last month's denied groups (nil: not computed).
	previous map[pairKey]bool
}

type dayAgg struct{ total, dropped, audit, forwarded int64 }

func newAggregator(loc *time.Location, privileged []uint32, zones []Zone) *aggregator {
	a := &aggregator{
		loc: loc, privileged: map[uint32]bool{},
		verdicts: map[string]int64{}, days: map[int32]*dayAgg{}, nodes: map[string]bool{}, namespaces: map[string]bool{},
		pairs: map[pairKey]int64{}, talkers: map[[2]epKey]int64{}, httpErr: map[httpKey]int64{}, dnsFail: map[dnsKey]int64{},
		world: map[egressKey]int64{}, priv: map[privKey]int64{},
	}
	for _, p := range privileged {
		a.privileged[p] = true
	}
	for _, z := range zones {
		a.zones = append(a.zones, &zoneAgg{z: z, violations: map[privKey]int64{}, world: map[egressKey]int64{}})
	}
	return a
}

func deref(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func addStr(m map[string]int64, k string) {
	if _, ok := m[k]; !ok {
		k = strings.Clone(k)
	}
	m[k]++
}

func markStr(m map[string]bool, k string) {
	if k != "" && !m[k] {
		m[strings.Clone(k)] = true
	}
}

// add counts one batch of rows. rows may be reused by the caller afterwards.
func (a *aggregator) add(rows []flowRow) {
	for i := range rows {
		a.addRow(&rows[i])
	}
}

// deniedKey is the group of a denied flow (strings not yet owned).
func deniedKey(r *flowRow, src, dst epKey, port uint32, verdict string) pairKey {
	k := pairKey{src: src, dst: dst, port: port, hasPort: r.L4DestPort != nil, proto: deref(r.L4Protocol, ""), reason: deref(r.DropReasonDesc, ""), verdict: verdict}
	for _, l := range [2][]archive.Policy{r.IngressDeniedBy, r.EgressDeniedBy} {
		if len(l) > 0 {
			k.polNs, k.polName = l[0].Namespace, l[0].Name
			break
		}
	}
	return k
}

// inScope reports whether the row passes the --namespace filter: its source
// or destination namespace is one of namespaces (nil: every row).
func inScope(r *flowRow, namespaces []string) bool {
	if namespaces == nil {
		return true
	}
	return (r.SourceNamespace != nil && slices.Contains(namespaces, *r.SourceNamespace)) ||
		(r.DestNamespace != nil && slices.Contains(namespaces, *r.DestNamespace))
}

// previousPairs collects the denied groups of the previous month, to mark
// the pairs denied for the first time. Memory: one entry per group.
type previousPairs struct {
	namespaces []string
	seen       map[pairKey]bool
}

func (p *previousPairs) add(rows []flowRow) {
	for i := range rows {
		r := &rows[i]
		v := deref(r.Verdict, "")
		if (v != "DROPPED" && v != "AUDIT") || !inScope(r, p.namespaces) {
			continue
		}
		var port uint32
		if r.L4DestPort != nil {
			port = *r.L4DestPort
		}
		src := endpointKey(r.SourceNamespace, r.SourceWorkloads, r.SourcePod, r.SourceIdentity, r.SourceNames, r.IPSource)
		dst := endpointKey(r.DestNamespace, r.DestWorkloads, r.DestPod, r.DestIdentity, r.DestinationNames, r.IPDestination)
		k := deniedKey(r, src, dst, port, v)
		if !p.seen[k] {
			k.src, k.dst = src.own(), dst.own()
			k.proto, k.reason, k.polNs, k.polName, k.verdict = strings.Clone(k.proto), strings.Clone(k.reason), strings.Clone(k.polNs), strings.Clone(k.polName), strings.Clone(k.verdict)
			p.seen[k] = true
		}
	}
}

func (a *aggregator) addRow(r *flowRow) {
	if !inScope(r, a.namespaceFilter) {
		return
	}
	a.total++
	v := deref(r.Verdict, "VERDICT_UNKNOWN")
	addStr(a.verdicts, v)
	y, m, d := time.UnixMicro(r.Time).In(a.loc).Date()
	dk := int32(y*10000 + int(m)*100 + d)
	day := a.days[dk]
	if day == nil {
		day = &dayAgg{}
		a.days[dk] = day
	}
	day.total++
	switch v {
	case "DROPPED":
		day.dropped++
	case "AUDIT":
		day.audit++
	case "FORWARDED":
		day.forwarded++
	}
	markStr(a.nodes, deref(r.NodeName, ""))
	markStr(a.namespaces, deref(r.SourceNamespace, ""))
	markStr(a.namespaces, deref(r.DestNamespace, ""))

	src := endpointKey(r.SourceNamespace, r.SourceWorkloads, r.SourcePod, r.SourceIdentity, r.SourceNames, r.IPSource)
	dst := endpointKey(r.DestNamespace, r.DestWorkloads, r.DestPod, r.DestIdentity, r.DestinationNames, r.IPDestination)
	if r.IsReply == nil || !*r.IsReply {
		k := [2]epKey{src, dst}
		if _, ok := a.talkers[k]; !ok {
			k = [2]epKey{src.own(), dst.own()}
		}
		a.talkers[k]++
	}
	var port uint32
	if r.L4DestPort != nil {
		port = *r.L4DestPort
	}
	for _, za := range a.zones {
		za.addRow(r, src, dst, port)
	}
	if v == "DROPPED" || v == "AUDIT" {
		a.denied++
		k := deniedKey(r, src, dst, port, v)
		if _, ok := a.pairs[k]; !ok {
			k.src, k.dst = src.own(), dst.own()
			k.proto, k.reason, k.polNs, k.polName, k.verdict = strings.Clone(k.proto), strings.Clone(k.reason), strings.Clone(k.polNs), strings.Clone(k.polName), strings.Clone(k.verdict)
		}
		a.pairs[k]++
	}
	if (r.L4DestPort != nil && a.privileged[port]) || (r.DestIdentity != nil && *r.DestIdentity == identityKubeAPIServer) {
		k := privKey{src: src, dst: dst, port: port, hasPort: r.L4DestPort != nil, proto: deref(r.L4Protocol, ""), verdict: v}
		if _, ok := a.priv[k]; !ok {
			k.src, k.dst, k.proto, k.verdict = src.own(), dst.own(), strings.Clone(k.proto), strings.Clone(k.verdict)
		}
		a.priv[k]++
	}
	if c := r.L7HTTPCode; c != nil && *c >= 400 {
		k := httpKey{code: *c, method: deref(r.L7HTTPMethod, ""), dst: dst}
		if _, ok := a.httpErr[k]; !ok {
			k.method, k.dst = strings.Clone(k.method), dst.own()
		}
		a.httpErr[k]++
	}
	if rc := r.L7DNSRcode; rc != nil && *rc != 0 {
		k := dnsKey{rcode: *rc, query: deref(r.L7DNSQuery, "")}
		if _, ok := a.dnsFail[k]; !ok {
			k.query = strings.Clone(k.query)
		}
		a.dnsFail[k]++
	}
	if worldDest(r) {
		a.worldTotal++
		k := egressKey{src: src, name: deref(r.IPDestination, "")}
		if len(r.DestinationNames) > 0 {
			k.name = r.DestinationNames[0]
		}
		if _, ok := a.world[k]; !ok {
			k.src, k.name = src.own(), strings.Clone(k.name)
		}
		a.world[k]++
	}
}

// finish writes the aggregates into rep, keeping topN rows of each top list.
func (a *aggregator) finish(rep *Report, topN int) {
	rep.TotalFlows, rep.DeniedTotal = a.total, a.denied
	rep.Verdicts = sortedCounts(a.verdicts, 0)
	keys := make([]int32, 0, len(a.days))
	for k := range a.days {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		d := a.days[k]
		rep.Daily = append(rep.Daily, DayCount{
			Day:   fmt.Sprintf("%04d-%02d-%02d", k/10000, k/100%100, k%100),
			Total: d.total, Dropped: d.dropped, Audit: d.audit, Forwarded: d.forwarded,
		})
	}
	for k, c := range a.pairs {
		p := Pair{Source: k.src.String(), Destination: k.dst.String(), Protocol: k.proto, Reason: k.reason, Verdict: k.verdict, Count: c}
		if k.hasPort {
			p.Port = strconv.FormatUint(uint64(k.port), 10)
		}
		if k.polName != "" {
			p.Policy = k.polNs + "/" + k.polName
		}
		if a.previous != nil && !a.previous[k] {
			p.NewThisMonth = true
			rep.DeniedNewPairs++
		}
		rep.Denied = append(rep.Denied, p)
	}
	rep.DeniedPairs = len(rep.Denied)
	slices.SortFunc(rep.Denied, func(x, y Pair) int {
		if x.Count != y.Count {
			if x.Count > y.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(x.sortKey(), y.sortKey())
	})
	if topN > 0 && len(rep.Denied) > topN {
		rep.Denied = rep.Denied[:topN]
	}
	perPort := map[string]int64{}
	for k, c := range a.priv {
		p := Privileged{Source: k.src.String(), Destination: k.dst.String(), Protocol: k.proto, Verdict: k.verdict, Count: c}
		if k.hasPort {
			p.Port = strconv.FormatUint(uint64(k.port), 10)
		}
		perPort[p.Port] += c
		rep.Privileged = append(rep.Privileged, p)
	}
	slices.SortFunc(rep.Privileged, func(x, y Privileged) int {
		if x.Count != y.Count {
			if x.Count > y.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Source+"\x00"+x.Destination+"\x00"+x.Port+"\x00"+x.Verdict, y.Source+"\x00"+y.Destination+"\x00"+y.Port+"\x00"+y.Verdict)
	})
	if topN > 0 && len(rep.Privileged) > topN {
		rep.Privileged = rep.Privileged[:topN]
	}
	rep.PrivilegedByPort = sortedCounts(perPort, 0)

	talkers := make(map[string]int64, len(a.talkers))
	for k, c := range a.talkers {
		talkers[k[0].String()+" -> "+k[1].String()] += c
	}
	rep.TopTalkers = sortedCounts(talkers, topN)
	httpErr := map[string]int64{}
	for k, c := range a.httpErr {
		httpErr[fmt.Sprintf("%d %s %s", k.code, k.method, k.dst)] += c
	}
	rep.HTTPErrors = sortedCounts(httpErr, topN)
	dns := map[string]int64{}
	for k, c := range a.dnsFail {
		dns[fmt.Sprintf("rcode=%d %s", k.rcode, k.query)] += c
	}
	rep.DNSFailures = sortedCounts(dns, topN)
	world := map[string]int64{}
	for k, c := range a.world {
		world[k.src.String()+" -> "+k.name] += c
	}
	rep.WorldEgress = sortedCounts(world, topN)
	rep.WorldEgressTotal = a.worldTotal
	rep.Namespaces = len(a.namespaces)
	for _, za := range a.zones {
		rep.Zones = append(rep.Zones, za.result(topN))
	}
}

func (p Pair) sortKey() string {
	return strings.Join([]string{p.Source, p.Destination, p.Protocol, p.Port, p.Reason, p.Policy, p.Verdict}, "\x00")
}

func sortedCounts(m map[string]int64, n int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{Key: k, Count: v})
	}
	slices.SortFunc(out, func(a, b Count) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// ParsePorts parses a privileged-port list: port numbers separated by commas,
// blanks or newlines; '#' starts a comment to the end of the line (so a file's
// contents can be passed as they are).
func ParsePorts(s string) ([]uint32, error) {
	var out []uint32
	for ln, line := range strings.Split(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			p, err := strconv.ParseUint(f, 10, 16)
			if err != nil || p == 0 {
				return nil, fmt.Errorf("report: privileged ports line %d: %q is not a port (1-65535)", ln+1, f)
			}
			if !slices.Contains(out, uint32(p)) {
				out = append(out, uint32(p))
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("report: privileged ports: empty list")
	}
	return out, nil
}
