package pipeline

import (
	"testing"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/ingest"
)

// BenchmarkProcess is the hot path of import and the daemon on one line
// batch (decode, filter, mask, stats), the archive left out: generated
// lines of 3 nodes with the docs-example mask, the field mask's Prune run
// on every kept flow ("prune", what every build before a36a37d did) or
// skipped because the plan decodes the mask's fields only ("plan"); and a
// cluster-wide log of 300 nodes' flows ("nodes300": Relay, or the import of
// a cluster's logs), whose stats entries per node and minute AddStat finds;
// and the DROPPED/ERROR allowlist of bench/compare.sh ("allow-dropped"), whose
// denied lines are read up to node_name (the stats' fields).
func BenchmarkProcess(b *testing.B) {
	for _, bc := range []struct {
		name  string
		nodes int
		prune bool
		allow string
	}{
		{"prune", 3, true, ""}, {"plan", 3, false, ""}, {"nodes300", 300, false, ""},
		{"allow-dropped", 3, false, `{"verdict":["DROPPED","ERROR"]}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			lines, size := genLines(b, gen.Config{Seed: 3, Nodes: bc.nodes, Rate: 1000}, 4096)
			c, err := Compile(Spec{Allowlist: bc.allow, FieldMask: fieldmask.ParsePaths(fieldmask.DocsExample)})
			if err != nil {
				b.Fatal(err)
			}
			c.prune = bc.prune
			p := New(Config{Node: "bench"}, &sliceSource{}, c, &recordSink{}, nil, nil)
			lb := &ingest.LineBatch{Lines: lines}
			batch := &flow.Batch{}
			p.process(lb, batch) // the batch's messages, as a long-running pipeline has them
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				batch.Reset()
				p.process(lb, batch)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/line")
		})
	}
}
