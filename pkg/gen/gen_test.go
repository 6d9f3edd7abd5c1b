package gen

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"
)

func lines(t *testing.T, cfg Config, n int) [][]byte {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		if out[i], err = g.AppendLine(nil); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestDeterministic(t *testing.T) {
	a := lines(t, Config{Seed: 1}, 2000)
	b := lines(t, Config{Seed: 1}, 2000)
	c := lines(t, Config{Seed: 2}, 2000)
	same := 0
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("line %d differs for the same seed", i)
		}
		if bytes.Equal(a[i], c[i]) {
			same++
		}
	}
	if same > 0 {
		t.Fatalf("%d lines equal across seeds", same)
	}
}

// TestRealisticAndDecodable decodes 100k generated lines with protojson (as
// Hubble's own tooling would) and checks the mix looks like production.
func TestRealisticAndDecodable(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 10000
	}
	g, err := New(Config{Seed: 42, Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	var (
		line                                          []byte
		flows, dropped, audit, l7, lost, agent, world int
		bytesTotal                                    int
		nodes                                         = map[string]bool{}
		uuids                                         = map[string]bool{}
		prev                                          int64
	)
	for i := 0; i < n; i++ {
		line, err = g.AppendLine(line[:0])
		if err != nil {
			t.Fatal(err)
		}
		bytesTotal += len(line)
		var ev observerpb.ExportEvent
		if err := protojson.Unmarshal(line, &ev); err != nil {
			t.Fatalf("line %d: %v\n%s", i, err, line)
		}
		if ts := ev.GetTime().AsTime().UnixNano(); ts < prev-int64(1e9) {
			t.Fatalf("time goes backwards at line %d", i)
		} else {
			prev = ts
		}
		switch {
		case ev.GetFlow() != nil:
			f := ev.GetFlow()
			flows++
			nodes[f.GetNodeName()] = true
			if f.GetUuid() == "" || uuids[f.GetUuid()] {
				t.Fatalf("missing or duplicate uuid at line %d", i)
			}
			uuids[f.GetUuid()] = true
			switch f.GetVerdict() {
			case flowpb.Verdict_DROPPED:
				dropped++
				if f.GetDropReasonDesc() == 0 {
					t.Fatal("drop without reason")
				}
			case flowpb.Verdict_AUDIT:
				audit++
			}
			if f.GetL7() != nil {
				l7++
			}
			if f.GetDestination().GetIdentity() == 2 || f.GetDestination().GetIdentity() == 9 {
				world++
			}
			if f.GetSource().GetNamespace() != "" && len(f.GetSource().GetLabels()) < 10 && f.GetSource().GetWorkloads()[0].GetName() != "coredns" {
				t.Fatalf("pod with %d labels", len(f.GetSource().GetLabels()))
			}
		case ev.GetLostEvents() != nil:
			lost++
		case ev.GetAgentEvent() != nil:
			agent++
		}
	}
	pct := func(x int) float64 { return 100 * float64(x) / float64(flows) }
	t.Logf("%d lines, %.0f B/line: dropped %.1f%%, audit %.1f%%, L7 %.1f%%, world %.1f%%, lost %d, agent %d",
		n, float64(bytesTotal)/float64(n), pct(dropped), pct(audit), pct(l7), pct(world), lost, agent)
	if len(nodes) != 3 {
		t.Errorf("%d nodes", len(nodes))
	}
	if pct(dropped) < 1 || pct(dropped) > 6 || audit == 0 || pct(l7) < 3 || world == 0 || lost == 0 || agent == 0 {
		t.Errorf("unrealistic mix")
	}
}

func BenchmarkAppendLine(b *testing.B) {
	g, err := New(Config{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var line []byte
	var total int
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		line, err = g.AppendLine(line[:0])
		if err != nil {
			b.Fatal(err)
		}
		total += len(line)
	}
	b.SetBytes(int64(total / b.N))
}

func TestOutageLeavesOutOnlyThatNodesSpan(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o, err := ParseOutage("node-02,2026-01-01T00:10:00Z,2026-01-01T00:20:00Z")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Seed: 7, Rate: 5, Start: start}
	all, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Outages = []Outage{o}
	some, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	end := start.Add(30 * time.Minute)
	var want []string
	for all.Now().Before(end) {
		ev := all.Next()
		node, at := ev.GetNodeName(), ev.GetTime().AsTime()
		if (node == "node-02" || node == "prod-kr1/node-02") && !at.Before(o.From) && at.Before(o.To) {
			continue
		}
		want = append(want, ev.String())
	}
	var got []string
	for some.Now().Before(end) {
		got = append(got, some.Next().String())
	}
	// The other nodes' events, and node-02's outside the span, are the same
	// events as without the outage.
	if len(got) < len(want) {
		t.Fatalf("%d events with the outage, want %d", len(got), len(want))
	}
	got = got[:len(want)]
	if !slices.Equal(got, want) {
		t.Fatal("events with the outage differ from those without it, minus the node's span")
	}
	if len(all.NodeNames()) != 3 {
		t.Fatal(all.NodeNames())
	}
	for _, bad := range []string{"node-02", "node-02,2026-01-01T00:10:00Z", "node-02,2026-01-01T00:10:00Z,2026-01-01T00:10:00Z", ",2026-01-01T00:10:00Z,2026-01-01T00:20:00Z", "node-02,x,2026-01-01T00:20:00Z"} {
		if _, err := ParseOutage(bad); err == nil {
			t.Errorf("ParseOutage(%q) accepted", bad)
		}
	}
	cfg.Outages = []Outage{{Node: "node-09", From: o.From, To: o.To}}
	if _, err := New(cfg); err == nil {
		t.Error("an outage of a node the cluster does not have was accepted")
	}
}

func TestProbesFillEveryMinuteOfEveryNode(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g, err := New(Config{Seed: 3, Rate: 0.001, Start: start, ProbeEvery: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	end := start.Add(3 * time.Hour)
	seen := map[string]map[int64]bool{}
	probes := 0
	var last time.Time
	for g.Now().Before(end) {
		ev := g.Next()
		f := ev.GetFlow()
		if f == nil {
			continue
		}
		at := f.GetTime().AsTime()
		if at.Before(last.Truncate(time.Millisecond).Add(-time.Millisecond)) {
			t.Fatalf("flow at %s after one at %s", at, last)
		}
		if at.After(last) {
			last = at
		}
		if seen[f.GetNodeName()] == nil {
			seen[f.GetNodeName()] = map[int64]bool{}
		}
		seen[f.GetNodeName()][at.Unix()/60] = true
		if slices.Equal(f.GetSource().GetLabels(), []string{"reserved:host"}) && f.GetTrafficDirection() == flowpb.TrafficDirection_INGRESS {
			probes++
			if f.GetDestination().GetPodName() == "" || !strings.HasSuffix(f.GetNodeName(), "/node-0"+string(rune('1'+pickNode(f)))) {
				t.Fatalf("probe %v", f)
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("flows of %d nodes, want 3", len(seen))
	}
	for node, mins := range seen {
		if len(mins) < 180 {
			t.Errorf("%s: flows in %d of the 180 minutes", node, len(mins))
		}
	}
	if probes < 3*2*180-3 {
		t.Errorf("%d probes in 3 hours of 3 nodes at one per 30 s, want %d", probes, 3*2*180)
	}
	if _, err := New(Config{ProbeEvery: -time.Second}); err == nil {
		t.Error("a negative probe interval was accepted")
	}
}

// pickNode is the node index of a probe's flow, from its host's address.
func pickNode(f *flowpb.Flow) int {
	var n int
	fmt.Sscanf(f.GetIP().GetSource(), "172.18.0.%d", &n)
	return n - 2
}
