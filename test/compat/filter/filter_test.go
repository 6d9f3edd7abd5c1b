// Package filter_test checks pkg/filter against Cilium v1.18.4's own filter
// code (filters.BuildFilterList + filters.Apply) on generated flows, edge-case
// flows, non-flow events, and randomly generated filters over every field.
package filter_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/cilium/cilium/pkg/hubble"
	v1 "github.com/cilium/cilium/pkg/hubble/api/v1"
	"github.com/cilium/cilium/pkg/hubble/filters"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

func events(t testing.TB, n int) ([]*flowpb.Flow, []proto.Message) {
	g, err := gen.New(gen.Config{Seed: 3, Nodes: 3, LostEventEvery: 50, AgentEventEvery: 50})
	if err != nil {
		t.Fatal(err)
	}
	var flows []*flowpb.Flow
	var other []proto.Message
	for len(flows) < n {
		ev := g.Next()
		switch {
		case ev.GetFlow() != nil:
			flows = append(flows, ev.GetFlow())
		case ev.GetLostEvents() != nil:
			other = append(other, ev.GetLostEvents())
		case ev.GetAgentEvent() != nil:
			other = append(other, ev.GetAgentEvent())
		}
	}
	other = append(other, &flowpb.DebugEvent{Type: flowpb.DebugEventType_DBG_CT_VERDICT})
	// Edge cases the generator does not make.
	flows = append(flows,
		&flowpb.Flow{},
		&flowpb.Flow{Verdict: flowpb.Verdict_DROPPED},
		&flowpb.Flow{Verdict: flowpb.Verdict_DROPPED, IsReply: wrapperspb.Bool(true)},
		&flowpb.Flow{IP: &flowpb.IP{Source: "2001:DB8::1", Destination: "::ffff:10.0.0.1"}},
		&flowpb.Flow{Source: &flowpb.Endpoint{PodName: "xwing"}, Destination: &flowpb.Endpoint{Namespace: "default"}},
		&flowpb.Flow{NodeName: "kind-worker", Source: &flowpb.Endpoint{Labels: []string{"app=x", "container:app=y", "reserved:world", "$host"}}},
		&flowpb.Flow{L7: &flowpb.Layer7{Record: &flowpb.Layer7_Http{Http: &flowpb.HTTP{Code: 1234, Method: "get", Url: "::bad url"}}}, EventType: &flowpb.CiliumEventType{Type: 129}},
		&flowpb.Flow{L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_SCTP{SCTP: &flowpb.SCTP{SourcePort: 80, DestinationPort: 443}}}},
		&flowpb.Flow{TraceContext: &flowpb.TraceContext{Parent: &flowpb.TraceParent{TraceId: "abc"}}, Interface: &flowpb.NetworkInterface{Index: 3, Name: "eth0"}},
		&flowpb.Flow{DestinationNames: []string{"API.GitHub.com", "a.b.example.com"}, L7: &flowpb.Layer7{Record: &flowpb.Layer7_Dns{Dns: &flowpb.DNS{Query: "a.b.example.com."}}}},
	)
	return flows, other
}

func cilium(t testing.TB, allow, deny []*flowpb.FlowFilter) (filters.FilterFuncs, filters.FilterFuncs, error) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	a, err := filters.BuildFilterList(ctx, allow, filters.DefaultFilters(log))
	if err != nil {
		return nil, nil, err
	}
	d, err := filters.BuildFilterList(ctx, deny, filters.DefaultFilters(log))
	return a, d, err
}

// pick returns a random element of the values seen in flows, or a miss.
func pick[T any](r *rand.Rand, vals []T, miss T) T {
	if len(vals) == 0 || r.IntN(8) == 0 {
		return miss
	}
	return vals[r.IntN(len(vals))]
}

type pool struct {
	uuids, ips, pods, nss, svcs, labels, names, nodes, clusters, urls, methods, queries []string
	identities                                                                          []uint32
	ports                                                                               []string
}

func newPool(flows []*flowpb.Flow) *pool {
	p := &pool{}
	for i, f := range flows {
		if i%37 != 0 {
			continue
		}
		p.uuids = append(p.uuids, f.GetUuid())
		p.ips = append(p.ips, f.GetIP().GetSource(), f.GetIP().GetDestination())
		for _, ep := range []*flowpb.Endpoint{f.GetSource(), f.GetDestination()} {
			p.pods = append(p.pods, ep.GetPodName())
			p.nss = append(p.nss, ep.GetNamespace())
			p.labels = append(p.labels, ep.GetLabels()...)
			p.identities = append(p.identities, ep.GetIdentity())
			p.clusters = append(p.clusters, ep.GetClusterName())
		}
		p.svcs = append(p.svcs, f.GetDestinationService().GetName())
		p.names = append(p.names, f.GetDestinationNames()...)
		p.nodes = append(p.nodes, f.GetNodeName())
		if h := f.GetL7().GetHttp(); h != nil {
			p.urls = append(p.urls, h.GetUrl())
			p.methods = append(p.methods, h.GetMethod())
		}
		if d := f.GetL7().GetDns(); d != nil {
			p.queries = append(p.queries, d.GetQuery())
		}
		if tcp := f.GetL4().GetTCP(); tcp != nil {
			p.ports = append(p.ports, strconv.Itoa(int(tcp.GetDestinationPort())), strconv.Itoa(int(tcp.GetSourcePort())))
		}
	}
	return p
}

// randomFilter builds a FlowFilter with one to three random fields.
func randomFilter(r *rand.Rand, p *pool) *flowpb.FlowFilter {
	ff := &flowpb.FlowFilter{}
	for n := 1 + r.IntN(3); n > 0; n-- {
		switch r.IntN(34) {
		case 0:
			ff.Uuid = append(ff.Uuid, pick(r, p.uuids, "nope"))
		case 1:
			ff.SourceIp = append(ff.SourceIp, pick(r, p.ips, "10.0.0.0/8"))
		case 2:
			ff.DestinationIp = append(ff.DestinationIp, pick(r, []string{"10.100.0.0/16", "0.0.0.0/0", "fd00::/8"}, pick(r, p.ips, "1.1.1.1")))
		case 3:
			ff.SourcePod = append(ff.SourcePod, pick(r, p.nss, "kube-system")+"/"+pick(r, []string{"", "pay", "core"}, ""))
		case 4:
			pod := pick(r, p.pods, "xwing")
			if pod == "" {
				pod = "x"
			}
			ff.DestinationPod = append(ff.DestinationPod, pod, "/"+pod[:1])
		case 5:
			ff.Verdict = append(ff.Verdict, flowpb.Verdict(r.IntN(8)))
		case 6:
			ff.EventType = append(ff.EventType, &flowpb.EventTypeFilter{Type: []int32{0, 1, 2, 4, 5, 129, 130}[r.IntN(7)], MatchSubType: r.IntN(2) == 0, SubType: int32(r.IntN(4))})
		case 7:
			ff.HttpStatusCode = append(ff.HttpStatusCode, pick(r, []string{"200", "404", "5+", "40+", "2+", "1+"}, "503"))
		case 8:
			ff.Protocol = append(ff.Protocol, pick(r, []string{"tcp", "UDP", "icmp", "icmpv6", "dns", "http", "kafka", "sctp", "icmpv4"}, "tcp"))
		case 9:
			ff.SourcePort = append(ff.SourcePort, pick(r, p.ports, "80"))
		case 10:
			ff.DestinationPort = append(ff.DestinationPort, pick(r, p.ports, "0443"))
		case 11:
			ff.Reply = append(ff.Reply, r.IntN(2) == 0)
		case 12:
			ff.DnsQuery = append(ff.DnsQuery, pick(r, []string{`svc\.cluster\.local\.$`, "^api", "amazonaws"}, "x"))
		case 13:
			ff.SourceIdentity = append(ff.SourceIdentity, pick(r, p.identities, 2))
		case 14:
			ff.DestinationIdentity = append(ff.DestinationIdentity, pick(r, []uint32{2, 9, 1, 7}, pick(r, p.identities, 3)))
		case 15:
			ff.HttpMethod = append(ff.HttpMethod, pick(r, []string{"get", "POST", "Delete"}, pick(r, p.methods, "PUT")))
		case 16:
			ff.HttpPath = append(ff.HttpPath, pick(r, []string{"^/api/v1/", "healthz$", "transfers"}, "/"))
		case 17:
			ff.SourceFqdn = append(ff.SourceFqdn, pick(r, []string{"*.amazonaws.com", "api.*", "*"}, pick(r, p.names, "x.com")))
		case 18:
			ff.DestinationFqdn = append(ff.DestinationFqdn, pick(r, []string{"*.amazonaws.com", "api.github.com.", "*.b.example.com", "*.or.kr"}, pick(r, p.names, "x.com")))
		case 19:
			ff.SourceLabel = append(ff.SourceLabel, pick(r, []string{"k8s:tier=backend", "tier in (data,frontend)", "!k8s:version", "app", "tier!=data", "container:app=y", "k8s:compliance.bank.example/pci", "any:tier notin (backend)"}, pick(r, p.labels, "k8s:app=x")))
		case 20:
			ff.DestinationLabel = append(ff.DestinationLabel, pick(r, []string{"reserved:world", "k8s:k8s-app=kube-dns", "tier=data,k8s:app.kubernetes.io/managed-by=argocd"}, pick(r, p.labels, "app=x")))
		case 21:
			ff.NodeLabels = append(ff.NodeLabels, pick(r, []string{"kubernetes.io/os=linux", "topology.kubernetes.io/zone in (ap-northeast-2a)", "!node-role"}, "x=y"))
		case 22:
			ff.SourceService = append(ff.SourceService, pick(r, p.nss, "default")+"/")
		case 23:
			ff.DestinationService = append(ff.DestinationService, pick(r, p.svcs, "svc"))
		case 24:
			ff.TcpFlags = append(ff.TcpFlags, &flowpb.TCPFlags{SYN: r.IntN(2) == 0, ACK: r.IntN(2) == 0, FIN: r.IntN(4) == 0})
		case 25:
			ff.NodeName = append(ff.NodeName, pick(r, []string{"prod-kr1/node-0*", "node-01", "*/node-02", "default/kind-worker", "kind-*"}, pick(r, p.nodes, "a/b")))
		case 26:
			ff.IpVersion = append(ff.IpVersion, flowpb.IPVersion(r.IntN(3)))
		case 27:
			ff.TraceId = append(ff.TraceId, pick(r, []string{"", "abc"}, "x"))
		case 28:
			ff.TrafficDirection = append(ff.TrafficDirection, flowpb.TrafficDirection(r.IntN(3)))
		case 29:
			ff.SourceWorkload = append(ff.SourceWorkload, &flowpb.Workload{Name: pick(r, []string{"", "core-api"}, "x"), Kind: pick(r, []string{"", "Deployment", "StatefulSet"}, "")})
		case 30:
			ff.DestinationClusterName = append(ff.DestinationClusterName, pick(r, p.clusters, "other"))
		case 31:
			ff.DropReasonDesc = append(ff.DropReasonDesc, flowpb.DropReason([]int32{133, 155, 151, 0}[r.IntN(4)]))
		case 32:
			ff.Interface = append(ff.Interface, &flowpb.NetworkInterface{Index: uint32(r.IntN(4)), Name: pick(r, []string{"", "eth0"}, "")})
		case 33:
			ff.HttpUrl = append(ff.HttpUrl, pick(r, []string{`\?page=`, "svc.cluster.local/api", "<created>"}, "."))
		}
	}
	return ff
}

func TestRandomFiltersMatchCilium(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLOWAUDIT_FILTER_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (FLOWAUDIT_FILTER_SEED to repeat)", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	nflows, nsets := 4000, 600
	if testing.Short() {
		nflows, nsets = 1000, 100
	}
	flows, other := events(t, nflows)
	p := newPool(flows)
	matched, total, compileErrs := 0, 0, 0
	for set := 0; set < nsets; set++ {
		var allow, deny []*flowpb.FlowFilter
		for i := r.IntN(3); i > 0; i-- {
			allow = append(allow, randomFilter(r, p))
		}
		for i := r.IntN(2); i > 0; i-- {
			deny = append(deny, randomFilter(r, p))
		}
		ca, cd, cerr := cilium(t, allow, deny)
		prog, err := filter.Compile(allow, deny)
		if (cerr == nil) != (err == nil) {
			t.Fatalf("set %d: Cilium build error %v, ours %v\nallow %v\ndeny %v", set, cerr, err, allow, deny)
		}
		if err != nil {
			compileErrs++
			continue
		}
		for _, f := range flows {
			want := filters.Apply(ca, cd, &v1.Event{Event: f})
			if got := prog.MatchFlow(f); got != want {
				js, _ := protojson.Marshal(f)
				t.Fatalf("set %d: flow %s: Cilium %v, ours %v\nallow %v\ndeny %v", set, js, want, got, allow, deny)
			}
			total++
			if want {
				matched++
			}
		}
		for _, ev := range other {
			want := filters.Apply(ca, cd, &v1.Event{Event: ev})
			if got := prog.MatchNonFlow(ev); got != want {
				t.Fatalf("set %d: %T %v: Cilium %v, ours %v\nallow %v\ndeny %v", set, ev, ev, want, got, allow, deny)
			}
		}
	}
	t.Logf("%d decisions (%d kept), %d filter sets rejected by both", total, matched, compileErrs)
	if matched == 0 || matched == total {
		t.Fatal("degenerate: filters never (or always) match")
	}
}

func TestParseFiltersLikeCilium(t *testing.T) {
	for _, s := range []string{
		"", "{}", "{}{}", `{"source_pod":["kube-system/"]} {"destination_pod":["kube-system/"]}`,
		`{"sourcePod":["a/"]}`, `{"verdict":["DROPPED",2]}`, "[{}]", "{},{}", `'{}'`, `{"nope":1}`, `{"verdict":"DROPPED"}`, "{", "\n{}\n",
		`{"source_pod":["kube-system/"]},{"destination_pod":["kube-system/"]}`,
	} {
		want, werr := hubble.ParseFlowFilters(s)
		got, gerr := filter.ParseFilters(s)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%q: Cilium error %v, ours %v", s, werr, gerr)
			continue
		}
		if len(want) != len(got) {
			t.Errorf("%q: Cilium %d filters, ours %d", s, len(want), len(got))
			continue
		}
		for i := range want {
			if !proto.Equal(want[i], got[i]) {
				t.Errorf("%q: filter %d differs", s, i)
			}
		}
	}
}

func FuzzParseFilters(f *testing.F) {
	for _, s := range []string{"{}", `{"verdict":["DROPPED"]}`, "[{}]", `{"source_label":["k8s:a in (b,c)"]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		want, werr := hubble.ParseFlowFilters(s)
		got, gerr := filter.ParseFilters(s)
		if (werr == nil) != (gerr == nil) || len(want) != len(got) {
			t.Fatalf("%q: Cilium %v/%d, ours %v/%d", s, werr, len(want), gerr, len(got))
		}
		if gerr != nil {
			return
		}
		_, cerr := filter.Compile(got, nil)
		_, _, ccerr := cilium(t, want, nil)
		if (cerr == nil) != (ccerr == nil) {
			t.Fatalf("%q: Cilium build %v, ours %v", s, ccerr, cerr)
		}
	})
}
