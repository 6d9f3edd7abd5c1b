package filter_test

import (
	"bufio"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/cilium/cilium/pkg/hubble"
	v1 "github.com/cilium/cilium/pkg/hubble/api/v1"
	"github.com/cilium/cilium/pkg/hubble/filters"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/test/compat/internal/random"
)

const fixtureDir = "../../../../shared/fixtures"

// fixtureFlows decodes every flow in the shared Hubble fixtures: events.log
// lines ({"flow":...}) and legacy bare Flow JSON lines.
func fixtureFlows(t *testing.T) []*flowpb.Flow {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*.jsonl"))
	gen, _ := filepath.Glob(filepath.Join(fixtureDir, "generated", "*.jsonl"))
	files = append(files, gen...)
	if len(files) == 0 {
		t.Skip("no fixtures at " + fixtureDir)
	}
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}
	var flows []*flowpb.Flow
	for _, name := range files {
		if strings.Contains(name, "raw-filters") {
			continue
		}
		fh, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			var resp observerpb.GetFlowsResponse
			if err := opts.Unmarshal(line, &resp); err == nil && resp.GetFlow() != nil {
				flows = append(flows, resp.GetFlow())
				continue
			}
			var f flowpb.Flow
			if err := opts.Unmarshal(line, &f); err == nil {
				flows = append(flows, &f)
			}
		}
		fh.Close()
	}
	if len(flows) < 5 {
		t.Fatalf("only %d fixture flows decoded", len(flows))
	}
	return flows
}

func readFilterFile(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFixturesMatchCilium runs the fixture filter lists, the benchmark sets
// and random filters drawn from the fixture flows' own values through both
// Cilium and pkg/filter on every fixture flow.
func TestFixturesMatchCilium(t *testing.T) {
	flows := fixtureFlows(t)
	t.Logf("%d fixture flows", len(flows))
	sets := [][2]string{
		{readFilterFile(t, "raw-filters-allowlist.jsonl"), readFilterFile(t, "raw-filters-denylist.jsonl")},
		{readFilterFile(t, "raw-filters-allowlist.jsonl"), ""},
		{"", readFilterFile(t, "raw-filters-denylist.jsonl")},
	}
	for _, s := range benchSets {
		sets = append(sets, [2]string{s.allow, s.deny})
	}
	check := func(allow, deny []*flowpb.FlowFilter) {
		t.Helper()
		ca, cd, cerr := cilium(t, allow, deny)
		prog, err := filter.Compile(allow, deny)
		if (cerr == nil) != (err == nil) {
			t.Fatalf("Cilium build error %v, ours %v\nallow %v\ndeny %v", cerr, err, allow, deny)
		}
		if err != nil {
			return
		}
		for _, f := range flows {
			want := filters.Apply(ca, cd, &v1.Event{Event: f})
			if got := prog.MatchFlow(f); got != want {
				js, _ := protojson.Marshal(f)
				t.Fatalf("flow %s: Cilium %v, ours %v\nallow %v\ndeny %v", js, want, got, allow, deny)
			}
		}
	}
	for _, s := range sets {
		allow, err := hubble.ParseFlowFilters(s[0])
		if err != nil {
			t.Fatal(err)
		}
		deny, err := hubble.ParseFlowFilters(s[1])
		if err != nil {
			t.Fatal(err)
		}
		ours, err := filter.ParseFilters(s[0])
		if err != nil || len(ours) != len(allow) {
			t.Fatalf("ParseFilters(%q) = %d filters, %v; Cilium %d", s[0], len(ours), err, len(allow))
		}
		check(allow, deny)
	}
	// random.NewPool samples every 37th flow; repeat each fixture flow so that
	// all of them contribute values.
	var spread []*flowpb.Flow
	for _, f := range flows {
		for range 37 {
			spread = append(spread, f)
		}
	}
	p := random.NewPool(spread)
	r := rand.New(rand.NewPCG(11, 13))
	for range 2000 {
		var allow, deny []*flowpb.FlowFilter
		for i := 1 + r.IntN(2); i > 0; i-- {
			allow = append(allow, random.Filter(r, p))
		}
		for i := r.IntN(2); i > 0; i-- {
			deny = append(deny, random.Filter(r, p))
		}
		check(allow, deny)
	}
}

// TestManyFlowsMatchCilium compares 200k generated flows on the benchmark
// sets and a few random filter sets (seed fixed; TestRandomFiltersMatchCilium
// covers many more sets on fewer flows).
func TestManyFlowsMatchCilium(t *testing.T) {
	if testing.Short() {
		t.Skip("200k flows")
	}
	flows, other := events(t, 200000)
	p := random.NewPool(flows)
	r := rand.New(rand.NewPCG(5, 17))
	var sets [][2][]*flowpb.FlowFilter
	for _, s := range benchSets {
		a, _ := hubble.ParseFlowFilters(s.allow)
		d, _ := hubble.ParseFlowFilters(s.deny)
		sets = append(sets, [2][]*flowpb.FlowFilter{a, d})
	}
	for range 12 {
		sets = append(sets, [2][]*flowpb.FlowFilter{{random.Filter(r, p), random.Filter(r, p)}, {random.Filter(r, p)}})
	}
	for i, s := range sets {
		ca, cd, cerr := cilium(t, s[0], s[1])
		prog, err := filter.Compile(s[0], s[1])
		if (cerr == nil) != (err == nil) {
			t.Fatalf("set %d: Cilium build error %v, ours %v", i, cerr, err)
		}
		if err != nil {
			continue
		}
		for _, f := range flows {
			if want, got := filters.Apply(ca, cd, &v1.Event{Event: f}), prog.MatchFlow(f); got != want {
				js, _ := protojson.Marshal(f)
				t.Fatalf("set %d: flow %s: Cilium %v, ours %v\nallow %v\ndeny %v", i, js, want, got, s[0], s[1])
			}
		}
		for _, ev := range other {
			if want, got := filters.Apply(ca, cd, &v1.Event{Event: ev}), prog.MatchNonFlow(ev); got != want {
				t.Fatalf("set %d: %T: Cilium %v, ours %v", i, ev, want, got)
			}
		}
	}
}
