package archive

import (
	"testing"

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
