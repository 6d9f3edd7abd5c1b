package flow

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestFieldSet(t *testing.T) {
	f := func(s FieldSet, want string) {
		t.Helper()
		if got := s.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	f(FieldSet{}, "")
	f(Fields("verdict"), "verdict")
	f(Fields("source.pod_name", "source"), "source")
	f(Fields("source.pod_name", "source.namespace", "verdict", "verdict"), "source.namespace,source.pod_name,verdict")
	f(Fields("l4.TCP").Union(Fields("l4")), "l4")
	f(Fields("sourcex").Union(Fields("source")), "source,sourcex")
	f(Fields("a").Union(AllFields()), "*")

	s := Fields("source.pod_name", "l7")
	for path, want := range map[string]bool{"source.pod_name": true, "source": false, "l7.http.url": true, "source.namespace": false, "l7": true} {
		if got := s.Has(path); got != want {
			t.Errorf("Has(%q) = %v, want %v", path, got, want)
		}
	}
	for path, want := range map[string]bool{"source": true, "source.pod_name": true, "destination": false, "l7.http": true, "sourcex": false} {
		if got := s.Touches(path); got != want {
			t.Errorf("Touches(%q) = %v, want %v", path, got, want)
		}
	}
	if !(FieldSet{}).IsEmpty() || AllFields().IsEmpty() || !AllFields().IsAll() {
		t.Error("IsEmpty/IsAll wrong")
	}
}

func TestArenaStringsSurviveGrowth(t *testing.T) {
	var a Arena
	var got []string
	var want []string
	for i := 0; i < 20000; i++ {
		v := strings.Repeat(string(rune('a'+i%26)), 1+i%40)
		want = append(want, v)
		got = append(got, a.String([]byte(v)))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("string %d changed: %q != %q", i, got[i], want[i])
		}
	}
	if a.Size() == 0 {
		t.Fatal("arena reports no size")
	}
	a.Reset()
	if a.Size() != 0 {
		t.Fatalf("size after reset %d", a.Size())
	}
	// Memory is reused after Reset: filling it again allocates nothing.
	allocs := testing.AllocsPerRun(10, func() {
		for i := 0; i < 2000; i++ {
			a.String([]byte("k8s:io.kubernetes.pod.namespace=payments"))
		}
		a.Reset()
	})
	if allocs != 0 {
		t.Errorf("%.0f allocations refilling a reset arena", allocs)
	}
}

func TestBatchSlotsAreReused(t *testing.T) {
	var b Batch
	f1 := b.Next()
	f1.Uuid = "x"
	b.Next()
	b.Unnext()
	if b.Len() != 1 {
		t.Fatalf("len %d", b.Len())
	}
	b.AddStat("n", 60, Counts{Seen: 1})
	b.AddStat("n", 60, Counts{Seen: 2, Kept: 1})
	b.AddStat("m", 60, Counts{Seen: 1})
	if len(b.Stats) != 2 || b.Stats[0].Counts.Seen != 3 || b.Stats[0].Counts.Kept != 1 {
		t.Fatalf("stats %+v", b.Stats)
	}
	b.Reset()
	if b.Len() != 0 || len(b.Stats) != 0 {
		t.Fatal("reset left data")
	}
	if f := b.Next(); f != f1 {
		t.Fatal("slot not reused after reset")
	}
	allocs := testing.AllocsPerRun(100, func() {
		b.Reset()
		for i := 0; i < 2; i++ {
			b.Next()
		}
	})
	if allocs != 0 {
		t.Errorf("%.0f allocations reusing slots", allocs)
	}
}

// TestAddStatManyNodes: a batch of many nodes' flows (its stats past the
// scanned tail, found through the index) has one entry per node and
// minute, in the order first seen, with every count; across Resets, and
// when Stats was truncated by hand between two calls.
func TestAddStatManyNodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var b Batch
	for round := range 3 {
		type key struct {
			node   string
			minute int64
		}
		want := map[key]uint64{}
		var order []key
		for range 5000 {
			k := key{fmt.Sprintf("c/node-%03d", rng.IntN(200)), int64(60 * rng.IntN(3))}
			if round == 2 && rng.IntN(10) == 0 {
				k.node = "c/busy" // runs of one node, as a node's flows come
			}
			if _, ok := want[k]; !ok {
				order = append(order, k)
			}
			want[k]++
			b.AddStat(k.node, k.minute, Counts{Seen: 1})
		}
		if len(b.Stats) != len(order) {
			t.Fatalf("round %d: %d stats for %d node minutes", round, len(b.Stats), len(order))
		}
		for i, s := range b.Stats {
			if k := (key{s.Node, s.Minute}); k != order[i] || s.Counts.Seen != want[k] {
				t.Fatalf("round %d: stat %d is %s/%d seen %d, want %v seen %d", round, i, s.Node, s.Minute, s.Counts.Seen, order[i], want[order[i]])
			}
		}
		b.Reset()
	}
	for i := range 20 {
		b.AddStat(fmt.Sprint(i), 0, Counts{Seen: 1})
	}
	b.Stats = b.Stats[:2] // by hand: the index holds positions past the end
	for i := range 20 {
		b.AddStat(fmt.Sprint(i), 0, Counts{Seen: 1})
	}
	if len(b.Stats) != 20 || b.Stats[0].Counts.Seen != 2 || b.Stats[19].Counts.Seen != 1 {
		t.Fatalf("after truncation: %d stats, %+v", len(b.Stats), b.Stats[:2])
	}
}

// TestFieldSetCovers: a set covers another when each of its fields is in
// the set itself or through a parent.
func TestFieldSetCovers(t *testing.T) {
	for _, c := range []struct {
		s, o FieldSet
		want bool
	}{
		{Fields("source", "verdict"), Fields("source.pod_name", "verdict"), true},
		{Fields("source.pod_name"), Fields("source"), false},
		{Fields("source.pod_name"), Fields("source.namespace"), false},
		{Fields("verdict"), FieldSet{}, true},
		{FieldSet{}, Fields("verdict"), false},
		{AllFields(), Fields("l7.http.url"), true},
		{Fields("l7"), AllFields(), false},
		{AllFields(), AllFields(), true},
	} {
		if got := c.s.Covers(c.o); got != c.want {
			t.Errorf("%q covers %q: %v, want %v", c.s, c.o, got, c.want)
		}
	}
}
