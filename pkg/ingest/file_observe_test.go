// Tests of the rotation interval and slack the observer reports
// (file_observe.go).

package ingest

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// TestRotationIntervalAndSlackGauges: the observer reports how often the
// exporter rotates (from the backups' names) and how long a line survives
// its rotation (that interval times the backups on disk plus one).
func TestRotationIntervalAndSlackGauges(t *testing.T) {
	dir := t.TempDir()
	m := NewMetrics(prometheus.NewRegistry())
	s, err := NewFileSource(FileConfig{Path: filepath.Join(dir, "events.log"), CommitEvery: 2}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(g *prometheus.GaugeVec) float64 { return gaugeValue(t, g, s.ID()) }
	o := &observer{s: s, seen: map[string]seenBackup{}}
	backup := func(ts string, gz bool) {
		name := s.plainName(ts)
		if gz {
			name += ".gz"
		}
		if err := os.WriteFile(name, []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	backup("2026-12-02T15-34-38.119", true)
	o.scan()
	if got := gauge(m.rotEvery); got != 0 {
		t.Fatalf("one backup: rotation interval %v, want none", got)
	}
	backup("2026-12-02T15-34-38.351", false)
	o.onName([]byte("events-2026-12-02T15-34-38.351.log")) // inotify: interval known, slack from the last listing (1 backup)
	if got, want := gauge(m.rotEvery), 0.232; math.Abs(got-want) > 1e-9 {
		t.Fatalf("rotation interval %v, want %v", got, want)
	}
	if got, want := gauge(m.slack), 2*0.232; math.Abs(got-want) > 1e-9 {
		t.Fatalf("slack %v, want %v", got, want)
	}
	backup("2026-12-02T15-34-38.583", false)
	o.scan() // three backups, the newest 232 ms after the one before
	if got, want := gauge(m.slack), 4*0.232; math.Abs(got-want) > 1e-9 {
		t.Fatalf("slack %v, want %v (3 backups + the live file, every 232 ms)", got, want)
	}
	// CommitEvery 2 assumes 5 backups; with 3 on disk commits come every
	// file (half of them, rounded down, at least 1) and the wait is half an
	// interval (1.5*1-1).
	if got, want := o.coalesceWait(), 116*time.Millisecond; got != want {
		t.Fatalf("coalescing wait %v, want %v", got, want)
	}
}

// TestFollowReportsRotationInterval: following lumberjack rotating about
// every 40 ms with 3 backups, the source reports an interval of that order
// and a slack of the interval times the backups plus one.
func TestFollowReportsRotationInterval(t *testing.T) {
	dir := ljTempDir(t)
	path := filepath.Join(dir, "events.log")
	m := NewMetrics(prometheus.NewRegistry())
	src, err := NewFileSource(FileConfig{Path: path, Follow: true, PollInterval: 10 * time.Millisecond, CommitEvery: 1}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	var d delivered
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, flow.Checkpoint{}, func(lb *LineBatch) error { d.add(t, lb); return nil })
	}()
	gauge := func(g *prometheus.GaugeVec) float64 { return gaugeValue(t, g, src.ID()) }
	w := newLJ(path, 40*lineLen, 3, false)
	const n = 400 // 10 rotations
	for i := 0; i < n; i++ {
		w.write(t, i)
		if i%40 == 39 {
			time.Sleep(40 * time.Millisecond)
		}
	}
	waitFor(t, "the last line", func() bool { return d.last() == n-1 })
	// lumberjack deletes the oldest backup from a goroutine of its own: a
	// listing may briefly hold a fourth.
	waitFor(t, "the slack of 3 backups", func() bool {
		every := gauge(m.rotEvery)
		return every > 0 && math.Abs(gauge(m.slack)/every-4) < 1e-6
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	w.lj.Close()
	exactly(t, d.seqs, n)
	every, slack := gauge(m.rotEvery), gauge(m.slack)
	if every < 0.040 || every > 5 {
		t.Errorf("rotation interval %vs, want 40 ms or more (and not absurd)", every)
	}
	if k := slack / every; math.Abs(k-4) > 1e-6 {
		t.Errorf("slack %vs = %v intervals, want 4 (3 backups + the live file)", slack, k)
	}
}

// gaugeValue is the value of g's series for source id.
func gaugeValue(t *testing.T, g *prometheus.GaugeVec, id string) float64 {
	t.Helper()
	var out dto.Metric
	if err := g.WithLabelValues(id).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetGauge().GetValue()
}
