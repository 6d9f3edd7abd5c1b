//go:build unix

package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
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

// BenchmarkFollowBursts is a following daemon's pattern through Pipeline.Run
// into the archive, with and without the sink goroutine (Config.Inline): per
// op one burst of 10 batches of 450 lines, each after a read(2) of their
// 1 MiB from a file in the page cache (what a busy node's exporter writes
// in ~0.23 s at 20k flows/s; the docs mask), then 20 ms idle, as the file
// source waits between reads; a commit every other burst. cpu-ns/line is
// the process's CPU time (getrusage: user + system, all threads) per line,
// the number the daemon's CPU budget is about; ns/op includes the idle time.
func BenchmarkFollowBursts(b *testing.B) {
	const batches, per = 10, 450
	all, _ := genLines(b, gen.Config{Seed: 3, Nodes: 1, Rate: 20000}, 4*batches*per)
	c, err := Compile(Spec{FieldMask: fieldmask.ParsePaths(fieldmask.DocsExample)})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "events.log")
	if err := os.WriteFile(path, bytes.Join(all, []byte{'\n'}), 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < 2<<20 {
		b.Fatalf("%s: %v, %d bytes", path, err, fi.Size())
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			cfg := archive.DefaultConfig()
			cfg.Root = b.TempDir()
			cfg.ProvisionalPages = true
			w, err := archive.Open(cfg, zap.NewNop(), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			src := &burstSource{lines: all, bursts: b.N, batches: batches, per: per, idle: 20 * time.Millisecond, f: f, size: fi.Size()}
			p := New(Config{Node: "bench", Inline: mode.inline}, src, c, w, nil, nil)
			b.ReportAllocs()
			before := cpuTime(b)
			b.ResetTimer()
			if err := p.Run(context.Background(), flow.Checkpoint{}); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			lines := float64(b.N * batches * per)
			b.ReportMetric(float64(cpuTime(b)-before)/lines, "cpu-ns/line")
		})
	}
}

// burstSource emits bursts of batches of lines, idle between bursts.
type burstSource struct {
	lines                [][]byte
	bursts, batches, per int
	idle                 time.Duration
	f                    *os.File // 1 MiB of it read before each batch, in turn
	size                 int64
}

func (s *burstSource) ID() string { return "bench:bursts" }

func (s *burstSource) Run(ctx context.Context, _ flow.Checkpoint, emit func(*ingest.LineBatch) error) error {
	k := 0
	lb := &ingest.LineBatch{}
	buf := make([]byte, 1<<20)
	for i := 0; i < s.bursts; i++ {
		for j := 0; j < s.batches; j++ {
			start := k % (len(s.lines) / s.per) * s.per
			if _, err := s.f.ReadAt(buf, int64(k)<<20%(s.size-int64(len(buf)))); err != nil {
				return err
			}
			lb.Lines = s.lines[start : start+s.per]
			lb.Commit = j == 0 && i%2 == 0
			lb.Checkpoint = flow.Checkpoint{Source: s.ID(), Position: strconv.Itoa(k)}
			if err := emit(lb); err != nil {
				return err
			}
			k++
		}
		time.Sleep(s.idle)
	}
	return ctx.Err()
}

// cpuTime is the process's CPU time so far (user + system), in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
