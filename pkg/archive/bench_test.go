package archive

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

// BenchmarkWrite measures Write of 4096-flow batches (two nodes) including
// the rotation commits the default limits cause.
func BenchmarkWrite(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Root = b.TempDir()
	w, err := Open(cfg, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	bt := batch(0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.Write(bt); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*4096)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkWriteLog is BenchmarkWrite with the row log (Config.Log): each
// batch is also encoded and appended to the log (no fsync: a source asks
// for a commit every other rotation, not every batch).
func BenchmarkWriteLog(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Root, cfg.Log = b.TempDir(), true
	w, err := Open(cfg, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	bt := batch(0, 4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.Write(bt); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*4096)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkCommitDay commits a small batch 1,200 times into one day's
// partition (a file source at Cilium's default rotation commits every ~0.5
// s on a busy node): the cost per commit must not grow with the commits
// before it. Reported: the mean over the last 300 against the first 300.
func BenchmarkCommitDay(b *testing.B) {
	for i := 0; i < b.N; i++ {
		cfg := DefaultConfig()
		cfg.Root = b.TempDir()
		w, err := Open(cfg, zap.NewNop(), prometheus.NewRegistry())
		if err != nil {
			b.Fatal(err)
		}
		bt := batch(0, 16)
		const commits = 1200
		var first, last time.Duration
		for c := 0; c < commits; c++ {
			start := time.Now()
			if err := w.Write(bt); err != nil {
				b.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			switch d := time.Since(start); {
			case c < 300:
				first += d
			case c >= commits-300:
				last += d
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(first.Microseconds())/300, "µs/commit-first300")
		b.ReportMetric(float64(last.Microseconds())/300, "µs/commit-last300")
	}
}

// BenchmarkCompactEachLockHold merges a closed day of 200k generated flows
// (every field) committed as 25 files, with CompactEach, and reports the
// longest time it held the writer (max-hold-ms: what the daemon's batches
// wait for at most) and the merge rate (rows/s).
func BenchmarkCompactEachLockHold(b *testing.B) {
	var longest time.Duration
	benchCompact(b, 200_000, func(w *Writer) (CompactResult, error) {
		return w.compactEach(context.Background(), compactNow, func(fn func() error) error {
			return w.locked(func() error {
				start := time.Now()
				defer func() { longest = max(longest, time.Since(start)) }()
				return fn()
			})
		})
	})
	b.ReportMetric(float64(longest.Microseconds())/1000, "max-hold-ms")
}

// benchCompact times compact on a closed day of n generated flows in files
// of 8,192 (made anew, untimed, for every iteration) and reports rows/s.
func benchCompact(b *testing.B, n int, compact func(*Writer) (CompactResult, error)) {
	var rows int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w := closedDayOfGeneratedFlows(b, n, 8192)
		b.StartTimer()
		res, err := compact(w)
		if err != nil || res.Outputs == 0 || res.Rows != int64(n) {
			b.Fatalf("compaction %+v: %v", res, err)
		}
		rows += res.Rows
		b.StopTimer()
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// closedDayOfGeneratedFlows commits n generated flows on compactDay, in
// files of perFile flows, into a new archive.
func closedDayOfGeneratedFlows(tb testing.TB, n, perFile int) *Writer {
	tb.Helper()
	w, err := Open(Config{Root: tb.TempDir()}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	g, err := gen.New(gen.Config{Seed: 1, Nodes: 1, Start: compactDay})
	if err != nil {
		tb.Fatal(err)
	}
	for done := 0; done < n; {
		bt := &flow.Batch{}
		for bt.Len() < perFile && done < n {
			if f := g.Next().GetFlow(); f != nil {
				x := bt.Next()
				x.Reset()
				proto.Merge(x, f)
				done++
			}
		}
		bt.Checkpoint = flow.Checkpoint{Source: "bench", Position: strconv.Itoa(done)}
		if err := w.Write(bt); err != nil {
			tb.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
	}
	return w
}

// BenchmarkCompactMerge compacts a closed day of 100k generated flows
// (every field) committed as 13 files into one, copying columns (what
// Compact does) and through rows (what it does for a file of another
// schema): rows/s and allocations per row.
func BenchmarkCompactMerge(b *testing.B) {
	for _, byRows := range []bool{false, true} {
		name := "columns"
		if byRows {
			name = "rows"
		}
		b.Run(name, func(b *testing.B) {
			compactByRows = byRows
			defer func() { compactByRows = false }()
			b.ReportAllocs()
			benchCompact(b, 100_000, func(w *Writer) (CompactResult, error) {
				res, err := w.Compact(compactNow)
				if err == nil && res.Outputs != 1 {
					err = fmt.Errorf("%d outputs, want 1", res.Outputs)
				}
				return res, err
			})
		})
	}
}
