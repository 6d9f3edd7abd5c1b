// Package hubblepb_test checks flowaudit's pkg/hubblepb, the decoder of
// GetFlows responses in wire format, with the random filters and masks of
// the other compatibility tests: the filter decides on what Decode leaves
// as on the whole flow, and Finish leaves the flow proto.Unmarshal gives,
// pruned by the mask.
package hubblepb_test

import (
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/hubblepb"
	"github.com/flowaudit/flowaudit/test/compat/internal/random"
)

// TestRandomFiltersAndMasks: random allow and deny lists over every filter
// field, and random masks over every Flow path, on generated flows in wire
// format, decoded with the plan the pipeline makes of them.
func TestRandomFiltersAndMasks(t *testing.T) {
	g, err := gen.New(gen.Config{Seed: 21, Nodes: 3, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	var flows []*flowpb.Flow
	var msgs [][]byte
	for len(flows) < 2000 {
		f := g.Next().GetFlow()
		if f == nil {
			continue
		}
		w, err := proto.Marshal(&observerpb.GetFlowsResponse{ResponseTypes: &observerpb.GetFlowsResponse_Flow{Flow: f}, NodeName: f.GetNodeName(), Time: f.GetTime()})
		if err != nil {
			t.Fatal(err)
		}
		flows, msgs = append(flows, f), append(msgs, w)
	}
	pool := random.NewPool(flows)
	paths := random.AllPaths()
	r := random.Source(t, "FLOWAUDIT_HUBBLEPB_SEED", 1)
	decided := 0
	for i := range 150 {
		var allow, deny []*flowpb.FlowFilter
		for k := r.IntN(3); k >= 0; k-- {
			allow = append(allow, random.Filter(r, pool))
		}
		if i%2 == 1 {
			allow, deny = nil, allow
		}
		prog, err := filter.Compile(allow, deny)
		if err != nil {
			continue
		}
		mask, err := fieldmask.Compile(random.Mask(r, paths))
		if err != nil {
			t.Fatal(err)
		}
		keep := mask.Fields()
		filterFields := prog.Fields()
		if !filterFields.IsEmpty() {
			filterFields = filterFields.Union(flow.Fields("time", "node_name"))
		}
		d := hubblepb.NewDecoder(hubblepb.NewPlan(filterFields, keep))
		var arena flow.Arena
		d.SetArena(&arena)
		slot := &flowpb.Flow{}
		kept := 0
		for k, w := range msgs {
			if k%100 == 0 {
				arena.Reset()
			}
			if _, err := d.Decode(w, slot); err != nil {
				t.Fatal(err)
			}
			got, want := prog.MatchFlow(slot), prog.MatchFlow(flows[k])
			if got != want {
				t.Fatalf("allow %v deny %v: %v on the decoded flow, %v on the whole one", allow, deny, got, want)
			}
			if !got {
				continue
			}
			kept++
			if err := d.Finish(slot); err != nil {
				t.Fatal(err)
			}
			pruned := proto.Clone(slot).(*flowpb.Flow)
			mask.Prune(pruned)
			whole := proto.Clone(flows[k]).(*flowpb.Flow)
			mask.Prune(whole)
			if !proto.Equal(pruned, whole) {
				t.Fatalf("mask %v: kept flow\n%v\nwant\n%v", mask.Paths(), pruned, whole)
			}
		}
		if kept > 0 && kept < len(msgs) {
			decided++
		}
	}
	if decided < 30 {
		t.Errorf("only %d filters kept some flows and dropped others", decided)
	}
}
