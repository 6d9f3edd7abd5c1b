package archive

import (
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

// BenchmarkShredRows measures shredRows on a 4096-row batch (the archive's
// unit of work) of generated flows, whole and under the docs mask (most
// columns NULL), without encoding or compression. ns/row is per flow.
func BenchmarkShredRows(b *testing.B) {
	for _, c := range []struct{ name, mask string }{{"docs-mask", fieldmask.DocsExample}, {"all-fields", ""}} {
		b.Run(c.name, func(b *testing.B) {
			rows := generatedRows(b, 4096, c.mask)
			lay, err := flowSchema()
			if err != nil {
				b.Fatal(err)
			}
			var l [shredLeaves]leaf
			for i := range l {
				l[i].init(&lay.leaves[i])
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				shredRows(&l, rows)
				for j := range l {
					l[j].resetPage()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
		})
	}
}

// generatedRows returns n rows of flowaudit gen's flows with the mask (a
// hubble-export-fieldmask; "" keeps every field) applied.
func generatedRows(tb testing.TB, n int, mask string) []FlowRow {
	tb.Helper()
	g, err := gen.New(gen.Config{Seed: 1, Nodes: 1})
	if err != nil {
		tb.Fatal(err)
	}
	var m *fieldmask.Mask
	if mask != "" {
		if m, err = fieldmask.Compile(fieldmask.ParsePaths(mask)); err != nil {
			tb.Fatal(err)
		}
	}
	sl := &rowSlab{}
	rows := make([]FlowRow, 0, n)
	for len(rows) < n {
		f := g.Next().GetFlow()
		if f == nil {
			continue
		}
		if m != nil {
			masked := &flowpb.Flow{}
			m.Copy(masked, f)
			f = masked
		}
		rows = append(rows, toRow(f, sl))
	}
	return rows
}
