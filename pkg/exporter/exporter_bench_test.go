package exporter

import (
	"testing"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

func benchLines(b *testing.B) [][]byte {
	g, err := gen.New(gen.Config{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	lines := make([][]byte, 4096)
	for i := range lines {
		l, err := g.AppendLine(nil)
		if err != nil {
			b.Fatal(err)
		}
		lines[i] = l[:len(l)-1]
	}
	return lines
}

func benchExport(b *testing.B, allow string, mask string) { benchExportDeny(b, allow, "", mask) }

func benchExportDeny(b *testing.B, allow, deny string, mask string) {
	lines := benchLines(b)
	a, err := filter.ParseFilters(allow)
	if err != nil {
		b.Fatal(err)
	}
	d, err := filter.ParseFilters(deny)
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(Config{Allow: a, Deny: d, FieldMask: fieldmask.ParsePaths(mask)})
	if err != nil {
		b.Fatal(err)
	}
	var out []byte
	var in int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l := lines[i%len(lines)]
		in += len(l)
		if out, err = e.Line(out[:0], l); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(in / b.N))
}

// BenchmarkExportDocMask is `flowaudit filter --fieldmask <docs example>` per line.
func BenchmarkExportDocMask(b *testing.B) { benchExport(b, "", fieldmask.DocsExample) }

// BenchmarkExportAllowDropped is `flowaudit filter --allowlist {"verdict":["DROPPED","ERROR"]}` per line.
func BenchmarkExportAllowDropped(b *testing.B) {
	benchExport(b, `{"verdict":["DROPPED","ERROR"]}`, "")
}

// BenchmarkExportAll is `flowaudit filter` with no filter and no mask per line.
func BenchmarkExportAll(b *testing.B) { benchExport(b, "", "") }

// BenchmarkExportDenyDroppedDocMask is `flowaudit filter --denylist
// {"verdict":["DROPPED"]} --fieldmask <docs example>` per line: a filter
// that keeps most flows (decoded in one pass).
func BenchmarkExportDenyDroppedDocMask(b *testing.B) {
	benchExportDeny(b, "", `{"verdict":["DROPPED"]}`, fieldmask.DocsExample)
}
