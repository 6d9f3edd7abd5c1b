package ingest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// benchData is 32 MiB of 2 KB lines.
func benchData() []byte {
	line := bytes.Repeat([]byte("f"), 2047)
	line = append(line, '\n')
	return bytes.Repeat(line, 16<<10)
}

// BenchmarkFileSourceRead reads an events.log from disk (page cache) through
// the file source: open, fingerprint, 1 MiB reads, line splitting, batches,
// checkpoints.
func BenchmarkFileSourceRead(b *testing.B) {
	data := benchData()
	path := filepath.Join(b.TempDir(), "events.log")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	src, err := NewFileSource(FileConfig{Path: path}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	lines := 0
	for i := 0; i < b.N; i++ {
		if err := src.Run(context.Background(), flow.Checkpoint{}, func(lb *LineBatch) error { lines += len(lb.Lines); return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkMemorySplit splits the same bytes from memory with the same reader
// (the floor for BenchmarkFileSourceRead).
func BenchmarkMemorySplit(b *testing.B) {
	data := benchData()
	m := NewMetrics(nil)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	lines := 0
	rd := &reader{src: "mem", name: "mem", sp: newSplitter(1 << 20), m: m}
	for i := 0; i < b.N; i++ {
		rd.sp.reset()
		rd.off, rd.line = 0, 0
		if _, err := rd.readAll(context.Background(), bytes.NewReader(data), 4096, func(lb *LineBatch) error { lines += len(lb.Lines); return nil }, true); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(lines)/b.Elapsed().Seconds(), "lines/s")
}
