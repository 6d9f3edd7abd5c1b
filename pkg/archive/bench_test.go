package archive

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
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
