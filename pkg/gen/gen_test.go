package gen

import (
	"bytes"
	"testing"

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
