package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// BenchmarkEachLine is filter's reading of its input: every line of a
// plain events.log handed over, no decoding.
func BenchmarkEachLine(b *testing.B) {
	g, err := gen.New(gen.Config{Seed: 1, Nodes: 3, Rate: 1000})
	if err != nil {
		b.Fatal(err)
	}
	var data []byte
	for range 20000 {
		if data, err = g.AppendLine(data); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), "events.log")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var n int
		if err := eachLine([]string{path}, func(int, lineAt, []byte, error) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != 20000 {
			b.Fatalf("%d lines", n)
		}
	}
}
