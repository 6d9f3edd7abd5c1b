package filter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// fieldCases derive, from a flow, a filter on one FlowFilter field that the
// flow matches (ok false: the flow has nothing to filter on there). The
// filters' values come from the corpus, so each matches some flows and not
// others.
var fieldCases = map[string]func(f *flowpb.Flow) (string, bool){
	"uuid": func(f *flowpb.Flow) (string, bool) { return obj("uuid", []string{f.GetUuid()}), f.GetUuid() != "" },
	"event_type": func(f *flowpb.Flow) (string, bool) {
		et := f.GetEventType()
		return fmt.Sprintf(`{"event_type":[{"type":%d,"match_sub_type":true,"sub_type":%d}]}`, et.GetType(), et.GetSubType()), et != nil
	},
	"verdict": func(f *flowpb.Flow) (string, bool) { return obj("verdict", []string{f.GetVerdict().String()}), true },
	"drop_reason_desc": func(f *flowpb.Flow) (string, bool) {
		return obj("drop_reason_desc", []string{f.GetDropReasonDesc().String()}), f.GetVerdict() == flowpb.Verdict_DROPPED
	},
	"reply": func(f *flowpb.Flow) (string, bool) {
		return fmt.Sprintf(`{"reply":[%v]}`, f.GetIsReply().GetValue()), f.GetIsReply() != nil
	},
	"source_identity": func(f *flowpb.Flow) (string, bool) {
		return fmt.Sprintf(`{"source_identity":[%d]}`, f.GetSource().GetIdentity()), f.GetSource() != nil
	},
	"destination_identity": func(f *flowpb.Flow) (string, bool) {
		return fmt.Sprintf(`{"destination_identity":[%d]}`, f.GetDestination().GetIdentity()), f.GetDestination() != nil
	},
	"protocol": func(f *flowpb.Flow) (string, bool) {
		switch {
		case f.GetL7().GetDns() != nil:
			return obj("protocol", []string{"dns"}), true
		case f.GetL7().GetHttp() != nil:
			return obj("protocol", []string{"http"}), true
		case f.GetL7().GetKafka() != nil:
			return obj("protocol", []string{"kafka"}), true
		case f.GetL4().GetSCTP() != nil:
			return obj("protocol", []string{"sctp"}), true
		case f.GetL4().GetUDP() != nil:
			return obj("protocol", []string{"udp"}), true
		case f.GetL4().GetICMPv4() != nil:
			return obj("protocol", []string{"icmpv4"}), true
		}
		return obj("protocol", []string{"tcp"}), f.GetL4().GetTCP() != nil
	},
	"source_ip":        func(f *flowpb.Flow) (string, bool) { return ipCase("source_ip", f.GetIP().GetSource()) },
	"destination_ip":   func(f *flowpb.Flow) (string, bool) { return ipCase("destination_ip", f.GetIP().GetDestination()) },
	"source_ip_xlated": func(f *flowpb.Flow) (string, bool) { return ipCase("source_ip_xlated", f.GetIP().GetSourceXlated()) },
	"ip_version": func(f *flowpb.Flow) (string, bool) {
		return obj("ip_version", []string{f.GetIP().GetIpVersion().String()}), f.GetIP() != nil
	},
	"source_pod": func(f *flowpb.Flow) (string, bool) {
		ep := f.GetSource()
		return obj("source_pod", []string{ep.GetNamespace() + "/" + prefix(ep.GetPodName())}), ep.GetPodName() != ""
	},
	"destination_pod": func(f *flowpb.Flow) (string, bool) {
		ep := f.GetDestination()
		return obj("destination_pod", []string{ep.GetNamespace() + "/" + prefix(ep.GetPodName())}), ep.GetPodName() != ""
	},
	"source_service": func(f *flowpb.Flow) (string, bool) {
		s := f.GetSourceService()
		return obj("source_service", []string{s.GetNamespace() + "/" + s.GetName()}), s.GetName() != ""
	},
	"destination_service": func(f *flowpb.Flow) (string, bool) {
		s := f.GetDestinationService()
		return obj("destination_service", []string{s.GetNamespace() + "/" + s.GetName()}), s.GetName() != ""
	},
	"source_workload": func(f *flowpb.Flow) (string, bool) {
		return workloadCase("source_workload", f.GetSource().GetWorkloads())
	},
	"destination_workload": func(f *flowpb.Flow) (string, bool) {
		return workloadCase("destination_workload", f.GetDestination().GetWorkloads())
	},
	"source_cluster_name": func(f *flowpb.Flow) (string, bool) {
		n := f.GetSource().GetClusterName()
		return obj("source_cluster_name", []string{n}), n != ""
	},
	"destination_cluster_name": func(f *flowpb.Flow) (string, bool) {
		n := f.GetDestination().GetClusterName()
		return obj("destination_cluster_name", []string{n}), n != ""
	},
	"source_fqdn": func(f *flowpb.Flow) (string, bool) {
		return obj("source_fqdn", f.GetSourceNames()), len(f.GetSourceNames()) > 0
	},
	"destination_fqdn": func(f *flowpb.Flow) (string, bool) {
		return obj("destination_fqdn", f.GetDestinationNames()), len(f.GetDestinationNames()) > 0
	},
	"dns_query": func(f *flowpb.Flow) (string, bool) {
		q := f.GetL7().GetDns().GetQuery()
		return obj("dns_query", []string{"^" + regexp.QuoteMeta(q) + "$"}), q != ""
	},
	"source_label": func(f *flowpb.Flow) (string, bool) { return labelCase("source_label", f.GetSource().GetLabels()) },
	"destination_label": func(f *flowpb.Flow) (string, bool) {
		return labelCase("destination_label", f.GetDestination().GetLabels())
	},
	"node_labels": func(f *flowpb.Flow) (string, bool) { return labelCase("node_labels", f.GetNodeLabels()) },
	"source_port": func(f *flowpb.Flow) (string, bool) {
		p, ok := sourcePort(f)
		return obj("source_port", []string{fmt.Sprint(p)}), ok
	},
	"destination_port": func(f *flowpb.Flow) (string, bool) {
		p, ok := destinationPort(f)
		return obj("destination_port", []string{fmt.Sprint(p)}), ok
	},
	"http_status_code": func(f *flowpb.Flow) (string, bool) {
		c := f.GetL7().GetHttp().GetCode()
		return obj("http_status_code", []string{fmt.Sprint(c)}), c >= 100 && c < 600
	},
	"http_method": func(f *flowpb.Flow) (string, bool) {
		m := f.GetL7().GetHttp().GetMethod()
		return obj("http_method", []string{m}), m != ""
	},
	"http_path": func(f *flowpb.Flow) (string, bool) {
		u, err := url.ParseRequestURI(f.GetL7().GetHttp().GetUrl())
		if err != nil || u.Path == "" {
			return "", false
		}
		return obj("http_path", []string{"^" + regexp.QuoteMeta(u.Path) + "$"}), true
	},
	"http_url": func(f *flowpb.Flow) (string, bool) {
		u := f.GetL7().GetHttp().GetUrl()
		return obj("http_url", []string{"^" + regexp.QuoteMeta(u) + "$"}), u != ""
	},
	"http_header": func(f *flowpb.Flow) (string, bool) {
		hs := f.GetL7().GetHttp().GetHeaders()
		if len(hs) == 0 {
			return "", false
		}
		b, _ := json.Marshal(map[string]any{"http_header": []map[string]string{{"key": hs[0].Key, "value": hs[0].Value}}})
		return string(b), true
	},
	"tcp_flags": func(f *flowpb.Flow) (string, bool) {
		fl := f.GetL4().GetTCP().GetFlags()
		if fl == nil {
			return "", false
		}
		b, err := protojson.Marshal(fl)
		return `{"tcp_flags":[` + string(b) + `]}`, err == nil
	},
	"node_name": func(f *flowpb.Flow) (string, bool) {
		return obj("node_name", []string{f.GetNodeName()}), f.GetNodeName() != ""
	},
	"trace_id": func(f *flowpb.Flow) (string, bool) {
		id := f.GetTraceContext().GetParent().GetTraceId()
		return obj("trace_id", []string{id}), id != ""
	},
	"traffic_direction": func(f *flowpb.Flow) (string, bool) {
		d := f.GetTrafficDirection()
		return obj("traffic_direction", []string{d.String()}), d != flowpb.TrafficDirection_TRAFFIC_DIRECTION_UNKNOWN
	},
	"interface": func(f *flowpb.Flow) (string, bool) {
		i := f.GetInterface()
		return fmt.Sprintf(`{"interface":[{"index":%d,"name":%q}]}`, i.GetIndex(), i.GetName()), i != nil
	},
	"experimental": func(f *flowpb.Flow) (string, bool) {
		p, ok := destinationPort(f)
		return fmt.Sprintf(`{"experimental":{"cel_expression":["_flow.verdict == Verdict.%s && _flow.l4.TCP.destination_port == %du"]}}`, f.GetVerdict(), p),
			ok && f.GetL4().GetTCP() != nil
	},
}

func obj(key string, vals []string) string {
	b, _ := json.Marshal(map[string][]string{key: vals})
	return string(b)
}

func prefix(s string) string { return s[:(len(s)+1)/2] }

func ipCase(key, ip string) (string, bool) { return obj(key, []string{ip}), ip != "" }

func workloadCase(key string, ws []*flowpb.Workload) (string, bool) {
	if len(ws) == 0 {
		return "", false
	}
	return fmt.Sprintf(`{%q:[{"name":%q,"kind":%q}]}`, key, ws[0].GetName(), ws[0].GetKind()), true
}

// labelCase selects on the flow's last label with a plain key ("src:key=value").
var plainLabel = regexp.MustCompile(`^(?:[a-z0-9-]+:)?[A-Za-z0-9._/-]+=[A-Za-z0-9._-]*$`)

func labelCase(key string, labels []string) (string, bool) {
	for _, l := range slices.Backward(labels) {
		if plainLabel.MatchString(l) {
			return obj(key, []string{l}), true
		}
	}
	return "", false
}

// TestChecksReadOnlyDeclaredFields holds every builder to the fields its
// checks declare: a program decides the same for a flow decoded with only
// the fields it reads (Program.Fields, as the pipeline's decoder decodes
// them) as for the flow decoded whole. A predicate reading a field its
// builder does not declare sees it empty and decides otherwise.
func TestChecksReadOnlyDeclaredFields(t *testing.T) {
	g, err := gen.New(gen.Config{Seed: 7, Nodes: 3, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	var full []*flowpb.Flow
	whole := hubblejson.NewDecoder(nil)
	for len(full) < 1500 {
		l, err := g.AppendLine(nil)
		if err != nil {
			t.Fatal(err)
		}
		f := &flowpb.Flow{}
		if k, err := whole.Decode(l, f); err != nil || k != flow.KindFlow {
			continue
		}
		if err := whole.Finish(f); err != nil {
			t.Fatal(err)
		}
		lines, full = append(lines, bytes.TrimSuffix(l, []byte("\n"))), append(full, f)
	}

	// What the generator does not write.
	for _, f := range []*flowpb.Flow{
		{
			Time: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)), NodeName: "prod/n1", Verdict: flowpb.Verdict_FORWARDED,
			SourceService:      &flowpb.Service{Namespace: "shop", Name: "cart"},
			DestinationService: &flowpb.Service{Namespace: "shop", Name: "orders"},
			L4:                 &flowpb.Layer4{Protocol: &flowpb.Layer4_SCTP{SCTP: &flowpb.SCTP{SourcePort: 3868, DestinationPort: 3869}}},
		},
		{
			Time: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)), NodeName: "prod/n1", Verdict: flowpb.Verdict_FORWARDED,
			L7: &flowpb.Layer7{Record: &flowpb.Layer7_Kafka{Kafka: &flowpb.Kafka{Topic: "t"}}},
		},
	} {
		l, err := hubblejson.AppendFlowLine(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		// First, so that each case meets them before its limit.
		lines, full = slices.Insert(lines, 0, bytes.TrimSuffix(l, []byte("\n"))), slices.Insert(full, 0, f)
	}

	fields := (&flowpb.FlowFilter{}).ProtoReflect().Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		name := string(fields.Get(i).Name())
		mk, ok := fieldCases[name]
		if !ok {
			t.Errorf("FlowFilter field %s: no case here (add one with its builder)", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, f := range full {
				js, ok := mk(f)
				if !ok || seen[js] {
					continue
				}
				if seen[js] = true; len(seen) > 5 {
					break
				}
				checkDeclared(t, js, lines, full)
			}
			if len(seen) == 0 {
				t.Fatalf("no flow of the corpus has a %s to filter on", name)
			}
		})
	}
}

// checkDeclared compares one filter's verdicts on the flows decoded with
// only its fields against the flows decoded whole.
func checkDeclared(t *testing.T, js string, lines [][]byte, full []*flowpb.Flow) {
	t.Helper()
	ffs, err := ParseFilters(js)
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	checkPaths(t, js, ffs[0])
	p, err := Compile(ffs, nil)
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	dec := hubblejson.NewDecoder(hubblejson.NewPlan(p.Fields(), flow.Fields()))
	matched, differ := 0, 0
	var partial flowpb.Flow
	for i, l := range lines {
		if _, err := dec.Decode(l, &partial); err != nil {
			t.Fatalf("%s: line %d: %v", js, i, err)
		}
		want := p.MatchFlow(full[i])
		if want {
			matched++
		}
		if p.MatchFlow(&partial) != want {
			differ++
		}
	}
	if matched == 0 {
		t.Fatalf("%s matches no flow decoded whole", js)
	}
	if differ > 0 {
		t.Errorf("%s (reads %v): %d of %d flows decided otherwise when decoded with only the fields it declares", js, p.Fields(), differ, len(lines))
	}
}

// checkPaths fails for a declared path that names no Flow field (the
// decoder would select nothing for it).
func checkPaths(t *testing.T, js string, ff *flowpb.FlowFilter) {
	t.Helper()
	for _, build := range builders {
		checks, err := build(ff)
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		for _, k := range checks {
			for _, p := range k.reads.Paths() {
				md := (&flowpb.Flow{}).ProtoReflect().Descriptor()
				for _, name := range strings.Split(p, ".") {
					if md == nil {
						t.Errorf("%s: declared field %s goes below a scalar", js, p)
						break
					}
					fd := md.Fields().ByName(protoreflect.Name(name))
					if fd == nil {
						t.Errorf("%s: declared field %s is not a Flow field", js, p)
						break
					}
					md = fd.Message()
				}
			}
		}
	}
}
