// Package filter_test checks pkg/filter against Cilium v1.18.4's own filter
// code (filters.BuildFilterList + filters.Apply) on generated flows, edge-case
// flows, non-flow events, and randomly generated filters over every field.
package filter_test

import (
	"context"
	"log/slog"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/cilium/cilium/pkg/hubble"
	v1 "github.com/cilium/cilium/pkg/hubble/api/v1"
	"github.com/cilium/cilium/pkg/hubble/filters"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/test/compat/internal/random"
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

func TestRandomFiltersMatchCilium(t *testing.T) {
	r := random.Source(t, "FLOWAUDIT_FILTER_SEED", 1)
	nflows, nsets := 4000, 600
	if testing.Short() {
		nflows, nsets = 1000, 100
	}
	flows, other := events(t, nflows)
	p := random.NewPool(flows)
	matched, total, compileErrs := 0, 0, 0
	for set := 0; set < nsets; set++ {
		var allow, deny []*flowpb.FlowFilter
		for i := r.IntN(3); i > 0; i-- {
			allow = append(allow, random.Filter(r, p))
		}
		for i := r.IntN(2); i > 0; i-- {
			deny = append(deny, random.Filter(r, p))
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
