package serve

import (
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// TestRowGroupsRuledOutByStatistics: row groups whose namespace or verdict
// statistics miss every whitelist filter are skipped, the others read, and
// the flows sent are those the filter selects.
func TestRowGroupsRuledOutByStatistics(t *testing.T) {
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root, RowGroupRows: 300, MaxFileRows: 1000}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	flows := testFlows(t, 2, start, 3000)
	for i, f := range flows {
		ns := "team-a"
		if i >= 1500 {
			ns = "team-b"
		}
		if f.GetSource().GetNamespace() != "" {
			f.Source.Namespace = ns
		}
		if f.GetDestination().GetNamespace() != "" {
			f.Destination.Namespace = ns
		}
	}
	writeFlows(t, w, flows)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sc, err := archive.OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	files, err := sc.Files("flows", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	groups, err := archive.FlowRowGroups(files, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	teamA := []*flowpb.FlowFilter{{SourcePod: []string{"team-a/"}}, {DestinationPod: []string{"team-a/", "team-a/x"}}}
	for name, tc := range map[string]struct {
		allow   []*flowpb.FlowFilter
		prunes  bool // some row group is ruled out
		keepAll bool // none is
	}{
		"team-a":           {allow: teamA, prunes: true},
		"team-a forwarded": {allow: []*flowpb.FlowFilter{{SourcePod: []string{"team-a/"}, Verdict: []flowpb.Verdict{flowpb.Verdict_FORWARDED}}}, prunes: true},
		"no namespace":     {allow: []*flowpb.FlowFilter{{SourcePod: []string{"/pod"}}}, keepAll: true},
		"a filter without": {allow: append([]*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}}, &flowpb.FlowFilter{SourceIp: []string{"10.0.0.1"}}), keepAll: true},
		"unknown verdict":  {allow: []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_VERDICT_UNKNOWN}}}, keepAll: true},
		"nowhere":          {allow: []*flowpb.FlowFilter{{SourcePod: []string{"team-z/"}}}, prunes: true},
	} {
		pruner := rowGroupPruner(tc.allow)
		r, err := archive.NewRowReader[archive.FlowRow]()
		if err != nil {
			t.Fatal(err)
		}
		out := 0
		for _, g := range groups {
			c, err := archive.OpenFlowFile(g.File)
			if err != nil {
				t.Fatal(err)
			}
			r.Reset(c.RowGroups()[g.Index])
			if ruledOut(r, pruner) {
				out++
			}
			r.Close()
			c.Close()
		}
		if tc.prunes && out == 0 || tc.keepAll && out != 0 {
			t.Errorf("%s: %d of %d row groups ruled out", name, out, len(groups))
		}
	}
	c := startServer(t, Config{Roots: []string{root}, Version: "test"})
	for _, req := range []*observerpb.GetFlowsRequest{
		{Whitelist: teamA},
		{Whitelist: []*flowpb.FlowFilter{{SourcePod: []string{"team-b/"}, Verdict: []flowpb.Verdict{flowpb.Verdict_FORWARDED}}}},
		{Whitelist: teamA, Number: 10},
	} {
		want := expect(t, flows, req)
		if len(want) == 0 {
			t.Fatalf("%v: the test selects no flow", req)
		}
		sameFlows(t, req.String(), getFlows(t, c, req), want)
	}
}
