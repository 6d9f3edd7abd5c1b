package ingest

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// BenchmarkLineAccess is why the file source reads with read(2) into its
// buffer and does not map the file: it finds every newline of 46 MB of
// generated events.log lines held in the Go heap, read through a 64 KiB or
// 1 MiB buffer, or mapped (whole, or in windows of 1, 2, 4 or 8 MiB). A
// window too small for the kernel to map the page cache with 2 MiB entries
// is an order of magnitude slower than a read; larger ones save a few tens
// of ns per 2.3 KB line over a read, ~1-3% of decoding it, and their pages
// count in the daemon's RSS. bench/README.md has the numbers.
func BenchmarkLineAccess(b *testing.B) {
	g, err := gen.New(gen.Config{Seed: 5, Nodes: 3, Rate: 1000})
	if err != nil {
		b.Fatal(err)
	}
	var data []byte
	for len(data) < 46<<20 {
		if data, err = g.AppendLine(data); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(b.TempDir(), "events.log")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	want := bytes.Count(data, []byte{'\n'})
	count := func(p []byte) int {
		n := 0
		for {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				return n
			}
			n++
			p = p[i+1:]
		}
	}
	mapped := func(b *testing.B, win, flags int) int {
		n := 0
		for off := 0; off < len(data); off += win {
			m, err := syscall.Mmap(int(f.Fd()), int64(off), min(win, len(data)-off), syscall.PROT_READ, syscall.MAP_SHARED|flags)
			if err != nil {
				b.Fatal(err)
			}
			n += count(m)
			if err := syscall.Munmap(m); err != nil {
				b.Fatal(err)
			}
		}
		return n
	}
	read := func(b *testing.B, size int) int {
		buf, n := make([]byte, size), 0
		for off := 0; off < len(data); off += size {
			k, err := f.ReadAt(buf, int64(off))
			if err != nil && k == 0 {
				b.Fatal(err)
			}
			n += count(buf[:k]) // whole lines only when size divides evenly; the count is per chunk
		}
		return n
	}
	for _, c := range []struct {
		name string
		scan func(b *testing.B) int
	}{
		{"heap", func(*testing.B) int { return count(data) }},
		{"read-64KiB", func(b *testing.B) int { return read(b, 64<<10) }},
		{"read-1MiB", func(b *testing.B) int { return read(b, 1<<20) }},
		{"mmap-whole", func(b *testing.B) int { return mapped(b, len(data), 0) }},
		{"mmap-1MiB", func(b *testing.B) int { return mapped(b, 1<<20, 0) }},
		{"mmap-1MiB-populate", func(b *testing.B) int { return mapped(b, 1<<20, syscall.MAP_POPULATE) }},
		{"mmap-2MiB", func(b *testing.B) int { return mapped(b, 2<<20, 0) }},
		{"mmap-4MiB", func(b *testing.B) int { return mapped(b, 4<<20, 0) }},
		{"mmap-8MiB", func(b *testing.B) int { return mapped(b, 8<<20, 0) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				if n := c.scan(b); n != want {
					b.Fatalf("%d newlines, want %d", n, want)
				}
			}
		})
	}
}
