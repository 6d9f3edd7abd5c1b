package hubblejson

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// TestCountStructural compares countStructural (vector code on amd64: AVX2
// where the CPU has it, rest_amd64_test.go tests SSE2) with the byte-by-byte
// count on random text of every length up to past a 255-block flush (8,160
// bytes with AVX2, 4,080 with SSE2), with every byte value somewhere.
func TestCountStructural(t *testing.T) { testCountStructural(t) }

func testCountStructural(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte(`"{}[]\ az09:,.` + "\t\x00\x1f\x7f\x80\xc3\xff")
	for n := 1; n < 9000; n += 1 + r.IntN(37) {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet)-7)] // mostly plain
		}
		if r.IntN(3) == 0 {
			b[r.IntN(n)] = alphabet[r.IntN(len(alphabet))]
		}
		for _, from := range []int{1, 2, 16, 17, 33} {
			if from > n {
				continue
			}
			if got, want := countStructural(b, from), countStructuralGeneric(b, from); got != want {
				t.Fatalf("%d bytes from %d: %+v, want %+v", n, from, got, want)
			}
		}
	}
	for c := 0; c < 256; c++ {
		b := bytes.Repeat([]byte("a"), 4100)
		b[4090] = byte(c)
		if got, want := countStructural(b, 1), countStructuralGeneric(b, 1); got != want {
			t.Fatalf("byte %#x: %+v, want %+v", c, got, want)
		}
	}
	// The seam of two objects or lists, at every position of a block and
	// across blocks (the byte before from included).
	for i := 1; i < 100; i++ {
		for _, seam := range []string{"}{", "]{", "}[", "]["} {
			b := bytes.Repeat([]byte("a"), 100)
			copy(b[i-1:], seam)
			for _, from := range []int{1, i, i + 1} {
				if from > len(b) || from < 1 {
					continue
				}
				got, want := countStructural(b, from), countStructuralGeneric(b, from)
				if got != want || want.special != (from <= i) {
					t.Fatalf("%q at %d, from %d: %+v, generic %+v", seam, i-1, from, got, want)
				}
			}
		}
	}
}

func FuzzCountStructural(f *testing.F) {
	f.Add([]byte(`,"l4":{"TCP":{"destination_port":80}},"Summary":"a \"b\""}}`), 1)
	f.Add(bytes.Repeat([]byte(`{"a":["\u00e9"]}`), 300), 5)
	f.Add([]byte(`"verdict":"FORWARDED"}}{"flow":{"verdict":"DROPPED"}}`), 22)
	f.Fuzz(func(t *testing.T, b []byte, from int) {
		if from < 1 || from > len(b) {
			return
		}
		if got, want := countStructural(b, from), countStructuralGeneric(b, from); got != want {
			t.Fatalf("from %d: %+v, want %+v", from, got, want)
		}
		if hasVectorCount {
			fuzzVectorCounts(t, b, from)
		}
	})
}

func TestRestComplete(t *testing.T) {
	for _, c := range []struct {
		rest string
		want bool
	}{
		{`}}`, true},
		{`},"node_name":"a/b","time":"2026-01-01T00:00:00Z"}`, true},
		{`,"l4":{"TCP":{"flags":{"SYN":true}}},"labels":["a","b"]}}  `, true},
		{`,"Summary":"DNS Answer \"10.0.0.1\" TTL: 60"}}`, true},
		{`,"Summary":"a \\"}}`, true}, // an escaped backslash, then the closing quote
		{`,"url":"/x?a=1\u0026b={id}"}}`, true},
		{`,"url":"/x?a={id"}}`, false},                  // a lone brace inside a string: Decode then reads the line whole
		{`,"l4":{"TCP":{"destination_port":80}`, false}, // cut short
		{`,"l4":{"TCP":{"destination_port":80}}}}`, true},
		{`,"l4":{"TCP":{"destination_port":80}}}}}`, false},
		{`,"Summary":"x}}`, false},
		{`,"Summary":"x\"}}`, false},
		{`,"Summary":"tab	here"}}`, false},
		{`,"Summary":"é"}}`, false},
		{`,"l4":{"TCP":{"destination_port":8{"flow":{"verdict":"DROPPED"}}`, false}, // two lines run together
		{`}} x`, false},
		{``, false},
		{`}}{"flow":{"verdict":"DROPPED"}}`, false}, // two whole lines run together
		{`},"a":[{"b":1},{"c":[[1],[2]]}]}`, true},
		{`},"a":[{"b":1}{"c":2}]}`, false},
	} {
		if got := restComplete([]byte(`"`+c.rest), 1); got != c.want {
			t.Errorf("restComplete(%s) = %v, want %v", c.rest, got, c.want)
		}
	}
}

// TestDecodeStopsAfterTheFilterFields: with a filter on the verdict, Decode
// reads a line up to "verdict" and checks the rest only for completeness;
// Finish then reads it whole. Damage the check sees is Decode's error (as
// protojson's); a wrong value it does not see is Finish's.
func TestDecodeStopsAfterTheFilterFields(t *testing.T) {
	if !canStop {
		t.Skip("Decode reads every line whole on this architecture")
	}
	lines := readLines(t, filepath.Join(fixtures(t), "generated", "encoder-golden-nomask.jsonl"))
	line := lines[0]
	full := func(l []byte) (*flowpb.Flow, error) {
		var ev observerpb.ExportEvent
		err := protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(l, &ev)
		return ev.GetFlow(), err
	}
	newDec := func() *Decoder { return NewDecoder(NewPlan(flow.Fields("verdict"), flow.AllFields())) }
	// cut is the offset just past the verdict's value.
	cut := bytes.Index(line, []byte(`"verdict":"FORWARDED"`)) + len(`"verdict":"FORWARDED"`)
	edit := func(at int, s string) []byte {
		return append(append(append([]byte(nil), line[:at]...), s...), line[at:]...)
	}

	t.Run("whole line", func(t *testing.T) {
		d, f := newDec(), &flowpb.Flow{}
		if _, err := d.Decode(line, f); err != nil || !d.LastStopped() {
			t.Fatalf("Decode: %v, stopped %v", err, d.LastStopped())
		}
		if f.Verdict != flowpb.Verdict_FORWARDED || f.Source != nil || f.Time != nil || f.NodeName != "" {
			t.Fatalf("after Decode: want the verdict alone, got %v", f)
		}
		if err := d.Finish(f); err != nil {
			t.Fatal(err)
		}
		want, _ := full(line)
		if !proto.Equal(f, want) {
			t.Fatalf("after Finish:\n%v\nwant\n%v", f, want)
		}
	})
	t.Run("escaped quotes after the verdict", func(t *testing.T) {
		l := bytes.Replace(line, []byte(`"Summary":"TCP Flags: SYN"`), []byte(`"Summary":"DNS Answer \"10.0.0.1\" {"`), 1)
		if _, err := full(l); err != nil {
			t.Fatalf("test line: %v\n%s", err, l)
		}
		d, f := newDec(), &flowpb.Flow{}
		if _, err := d.Decode(l, f); err != nil {
			t.Fatal(err)
		}
		if d.LastStopped() {
			t.Fatal("a '{' inside a string after the verdict: want the line read whole")
		}
		l = bytes.Replace(l, []byte(` {"`), []byte(`"`), 1)
		if _, err := d.Decode(l, f); err != nil || !d.LastStopped() {
			t.Fatalf("escaped quotes after the verdict: %v, stopped %v", err, d.LastStopped())
		}
	})
	for _, c := range []struct {
		name string
		line []byte
	}{
		{"cut short", line[:len(line)*2/3]},
		{"run into the next line", append(append([]byte(nil), line[:len(line)/2]...), line...)},
		{"two whole lines on one", append(append([]byte(nil), line...), line...)},
		{"invalid UTF-8", edit(cut, `,"Summary":"`+"\xff"+`"`)},
		{"a control character", edit(cut, `,"Summary":"`+"\x01"+`"`)},
		{"trailing bytes", append(append([]byte(nil), line...), " x"...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, perr := full(c.line)
			if perr == nil {
				t.Fatalf("protojson accepts the test line\n%s", c.line)
			}
			d := newDec()
			if _, err := d.Decode(c.line, &flowpb.Flow{}); err == nil {
				t.Fatalf("Decode accepted it (stopped %v); protojson: %v", d.LastStopped(), perr)
			}
		})
	}
	t.Run("a wrong value after the verdict", func(t *testing.T) {
		l := bytes.Replace(line, []byte(`"destination_port":80`), []byte(`"destination_port":true`), 1)
		if _, err := full(l); err == nil {
			t.Fatal("protojson accepts the test line")
		}
		d, f := newDec(), &flowpb.Flow{}
		if _, err := d.Decode(l, f); err != nil || !d.LastStopped() {
			t.Fatalf("Decode: %v, stopped %v; want it to stop after the verdict", err, d.LastStopped())
		}
		if err := d.Finish(f); err == nil || !strings.Contains(err.Error(), "destination") {
			t.Fatalf("Finish: %v; want protojson's error about the port", err)
		}
	})
	t.Run("no verdict", func(t *testing.T) {
		l := bytes.Replace(line, []byte(`"verdict":"FORWARDED",`), nil, 1)
		d, f := newDec(), &flowpb.Flow{}
		if _, err := d.Decode(l, f); err != nil || d.LastStopped() {
			t.Fatalf("Decode: %v, stopped %v; want the line read whole", err, d.LastStopped())
		}
		if err := d.Finish(f); err != nil {
			t.Fatal(err)
		}
		want, _ := full(l)
		if !proto.Equal(f, want) {
			t.Fatal("after Finish: differs from protojson")
		}
	})
	t.Run("eager", func(t *testing.T) {
		d, f := newDec(), &flowpb.Flow{}
		d.eager = true
		if _, err := d.Decode(line, f); err != nil || d.LastStopped() {
			t.Fatalf("Decode: %v, stopped %v; a decoder decoding the kept fields at once reads the line whole", err, d.LastStopped())
		}
	})
}

// BenchmarkCountStructural: the check of what follows the verdict in a
// fixture line (1,494 bytes), as restComplete makes it for a rejected line.
func BenchmarkCountStructural(b *testing.B) {
	line := readLines(b, filepath.Join(fixtures(b), "generated", "encoder-golden-nomask.jsonl"))[0]
	from := bytes.Index(line, []byte(`"verdict":"FORWARDED"`)) + len(`"verdict":"FORWARDED"`)
	if !restComplete(line, from) {
		b.Fatal("the fixture's rest does not look complete")
	}
	b.SetBytes(int64(len(line) - from))
	for range b.N {
		restComplete(line, from)
	}
}
