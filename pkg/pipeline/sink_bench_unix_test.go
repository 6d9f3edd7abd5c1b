//go:build unix

package pipeline

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/ingest"
)

// BenchmarkSink is the archive writer's share of BenchmarkProcessAndCommit:
// the same 25 batches of 4,096 docs-mask flows, decoded and masked before
// the timer, written with a commit every 2 batches, as the daemon's file
// source at 20k flows/s asks for one every other rotation. "per-commit":
// every commit is a flows file and a stats file (at zstd's default level,
// as the daemon writes them when compaction rewrites closed days);
// "per-commit+compaction" adds the merge of those files into one at the
// better level, as the daemon's compaction does once their day has ended;
// "row-log": every commit fsyncs the row log and one file is cut at the
// end (maxFileRows 16Mi, maxFileBytes 1Gi: the row log's limits), at the
// better level; "row-log-provisional" is row-log at zstd's default level.
// cpu-ns/flow (the process's CPU time, getrusage) and ns/flow include the
// commits and the cut; allocs/op and B/op are per 4,096-flow batch.
func BenchmarkSink(b *testing.B) {
	const batches, per = 25, 4096
	all, _ := genLines(b, gen.Config{Seed: 3, Nodes: 1, Rate: 20000}, batches*per)
	c, err := Compile(Spec{FieldMask: fieldmask.ParsePaths(fieldmask.DocsExample)})
	if err != nil {
		b.Fatal(err)
	}
	p := New(Config{Node: "bench"}, &sliceSource{}, c, &recordSink{}, nil, nil)
	in := make([]*flow.Batch, batches)
	for k := range in {
		in[k] = &flow.Batch{}
		p.process(&ingest.LineBatch{Lines: all[k*per : (k+1)*per]}, in[k])
	}
	for _, bc := range []struct {
		name                      string
		log, provisional, compact bool
	}{{"per-commit", false, true, false}, {"per-commit+compaction", false, true, true}, {"row-log", true, false, false}, {"row-log-provisional", true, true, false}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := archive.DefaultConfig()
			cfg.Root = b.TempDir()
			cfg.Log, cfg.ProvisionalPages = bc.log, bc.provisional
			if bc.log {
				cfg.MaxFileRows, cfg.MaxFileBytes = 16<<20, 1<<30
			}
			w, err := archive.Open(cfg, zap.NewNop(), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			var flows int
			b.ReportAllocs()
			b.ResetTimer()
			before := cpuTime(b)
			for i := range b.N {
				batch := in[i%batches]
				flows += len(batch.Flows)
				batch.Checkpoint = flow.Checkpoint{Source: "bench", Position: strconv.Itoa(i)}
				batch.Commit = (i+1)%2 == 0
				if err := w.Write(batch); err != nil {
					b.Fatal(err)
				}
			}
			if bc.compact {
				// The day's files merged as the daemon's hourly compaction
				// does once the day has ended.
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
				res, err := w.Compact(time.Now().Add(72 * time.Hour))
				if err != nil || (b.N > 2 && res.Rows < int64(flows)) { // one file is left alone; stats and losses rows count too
					b.Fatalf("compaction: %+v, %v; want %d rows", res, err, flows)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime(b)-before)/float64(max(flows, 1)), "cpu-ns/flow")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(flows, 1)), "ns/flow")
			b.ReportMetric(float64(flowsBytes(b, cfg.Root))/float64(max(flows, 1)), "file-B/flow")
		})
	}
}
