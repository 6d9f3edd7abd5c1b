package pipeline

import (
	"io/fs"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/ingest"
)

// BenchmarkProcessAndCommit is the daemon's work per line with the docs
// mask, from the line to the committed file: 4,096-line batches of one
// node's generated flows (25 different batches in turn) decoded, masked and
// written, with a commit every 2 batches ("commit-8k": a file source
// following a busy node's exporter, which rotates every ~0.23 s at 20k
// flows/s and is committed every other rotation) or only at the end
// ("one-file": an import); "commit-8k-provisional" is commit-8k with the
// archive setting the daemon had when compaction was on (archive.Config's
// ProvisionalPages); "commit-8k-log" is commit-8k with the daemon's row log
// (archive.Config.Log): each commit fsyncs the log and one file is cut at
// the end. ns/line is per line, the commits included; file-B/line the
// flows files' bytes per line.
func BenchmarkProcessAndCommit(b *testing.B) {
	const batches, per = 25, 4096
	all, _ := genLines(b, gen.Config{Seed: 3, Nodes: 1, Rate: 20000}, batches*per)
	c, err := Compile(Spec{FieldMask: fieldmask.ParsePaths(fieldmask.DocsExample)})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name        string
		every       int
		provisional bool
		log         bool // commits fsync the row log; one file is cut at the end
	}{{"commit-8k", 2, false, false}, {"commit-8k-provisional", 2, true, false}, {"commit-8k-log", 2, false, true}, {"one-file", 0, false, false}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := archive.DefaultConfig()
			cfg.Root = b.TempDir()
			cfg.ProvisionalPages, cfg.Log = bc.provisional, bc.log
			w, err := archive.Open(cfg, zap.NewNop(), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			p := New(Config{Node: "bench"}, &sliceSource{}, c, &recordSink{}, nil, nil)
			batch := &flow.Batch{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				batch.Reset()
				k := i % batches
				p.process(&ingest.LineBatch{Lines: all[k*per : (k+1)*per]}, batch)
				batch.Checkpoint = flow.Checkpoint{Source: "bench", Position: strconv.Itoa(i)}
				batch.Commit = bc.log && (i+1)%bc.every == 0
				if err := w.Write(batch); err != nil {
					b.Fatal(err)
				}
				if !bc.log && bc.every > 0 && (i+1)%bc.every == 0 {
					if err := w.Flush(); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/line")
			b.ReportMetric(float64(flowsBytes(b, cfg.Root))/float64(b.N*per), "file-B/line")
		})
	}
}

// flowsBytes is the size of the flows table's files under root.
func flowsBytes(b *testing.B, root string) int64 {
	var n int64
	err := filepath.WalkDir(filepath.Join(root, "flows"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".parquet" {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
