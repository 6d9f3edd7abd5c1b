package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// genLines returns n event lines (flows only) without newlines.
func genLines(t testing.TB, seed int64, n int) [][]byte {
	t.Helper()
	g, err := gen.New(gen.Config{Seed: seed, Nodes: 1, LostEventEvery: -1, AgentEventEvery: -1, Start: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range out {
		b, err := g.AppendLine(nil)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b[:len(b)-1]
	}
	return out
}

func appendLines(t testing.TB, path string, lines [][]byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if _, err := f.Write(append(append([]byte(nil), l...), '\n')); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// archivedUUIDs counts the committed flows by uuid.
func archivedUUIDs(t testing.TB, root string) map[string]int {
	t.Helper()
	sc, err := archive.OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	err = sc.ScanFlows(context.Background(), archive.ScanOptions{}, func(rows []archive.FlowRow) error {
		for _, r := range rows {
			if r.UUID != nil {
				out[*r.UUID]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func uuidOf(t testing.TB, line []byte) string {
	t.Helper()
	_, rest, ok := strings.Cut(string(line), `"uuid":"`)
	if !ok {
		t.Fatalf("no uuid in %.100s", line)
	}
	return rest[:strings.IndexByte(rest, '"')]
}

// metricValue sums the samples of a metric whose labels include want.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			sum += value(m)
		}
	}
	return sum
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testConfig(dir, events string) Config {
	cfg := Default()
	cfg.Node = "node-a"
	cfg.Listen = ""
	cfg.Archive.Dir = filepath.Join(dir, "archive")
	cfg.Verify.Interval = 0
	cfg.Sources = []SourceConfig{{Name: "static", File: events}}
	return cfg
}

type running struct {
	d       *Daemon
	stop    context.CancelFunc
	done    chan error
	stopped bool
}

func start(t testing.TB, cfg Config, o Options) *running {
	t.Helper()
	if o.Log == nil {
		o.Log = zaptest.NewLogger(t)
	}
	d, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	return r
}

func (r *running) shutdown(t testing.TB) {
	t.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	r.stop()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func (r *running) kept(t testing.TB) float64 {
	return metricValue(t, r.d.Registry(), "flowaudit_pipeline_flows_kept_total", nil)
}

func TestRunCommitsOnShutdownAndResumesWithoutDuplicates(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	lines := genLines(t, 1, 3000)
	appendLines(t, events, lines[:2000])
	cfg := testConfig(dir, events)

	r := start(t, cfg, Options{})
	waitFor(t, "2000 flows kept", func() bool { return r.kept(t) == 2000 })
	r.shutdown(t)
	got := archivedUUIDs(t, cfg.Archive.Dir)
	if len(got) != 2000 {
		t.Fatalf("archived %d distinct flows after the first run, want 2000", len(got))
	}

	appendLines(t, events, lines[2000:])
	r = start(t, cfg, Options{})
	waitFor(t, "1000 more flows kept", func() bool { return r.kept(t) == 1000 })
	r.shutdown(t)
	got = archivedUUIDs(t, cfg.Archive.Dir)
	for _, l := range lines {
		if n := got[uuidOf(t, l)]; n != 1 {
			t.Fatalf("flow %s archived %d times, want once", uuidOf(t, l), n)
		}
	}
	if len(got) != len(lines) {
		t.Fatalf("archived %d flows, want %d", len(got), len(lines))
	}
	rep, err := archive.Verify(cfg.Archive.Dir, time.Time{}, time.Time{}, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

func TestReloadSwapsFiltersWithoutLossOrRepeat(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	lines := genLines(t, 2, 3000)
	cfg := testConfig(dir, events)
	next := cfg
	load := func() (Config, error) { return next, next.Validate() }
	r := start(t, cfg, Options{Load: load})
	defer r.shutdown(t)
	seen := func() float64 {
		return metricValue(t, r.d.Registry(), "flowaudit_pipeline_events_decoded_total", map[string]string{"kind": "flow"})
	}

	appendLines(t, events, lines[:1000])
	waitFor(t, "1000 flows seen", func() bool { return seen() == 1000 })

	// Deny everything from now on ({} matches every flow).
	next = testConfig(dir, events)
	next.Sources[0].Denylist = `{}`
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	appendLines(t, events, lines[1000:2000])
	waitFor(t, "2000 flows seen", func() bool { return seen() == 2000 })

	// A bad configuration is rejected and the running one kept.
	bad := next
	bad.Sources = []SourceConfig{{Name: "static", File: events, Allowlist: `{"no_such_field":1}`}}
	next = bad
	if err := r.d.Reload(); err == nil {
		t.Fatal("reload of an invalid filter succeeded")
	}
	appendLines(t, events, lines[2000:])
	waitFor(t, "3000 flows seen", func() bool { return seen() == 3000 })

	reg := r.d.Registry()
	if v := metricValue(t, reg, "flowaudit_config_reloads_total", map[string]string{"result": "success"}); v != 1 {
		t.Errorf("successful reloads = %v, want 1", v)
	}
	if v := metricValue(t, reg, "flowaudit_config_reloads_total", map[string]string{"result": "failure"}); v != 1 {
		t.Errorf("failed reloads = %v, want 1", v)
	}
	if v := metricValue(t, reg, "flowaudit_config_last_reload_successful", nil); v != 0 {
		t.Errorf("last_reload_successful = %v, want 0", v)
	}
	kept := metricValue(t, reg, "flowaudit_pipeline_flows_kept_total", nil)
	denied := metricValue(t, reg, "flowaudit_pipeline_flows_denied_total", nil)
	if kept != 1000 || denied != 2000 {
		t.Fatalf("kept %v denied %v, want 1000 and 2000", kept, denied)
	}
	r.shutdown(t)
	got := archivedUUIDs(t, cfg.Archive.Dir)
	if len(got) != 1000 {
		t.Fatalf("archived %d flows, want the 1000 before the swap", len(got))
	}
	for _, l := range lines[:1000] {
		if got[uuidOf(t, l)] != 1 {
			t.Fatalf("flow %s before the swap not archived exactly once", uuidOf(t, l))
		}
	}
}

func TestArchiveFailureRetriesAndResumes(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	lines := genLines(t, 3, 500)
	appendLines(t, events, lines)
	cfg := testConfig(dir, events)
	// The archive directory cannot be created: a file is in the way.
	if err := os.WriteFile(cfg.Archive.Dir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg, Options{})
	defer r.shutdown(t)
	reg := r.d.Registry()
	waitFor(t, "a failed session", func() bool {
		return metricValue(t, reg, "flowaudit_daemon_archive_sessions_failed_total", nil) >= 1
	})
	if p := r.d.notReady(false); len(p) == 0 {
		t.Fatal("ready while the archive cannot be opened")
	}
	if v := metricValue(t, reg, "flowaudit_daemon_degraded", nil); v != 1 {
		t.Fatalf("degraded = %v while the archive fails", v)
	}
	if err := os.Remove(cfg.Archive.Dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the flows kept after recovery", func() bool { return r.kept(t) >= 500 })
	waitFor(t, "degraded cleared", func() bool { return metricValue(t, reg, "flowaudit_daemon_degraded", nil) == 0 })
	r.shutdown(t)
	if got := archivedUUIDs(t, cfg.Archive.Dir); len(got) != 500 {
		t.Fatalf("archived %d flows, want 500", len(got))
	}
}

// TestDebugListen: debugListen serves Go's profiler on its own listener,
// and the --listen one (which Prometheus scrapes from other hosts) does not.
func TestDebugListen(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	appendLines(t, events, genLines(t, 4, 100))
	cfg := testConfig(dir, events)
	cfg.Listen, cfg.DebugListen = "127.0.0.1:0", "127.0.0.1:0"
	r := start(t, cfg, Options{})
	defer r.shutdown(t)
	waitFor(t, "the listeners", func() bool { return r.d.Addr() != nil && r.d.DebugAddr() != nil })
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	get := func(addr net.Addr, path string) (int, string) {
		resp, err := client.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(r.d.DebugAddr(), "/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/ = %d %q", code, body)
	}
	if code, body := get(r.d.DebugAddr(), "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "daemon.(*Daemon)") {
		t.Fatalf("goroutine profile = %d, lacks the daemon's goroutines", code)
	}
	if code, body := get(r.d.DebugAddr(), "/debug/pprof/profile?seconds=1"); code != 200 || len(body) == 0 {
		t.Fatalf("CPU profile = %d, %d bytes", code, len(body))
	}
	if code, _ := get(r.d.Addr(), "/debug/pprof/"); code != 404 {
		t.Fatalf("--listen serves the profiler: %d", code)
	}
	if code, _ := get(r.d.DebugAddr(), "/metrics"); code != 404 {
		t.Fatalf("the profiler's listener serves /metrics: %d", code)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	appendLines(t, events, genLines(t, 4, 100))
	cfg := testConfig(dir, events)
	cfg.Listen = "127.0.0.1:0"
	r := start(t, cfg, Options{})
	defer r.shutdown(t)
	waitFor(t, "the listener", func() bool { return r.d.Addr() != nil })
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		resp, err := client.Get("http://" + r.d.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	waitFor(t, "100 flows kept", func() bool { return r.kept(t) == 100 })
	waitFor(t, "ready", func() bool { code, _ := get("/readyz"); return code == 200 })
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`flowaudit_source_up{source="file:` + events + `"} 1`,
		`flowaudit_pipeline_flows_kept_total{source="file:` + events + `"} 100`,
		"flowaudit_build_info{",
		"flowaudit_archive_disk_free_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	cfg := testConfig(dir, events)

	// Created and never run: nothing to release, no goroutine left (goleak).
	if _, err := New(cfg, Options{}); err != nil {
		t.Fatal(err)
	}

	// Run twice at once: the second is refused.
	r := start(t, cfg, Options{})
	waitFor(t, "the source running", func() bool { return r.d.sources[0].up.Load() })
	if err := r.d.Run(context.Background()); err == nil {
		t.Fatal("a second Run of the same daemon was accepted")
	}
	r.shutdown(t)

	// Cancelled before it starts: returns at once, cleanly.
	d, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownWithFullQueue stops the daemon while its queue is full: every
// batch handed over is committed, the archive holds a prefix of the file in
// order, and the next run archives exactly the rest.
func TestShutdownWithFullQueue(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	lines := genLines(t, 5, 20000)
	appendLines(t, events, lines)
	cfg := testConfig(dir, events)
	cfg.Queue.MaxBytes = 1 << 20
	r := start(t, cfg, Options{})
	waitFor(t, "some flows kept", func() bool { return r.kept(t) > 0 })
	r.shutdown(t)
	got := archivedUUIDs(t, cfg.Archive.Dir)
	for i, l := range lines {
		if got[uuidOf(t, l)] == 0 {
			for _, l := range lines[i:] {
				if got[uuidOf(t, l)] != 0 {
					t.Fatalf("archive is not a prefix of the file: line %d missing, a later one present", i+1)
				}
			}
			break
		}
	}
	r = start(t, cfg, Options{})
	waitFor(t, "the rest kept", func() bool { return len(got)+int(r.kept(t)) >= len(lines) })
	r.shutdown(t)
	got = archivedUUIDs(t, cfg.Archive.Dir)
	if len(got) != len(lines) {
		t.Fatalf("archived %d flows, want %d", len(got), len(lines))
	}
	for u, n := range got {
		if n != 1 {
			t.Fatalf("flow %s archived %d times", u, n)
		}
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	cfg := Default()
	cfg.Listen = "nope"
	cfg.Sources = []SourceConfig{
		{File: "relative.log"},
		{Address: "unix://relative/hubble.sock"},
		{File: "/x/events.log", FieldMask: "no_such_field"},
		{File: "/x/events.log", Synthetic: &SyntheticConfig{Rate: 1}},
		{File: "/y/events.log", MaxBackups: ptr(-1)},
		{Synthetic: &SyntheticConfig{Rate: 1}, MaxBackups: ptr(3)},
	}
	_, err := New(cfg, Options{})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"node: required", "listen:", "archive.dir: required", "sources[0].file", "sources[1].address", "want unix:///ABSOLUTE/PATH", "sources[2]: fieldmask", "sources[3]: exactly one of", "sources[3].file", "sources[4].maxBackups: -1", "sources[5].maxBackups: 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if errors.Unwrap(err) != nil {
		// errors.Join: one error per problem
		t.Log(err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestCommitEvery: the rotations between commits a file source asks for.
func TestCommitEvery(t *testing.T) {
	for _, tc := range []struct {
		rot   Rotation
		known bool
		want  int
	}{
		{Rotation{}, false, 2},                // unknown: Cilium's default 5 backups
		{Rotation{MaxBackups: 0}, true, 0},    // every backup kept: nothing to outrun
		{Rotation{MaxBackups: 1}, true, 1},    // every rotation
		{Rotation{MaxBackups: 5}, true, 2},    // Cilium's default
		{Rotation{MaxBackups: 100}, true, 50}, // raised as the slack warning advises
		{Rotation{MaxSizeMB: 10, MaxBackups: 3}, true, 1},
	} {
		if got := commitEvery(tc.rot, tc.known); got != tc.want {
			t.Errorf("commitEvery(%+v, %v) = %d, want %d", tc.rot, tc.known, got, tc.want)
		}
	}
}

func TestRetentionDeletesOldDays(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	appendLines(t, events, genLines(t, 4, 2000)) // flows of today
	cfg := testConfig(dir, events)
	r := start(t, cfg, Options{})
	waitFor(t, "2000 flows kept", func() bool { return r.kept(t) == 2000 })
	r.shutdown(t)
	if n := len(archivedUUIDs(t, cfg.Archive.Dir)); n != 2000 {
		t.Fatalf("%d flows archived", n)
	}

	// 40 days later, with 30 days of retention for flows.
	cfg.Archive.Retention = RetentionConfig{Flows: Duration(30 * 24 * time.Hour)}
	r = start(t, cfg, Options{Now: func() time.Time { return time.Now().Add(40 * 24 * time.Hour) }})
	waitFor(t, "archive open", func() bool { return r.d.sink.Load() != nil })
	r.d.retentionOnce()
	deleted := metricValue(t, r.d.Registry(), "flowaudit_archive_retention_partitions_deleted_total", nil)
	r.shutdown(t)
	if deleted < 1 {
		t.Fatalf("retention deleted %v partitions", deleted)
	}
	if n := len(archivedUUIDs(t, cfg.Archive.Dir)); n != 0 {
		t.Fatalf("%d flows older than 30 days left", n)
	}
	rep, err := archive.Verify(cfg.Archive.Dir, time.Time{}, time.Time{}, nil)
	if err != nil || !rep.OK() || rep.Retired == 0 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	cfg.Archive.Retention.Stats = Duration(time.Hour)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "archive.retention.stats") {
		t.Fatalf("a 1h retention must be rejected: %v", err)
	}
}

// TestMaintenanceRunsEveryInterval: retention and compaction run by
// themselves every archive.maintenanceInterval (here 1s, the first time
// after it too).
func TestMaintenanceRunsEveryInterval(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	appendLines(t, events, genLines(t, 4, 2000)) // flows of today
	cfg := testConfig(dir, events)
	r := start(t, cfg, Options{})
	waitFor(t, "2000 flows kept", func() bool { return r.kept(t) == 2000 })
	r.shutdown(t)

	// 40 days later, with 30 days of retention for flows, run every second.
	cfg.Archive.Retention = RetentionConfig{Flows: Duration(30 * 24 * time.Hour)}
	cfg.Archive.MaintenanceInterval = Duration(time.Second)
	r = start(t, cfg, Options{Now: func() time.Time { return time.Now().Add(40 * 24 * time.Hour) }})
	waitFor(t, "retention by the maintenance loop", func() bool {
		return metricValue(t, r.d.Registry(), "flowaudit_archive_retention_partitions_deleted_total", nil) >= 1
	})
	r.shutdown(t)
	if n := len(archivedUUIDs(t, cfg.Archive.Dir)); n != 0 {
		t.Fatalf("%d flows older than 30 days left", n)
	}
	cfg.Archive.MaintenanceInterval = Duration(500 * time.Millisecond)
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "archive.maintenanceInterval") {
		t.Fatalf("a 500ms maintenance interval must be rejected: %v", err)
	}
}

func TestCompactionMergesClosedDays(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	appendLines(t, events, genLines(t, 4, 2000)) // flows of today
	cfg := testConfig(dir, events)
	cfg.Archive.MaxFileRows = 400 // several files
	r := start(t, cfg, Options{})
	waitFor(t, "2000 flows kept", func() bool { return r.kept(t) == 2000 })
	r.shutdown(t)
	files := func() int {
		m, _ := filepath.Glob(filepath.Join(cfg.Archive.Dir, "flows", "date=*", "node=*", "part-*.parquet"))
		return len(m)
	}
	before := files()
	if before < 5 {
		t.Fatalf("%d flows files, want at least 5", before)
	}

	// Two days later; first with compaction off, then on.
	cfg.Archive.MaxFileRows = 1 << 20
	later := Options{Now: func() time.Time { return time.Now().Add(48 * time.Hour) }}
	cfg.Archive.Compaction = false
	r = start(t, cfg, later)
	waitFor(t, "archive open", func() bool { return r.d.sink.Load() != nil })
	r.d.compactOnce(context.Background())
	r.shutdown(t)
	if n := files(); n != before {
		t.Fatalf("compaction off: %d files, want %d", n, before)
	}
	cfg.Archive.Compaction = true
	r = start(t, cfg, later)
	waitFor(t, "archive open", func() bool { return r.d.sink.Load() != nil })
	r.d.compactOnce(context.Background())
	merged := metricValue(t, r.d.Registry(), "flowaudit_archive_compaction_files_merged_total", nil)
	r.shutdown(t)
	if n := files(); n >= before || merged < float64(before-n) {
		t.Fatalf("after compaction: %d files (from %d), %v merged", n, before, merged)
	}
	if n := len(archivedUUIDs(t, cfg.Archive.Dir)); n != 2000 {
		t.Fatalf("%d flows after compaction, want 2000", n)
	}
	rep, err := archive.Verify(cfg.Archive.Dir, time.Time{}, time.Time{}, nil)
	if err != nil || !rep.OK() || rep.Compacted == 0 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// TestPipelineInlineWithoutQueue: by default (queue.maxBytes 0) a source
// writes its batches itself; a size puts a queue of that many bytes between.
func TestPipelineInlineWithoutQueue(t *testing.T) {
	cfg := Default()
	if got := pipelineConfig(&cfg, nil); !got.Inline {
		t.Errorf("default: %+v, want inline", got)
	}
	cfg.Queue.MaxBytes = 16 << 20
	if got := pipelineConfig(&cfg, nil); got.Inline || got.QueueBytes != 16<<20 {
		t.Errorf("queue.maxBytes 16Mi: %+v, want a queue of 16Mi", got)
	}
	if got := pipelineConfig(&cfg, nil); got.Heartbeat != time.Duration(cfg.Archive.StatsInterval) || got.Node != cfg.NodeName() {
		t.Errorf("%+v: heartbeat and node not from the configuration", got)
	}
}

// TestArchiveConfigFollowsCompaction: with a row log the archive writes
// its files once, at the better level (compaction leaves the files the log
// cuts); without one it writes provisional pages (zstd's default level)
// exactly when compaction will rewrite them; and it takes the archive
// settings as given.
func TestArchiveConfigFollowsCompaction(t *testing.T) {
	c := Default().Archive
	c.Dir = "/var/lib/flowaudit"
	for _, on := range []bool{true, false} {
		for _, log := range []bool{false, true} {
			c.Compaction, c.RowLog = on, log
			got := archiveConfig(c)
			if got.ProvisionalPages != (on && !log) || got.Log != log {
				t.Errorf("compaction %v, row log %v: ProvisionalPages %v, Log %v", on, log, got.ProvisionalPages, got.Log)
			}
			if got.Root != c.Dir || got.MaxFileRows != c.MaxFileRows || got.MaxFileBytes != int64(c.MaxFileBytes) ||
				got.MaxFileAge != time.Duration(c.MaxFileAge) {
				t.Errorf("compaction %v: %+v from %+v", on, got, c)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("compaction %v: %v", on, err)
			}
		}
	}
}

// TestQuietFileCommitsByAge: once the exporter stops writing, the flows read
// since the last commit are committed by archive.maxFileAge while the daemon
// runs (a quiet file source still hands the pipeline a batch every
// fileIdleEvery), with the heartbeat's stats row, and the daemon stays ready.
func TestQuietFileCommitsByAge(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	lines := genLines(t, 3, 1500)
	appendLines(t, events, lines[:1000])
	cfg := testConfig(dir, events)
	cfg.Archive.MaxFileAge = Duration(200 * time.Millisecond)
	cfg.Archive.StatsInterval = Duration(100 * time.Millisecond)

	r := start(t, cfg, Options{})
	defer r.shutdown(t)
	committed := func() int {
		if _, err := os.Stat(filepath.Join(cfg.Archive.Dir, "flows")); err != nil {
			return 0
		}
		return len(archivedUUIDs(t, cfg.Archive.Dir))
	}
	// The first batch is committed at once (no checkpoint yet), the rest of
	// the first 1000 by age.
	waitFor(t, "the first 1000 flows committed", func() bool { return committed() == 1000 })
	appendLines(t, events, lines[1000:])
	waitFor(t, "1500 flows kept", func() bool { return r.kept(t) == 1500 })
	// No more lines, no rotation, no shutdown: only the age commits them.
	waitFor(t, "the other 500 committed without traffic", func() bool { return committed() == 1500 })
	if why := r.d.notReady(false); len(why) != 0 {
		t.Fatalf("not ready on a quiet node: %v", why)
	}
}
