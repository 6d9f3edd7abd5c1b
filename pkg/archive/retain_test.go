package archive

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

// alias moves every string of m (nested messages and lists included) into
// arena, as a decoder that reuses its line buffer does.
func alias(m protoreflect.Message, arena *[]byte) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		mv := func(s string) protoreflect.Value {
			if s == "" {
				return protoreflect.ValueOfString("")
			}
			off := len(*arena)
			*arena = append(*arena, s...)
			b := (*arena)[off : off+len(s)]
			return protoreflect.ValueOfString(unsafe.String(&b[0], len(b)))
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				switch fd.Kind() {
				case protoreflect.StringKind:
					l.Set(i, mv(l.Get(i).String()))
				case protoreflect.MessageKind:
					alias(l.Get(i).Message(), arena)
				}
			}
		case fd.IsMap():
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, mv(v.String()))
		case fd.Kind() == protoreflect.MessageKind:
			alias(v.Message(), arena)
		}
		return true
	})
}

// TestWriteKeepsNoReferenceToTheBatch: the writer does not copy the flows'
// strings (toRow points into them); parquet-go copies every value it buffers
// before Write returns. Flows whose strings live in one buffer, scribbled
// over after each Write, must archive exactly what pristine copies archive.
func TestWriteKeepsNoReferenceToTheBatch(t *testing.T) {
	g, err := gen.New(gen.Config{Seed: 3, Nodes: 2, Rate: 500, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	var flows []*flowpb.Flow
	for len(flows) < 3000 {
		if f := g.Next().GetFlow(); f != nil {
			flows = append(flows, f)
		}
	}
	write := func(scribble bool) []string {
		root := t.TempDir()
		w, err := Open(Config{Root: root, MaxFileRows: 1200}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var arena []byte
		for i := 0; i < len(flows); i += 500 {
			b := &flow.Batch{}
			arena = arena[:0]
			for _, src := range flows[i : i+500] {
				f := b.Next()
				proto.Reset(f)
				proto.Merge(f, src)
				if scribble {
					alias(f.ProtoReflect(), &arena)
				}
			}
			b.Checkpoint = flow.Checkpoint{Source: "t", Position: "x"}
			if err := w.Write(b); err != nil {
				t.Fatal(err)
			}
			if scribble {
				for j := range arena {
					arena[j] = '#'
				}
				arena = make([]byte, 0, cap(arena)) // and never reuse it unscribbled
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		sc, err := OpenScanner(root)
		if err != nil {
			t.Fatal(err)
		}
		var got []string // JSON at once: the scanner may reuse its rows
		err = sc.ScanFlows(context.Background(), ScanOptions{}, func(rows []FlowRow) error {
			for _, r := range rows {
				b, err := json.Marshal(r)
				if err != nil {
					return err
				}
				got = append(got, string(b))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	want, got := write(false), write(true)
	if len(want) == 0 {
		t.Fatal("nothing archived")
	}
	if len(want) != len(flows) || len(got) != len(flows) {
		t.Fatalf("%d and %d rows archived, want %d", len(want), len(got), len(flows))
	}
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("row %d differs after the batch's memory was reused:\n want %s\n  got %s", i, want[i], got[i])
		}
	}
}

// TestChunks: slots never overlap or move until reset, lists longer than a
// chunk fit, and after reset the same memory is handed out again.
func TestChunks(t *testing.T) {
	var c chunks[int]
	for round := 0; round < 3; round++ {
		var got [][]int
		for i, n := range []int{1, 3, chunkLen - 2, 5, 2 * chunkLen, 1, 7} {
			s := c.take(n)
			if len(s) != n || cap(s) != n {
				t.Fatalf("take(%d): len %d cap %d", n, len(s), cap(s))
			}
			for j := range s {
				if s[j] != 0 {
					t.Fatalf("take(%d): slot not zeroed", n)
				}
				s[j] = i*100000 + j
			}
			got = append(got, s)
		}
		p := c.ptr(42)
		for i, s := range got {
			for j := range s {
				if s[j] != i*100000+j {
					t.Fatalf("round %d: list %d was overwritten", round, i)
				}
			}
		}
		if *p != 42 {
			t.Fatal("ptr overwritten")
		}
		c.reset()
	}
	if len(c.bufs) > 6 {
		t.Fatalf("%d chunks after three identical rounds: not reused", len(c.bufs))
	}
}

// TestPartCache: the cached partition of a row is the one computed afresh,
// across day boundaries, before 1970 and across node names.
func TestPartCache(t *testing.T) {
	var c partCache
	const day = int64(24 * 3600 * 1e9)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		var ns int64
		switch i % 4 {
		case 0:
			ns = r.Int64N(4*day) - 2*day // around 1970
		case 1:
			ns = t0.UnixNano() + r.Int64N(3*day)
		case 2:
			ns = (r.Int64N(40000)-20000)*day + r.Int64N(3) - 1 // day edges
		default:
			ns = r.Int64() - r.Int64()
		}
		if got, want := c.date(ns), time.Unix(0, ns).UTC().Format("2006-01-02"); got != want {
			t.Fatalf("date(%d) = %s, want %s", ns, got, want)
		}
		name := []string{"c/n1", "c/n2", "", "../x", "n1"}[r.IntN(5)]
		if got, want := c.node(name), SanitizeNode(name); got != want {
			t.Fatalf("node(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestScanFileReadsNoMoreThanTheFileHas: asking parquet-go for more rows
// than a file has left costs a page header decode per missing row and
// column; scanning a small file with the scanner's 4096-row buffer must
// cost about what an exactly sized buffer costs.
func TestScanFileReadsNoMoreThanTheFileHas(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i += 100 {
		if err := w.Write(batch(i, i+100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "flows", "*", "*", "*.parquet"))
	if len(files) == 0 {
		t.Fatal("no files")
	}
	allocs := func(bufRows int) (float64, int) {
		buf := make([]FlowRow, bufRows)
		rows := 0
		a := testing.AllocsPerRun(2, func() {
			rows = 0
			if err := scanFile(files[0], buf, "time", windowOf(time.Time{}, time.Time{}), func(r []FlowRow) error { rows += len(r); return nil }); err != nil {
				t.Fatal(err)
			}
		})
		return a, rows
	}
	exact, n := allocs(500)
	big, m := allocs(4096)
	if n != 500 || m != 500 {
		t.Fatalf("read %d and %d rows, want 500", n, m)
	}
	if big > 2*exact {
		t.Fatalf("%.0f allocations with a 4096-row buffer, %.0f with a 500-row one", big, exact)
	}
}
