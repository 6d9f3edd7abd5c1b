package filter

import (
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func mustCompile(t testing.TB, allow, deny string) *Program {
	t.Helper()
	a, err := ParseFilters(allow)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseFilters(deny)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(a, d)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSemantics(t *testing.T) {
	web := &flowpb.Flow{
		Verdict:  flowpb.Verdict_FORWARDED,
		Source:   &flowpb.Endpoint{Namespace: "default", PodName: "xwing", Labels: []string{"k8s:app=xwing", "k8s:org=alliance"}},
		L4:       &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{DestinationPort: 80, Flags: &flowpb.TCPFlags{SYN: true, ACK: true}}}},
		IP:       &flowpb.IP{Source: "10.0.0.1", Destination: "2001:db8::1", IpVersion: flowpb.IPVersion_IPv4},
		NodeName: "worker-1",
		IsReply:  wrapperspb.Bool(false),
	}
	dropped := &flowpb.Flow{Verdict: flowpb.Verdict_DROPPED, DropReasonDesc: flowpb.DropReason_POLICY_DENIED}
	f := func(allow, deny string, fl *flowpb.Flow, want bool) {
		t.Helper()
		if got := mustCompile(t, allow, deny).MatchFlow(fl); got != want {
			t.Errorf("allow %s deny %s: got %v want %v", allow, deny, got, want)
		}
	}
	f("", "", web, true)
	f(`{"verdict":["DROPPED"]}`, "", web, false)
	f(`{"verdict":["DROPPED"]}{"source_pod":["xwing"]}`, "", web, true) // no namespace means default
	f(`{"source_pod":["/xw"]}`, "", web, true)
	f(`{"source_pod":["kube-system/"]}`, "", web, false)
	f("", `{"source_pod":["default/"]}`, web, false)
	f(`{"destination_port":["080"]}`, "", web, true)
	f(`{"source_label":["app=xwing,org!=empire"]}`, "", web, true)
	f(`{"source_label":["container:app=xwing"]}`, "", web, false)
	f(`{"source_label":["org in (empire)"]}`, "", web, false)
	f(`{"destination_ip":["2001:DB8::1"]}`, "", web, false) // string compare, as Cilium
	f(`{"destination_ip":["2001:db8::/32"]}`, "", web, true)
	f(`{"node_name":["default/worker-*"]}`, "", web, true)
	f(`{"tcp_flags":[{"SYN":true}]}`, "", web, true)
	f(`{"tcp_flags":[{"FIN":true}]}`, "", web, false)
	f(`{"reply":[false]}`, "", dropped, true) // the DROPPED quirk
	f(`{"reply":[false]}`, "", &flowpb.Flow{}, false)
	f(`{"drop_reason_desc":["POLICY_DENIED"]}`, "", dropped, true)
	f(`{"experimental":{"cel_expression":["_flow.verdict == Verdict.DROPPED"]}}`, "", dropped, true)
}

func TestNonFlowEvents(t *testing.T) {
	lost, agent := &flowpb.LostEvent{}, &flowpb.AgentEvent{Type: flowpb.AgentEventType_POLICY_UPDATED}
	for _, tc := range []struct {
		allow string
		lost  bool
		agent bool
	}{
		{"", true, true},
		{`{}`, true, true},
		{`{"verdict":["FORWARDED"]}`, false, false},
		{`{"event_type":[{"type":1}]}`, true, false},
		{`{"event_type":[{"type":130}]}`, true, true},
		{`{"event_type":[{"type":130,"match_sub_type":true,"sub_type":4}]}`, true, false},
		{`{"source_label":["!app"]}`, true, true}, // a selector that matches empty labels
	} {
		p := mustCompile(t, tc.allow, "")
		if got := p.MatchNonFlow(lost); got != tc.lost {
			t.Errorf("%s lost: got %v", tc.allow, got)
		}
		if got := p.MatchNonFlow(agent); got != tc.agent {
			t.Errorf("%s agent: got %v", tc.allow, got)
		}
	}
}

func TestCompileErrorsNameTheFilter(t *testing.T) {
	for filter, want := range map[string]string{
		`{}{"source_ip":["10.0.0.300"]}`:                    "allowlist filter #1: source_ip",
		`{"protocol":["quic"]}`:                             "protocol",
		`{"http_status_code":["600"]}`:                      "http_status_code",
		`{"http_path":["("]}`:                               "http_path",
		`{"http_method":["GET"],"event_type":[{"type":4}]}`: "requires the event type filter",
		`{"source_fqdn":["bad pattern!"]}`:                  "source_fqdn",
		`{"node_name":["a/b/c"]}`:                           "too many slashes",
		`{"source_label":["a in (b"]}`:                      "source_label",
		`{"experimental":{"cel_expression":["1"]}}`:         "cel_expression",
		`{"source_pod":[""]}`:                               "name must not be empty",
	} {
		a, err := ParseFilters(filter)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Compile(a, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to mention %q", filter, err, want)
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	p := mustCompile(t, `{"verdict":["DROPPED"]}{"source_label":["k8s:app=a,tier in (x,y)"],"destination_port":["443"]}{"destination_fqdn":["*.example.com"]}`, `{"source_pod":["kube-system/"]}`)
	fl := &flowpb.Flow{Verdict: flowpb.Verdict_FORWARDED, Source: &flowpb.Endpoint{Namespace: "ns", Labels: []string{"k8s:app=a", "k8s:tier=x", "k8s:z=1"}},
		L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{DestinationPort: 443}}}, DestinationNames: []string{"api.example.com"}}
	if !p.MatchFlow(fl) {
		t.Fatal("no match")
	}
	if n := testing.AllocsPerRun(100, func() { p.MatchFlow(fl) }); n != 0 {
		t.Fatalf("%.0f allocations per flow", n)
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{`{"source_label":["k8s:a in (b,c)"]}`, `{"http_status_code":["5+"]}`, `{"node_name":["a/*"]}`, `{"source_fqdn":["*.a.b."]}`} {
		f.Add(s)
	}
	fl := &flowpb.Flow{Source: &flowpb.Endpoint{Labels: []string{"k8s:a=b"}}, NodeName: "n"}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		a, err := ParseFilters(s)
		if err != nil {
			return
		}
		if p, err := Compile(a, a); err == nil {
			p.MatchFlow(fl)
			p.MatchFlow(nil)
			p.MatchNonFlow(&flowpb.LostEvent{})
		}
	})
}

func BenchmarkHeavy(b *testing.B) {
	p := mustCompile(b,
		`{"source_label":["k8s:app=payments-api"]}{"destination_label":["k8s:tier=data,k8s:app.kubernetes.io/managed-by=argocd"]}{"destination_port":["5432","6379"]}`+
			`{"http_path":["^/api/v[0-9]+/transfers"],"http_method":["POST"]}{"destination_fqdn":["*.amazonaws.com"]}{"dns_query":["\\.or\\.kr\\.$"]}{"http_status_code":["5+"]}`,
		`{"source_pod":["kube-system/"]}{"destination_pod":["kube-system/"]}{"source_label":["k8s:app=prometheus"]}{"destination_port":["9090"]}{"node_labels":["node-role.kubernetes.io/control-plane"]}`)
	fl := &flowpb.Flow{Verdict: flowpb.Verdict_FORWARDED, Source: &flowpb.Endpoint{Namespace: "payments", PodName: "p", Labels: []string{
		"k8s:app=payments-worker", "k8s:app.kubernetes.io/managed-by=argocd", "k8s:app.kubernetes.io/name=payments-worker", "k8s:io.cilium.k8s.policy.cluster=prod",
		"k8s:io.cilium.k8s.policy.serviceaccount=payments-worker", "k8s:io.kubernetes.pod.namespace=payments", "k8s:pod-template-hash=abc123", "k8s:tier=backend"}},
		Destination: &flowpb.Endpoint{Namespace: "core", PodName: "q", Labels: []string{"k8s:app=core-api", "k8s:app.kubernetes.io/managed-by=argocd", "k8s:tier=backend"}},
		L4:          &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{DestinationPort: 8080}}}, NodeLabels: []string{"kubernetes.io/os=linux"}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if p.MatchFlow(fl) {
			b.Fatal("unexpected match")
		}
	}
}

func benchFlow() *flowpb.Flow {
	return &flowpb.Flow{Verdict: flowpb.Verdict_DROPPED, Source: &flowpb.Endpoint{Namespace: "payments", PodName: "p"},
		Destination: &flowpb.Endpoint{Namespace: "core", PodName: "q"}}
}

func BenchmarkVerdict(b *testing.B) {
	p := mustCompile(b, `{"verdict":["DROPPED"]}`, "")
	fl := benchFlow()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !p.MatchFlow(fl) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkVerdictKubeSystem(b *testing.B) {
	p := mustCompile(b, `{"verdict":["DROPPED"]}`, `{"source_pod":["kube-system/"]}{"destination_pod":["kube-system/"]}`)
	fl := benchFlow()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !p.MatchFlow(fl) {
			b.Fatal("no match")
		}
	}
}
