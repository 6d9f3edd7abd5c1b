package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// lumberjack never stops its compression goroutine (the test writer).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"))
}

type collected struct {
	lines  []string
	where  []string
	losses []flow.Loss
	cps    []flow.Checkpoint
}

func collect(t *testing.T, s Source, from flow.Checkpoint, stopAfter int) *collected {
	t.Helper()
	c := &collected{}
	errStop := fmt.Errorf("stop")
	err := s.Run(context.Background(), from, func(lb *LineBatch) error {
		for i, l := range lb.Lines {
			c.lines = append(c.lines, string(l))
			c.where = append(c.where, lb.Where[i].String())
		}
		c.losses = append(c.losses, lb.Losses...)
		c.cps = append(c.cps, lb.Checkpoint)
		if stopAfter > 0 && len(c.cps) >= stopAfter {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		t.Fatal(err)
	}
	return c
}

func TestImportLinesLossesAndResume(t *testing.T) {
	dir := t.TempDir()
	var in bytes.Buffer
	var want []string
	for i := 0; i < 5000; i++ {
		l := fmt.Sprintf(`{"flow":{"uuid":"%d"}}`, i)
		if i == 100 {
			in.WriteString(strings.Repeat("x", 2<<20) + "\n") // over-long: skipped and reported
		}
		if i%1000 == 999 {
			in.WriteString(l + "\r\n")
		} else {
			in.WriteString(l + "\n")
		}
		want = append(want, l)
	}
	// A last line without its newline is not final: it is left for a
	// longer copy of the file.
	in.WriteString(`{"flow":{"uuid":"last-without-newline"}}`)
	plain := filepath.Join(dir, "events.log")
	if err := os.WriteFile(plain, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(in.Bytes())
	zw.Close()
	gzPath := filepath.Join(dir, "events-2026-01-01T00-00-00.000.log.gz")
	if err := os.WriteFile(gzPath, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := NewImportSource(plain, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewImportSource(gzPath, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != b.ID() {
		t.Fatalf("same content, different IDs %s %s: a re-import of the compressed backup would duplicate", a.ID(), b.ID())
	}
	for _, s := range []*ImportSource{a, b} {
		c := collect(t, s, flow.Checkpoint{}, 0)
		if strings.Join(c.lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%s: %d lines, want %d", s.path, len(c.lines), len(want))
		}
		if len(c.losses) != 1 || c.losses[0].Reason != flow.LossLineTooLong || c.losses[0].Bytes != 2<<20+1 {
			t.Fatalf("losses %+v", c.losses)
		}
		if r := s.Result(); r.Partial != int64(len(`{"flow":{"uuid":"last-without-newline"}}`)) || r.PartialLine != 5002 || r.Damage != nil {
			t.Fatalf("result %+v: the incomplete last line not reported", r)
		}
		if !strings.HasSuffix(c.where[0], ":1") || !strings.HasSuffix(c.where[101], ":103") {
			t.Fatalf("line numbers %s %s", c.where[0], c.where[101])
		}
		// Resume from every checkpoint: the rest, exactly.
		for _, k := range []int{1, 2, 3} {
			part := collect(t, s, flow.Checkpoint{}, k)
			rest := collect(t, s, part.cps[len(part.cps)-1], 0)
			if got := append(part.lines, rest.lines...); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("resume after %d batches: %d+%d lines, want %d", k, len(part.lines), len(rest.lines), len(want))
			}
		}
		// From the final checkpoint: nothing (idempotent import).
		all := collect(t, s, flow.Checkpoint{}, 0)
		if again := collect(t, s, all.cps[len(all.cps)-1], 0); len(again.lines) != 0 {
			t.Fatalf("%d lines after the final checkpoint", len(again.lines))
		}
	}
}

func TestGzSuccessor(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "events-2026-01-01T00-00-00.000.log")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("a\nb\n"))
	zw.Close()
	os.WriteFile(p+".gz", gz.Bytes(), 0o644)
	s, err := NewImportSource(p, nil, nil) // the .log was compressed away meanwhile
	if err != nil {
		t.Fatal(err)
	}
	if c := collect(t, s, flow.Checkpoint{}, 0); strings.Join(c.lines, ",") != "a,b" {
		t.Fatalf("lines %v", c.lines)
	}
}

func FuzzSplitter(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		if len(data) > 1<<14 {
			return
		}
		max := 8
		sp := newSplitter(max)
		sp.buf = make([]byte, 16) // small buffer: exercise compaction
		var got []string
		r := &chunkReader{data: data, n: int(chunk%7) + 1}
		for {
			n, err := sp.fill(r)
			for {
				l, tooLong := sp.next()
				if tooLong > 0 {
					got = append(got, "<long>")
					continue
				}
				if l == nil {
					break
				}
				got = append(got, string(l))
			}
			if err != nil || n == 0 && r.done() {
				break
			}
		}
		var want []string
		lines := strings.Split(string(data), "\n")
		for _, l := range lines[:len(lines)-1] {
			l = strings.TrimSuffix(l, "\r")
			if len(l) > max {
				want = append(want, "<long>")
				continue
			}
			want = append(want, l)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("got %q want %q", got, want)
		}
	})
}

type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, fmt.Errorf("EOF")
	}
	n := min(c.n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkReader) done() bool { return len(c.data) == 0 }

// TestSpareSplitters: a line buffer goes back to the next read empty, and
// only to a read of the same line limit; files imported one after the other
// with the same buffer keep their own lines.
func TestSpareSplitters(t *testing.T) {
	spareSplitters.mu.Lock()
	spareSplitters.free = nil
	spareSplitters.mu.Unlock()
	sp := getSplitter(8)
	sp.fill(strings.NewReader("0123456789abc")) // over-long, no newline yet
	if l, _ := sp.next(); l != nil || !sp.skipping {
		t.Fatalf("setup: line %q, skipping %v", l, sp.skipping)
	}
	putSplitter(sp)
	if other := getSplitter(16); other == sp {
		t.Fatal("a buffer for 8-byte lines reused for 16-byte ones")
	}
	again := getSplitter(8)
	if again != sp || again.skipping || again.pending() != 0 {
		t.Fatalf("reused %v, skipping %v, pending %d", again == sp, again.skipping, again.pending())
	}
	putSplitter(again)

	dir := t.TempDir()
	for i, content := range []string{"a\nb\npartial", "c\nd\n"} { // "partial" waits for its newline
		p := filepath.Join(dir, fmt.Sprintf("events-%d.log", i))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := NewImportSource(p, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a,b", "c,d"}[i]
		if c := collect(t, s, flow.Checkpoint{}, 0); strings.Join(c.lines, ",") != want {
			t.Fatalf("file %d: lines %v, want %s", i, c.lines, want)
		}
	}
}
