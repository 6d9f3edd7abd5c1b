package archive

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

var errCrash = errors.New("injected crash")

// faults numbers every step of the commit protocol (each file creation,
// write, fsync, rename, removal, truncation and directory fsync) and fails
// the one numbered failAt, where a crash would have stopped the writer.
type faults struct {
	n, failAt int
	failed    string
}

func (f *faults) step(what string) error {
	f.n++
	if f.n == f.failAt {
		f.failed = what
		return fmt.Errorf("%s: %w", what, errCrash)
	}
	return nil
}

type faultFile struct {
	*os.File
	f *faults
}

func (ff faultFile) Write(p []byte) (int, error) {
	if err := ff.f.step("write " + filepath.Base(ff.Name())); err != nil {
		return 0, err
	}
	return ff.File.Write(p)
}

func (ff faultFile) Sync() error {
	// The crashes injected are a process's, which fsync does not change:
	// the data is in the page cache either way, and the run is faster.
	return ff.f.step("fsync " + filepath.Base(ff.Name()))
}

func withFaults(t *testing.T, f *faults) {
	oldCreate, oldStep, oldSync := createFile, beforeStep, fsyncDir
	fsyncDir = func(*os.File) error { return nil }
	createFile = func(path string, flag int, perm os.FileMode) (writableFile, error) {
		if err := f.step("create " + filepath.Base(path)); err != nil {
			return nil, err
		}
		fh, err := os.OpenFile(path, flag, perm)
		if err != nil {
			return nil, err
		}
		return faultFile{fh, f}, nil
	}
	beforeStep = func(step, path string) error { return f.step(step + " " + filepath.Base(path)) }
	t.Cleanup(func() { createFile, beforeStep, fsyncDir = oldCreate, oldStep, oldSync })
}

// crash stops w as a killed process would: its file descriptors and lock
// are released, nothing is cleaned up or committed.
func crash(w *Writer) {
	for _, of := range w.files {
		if of.f != nil {
			_ = of.f.Close()
		}
	}
	w.closeLog()
	w.unlock()
	w.closed = true
}

// logRun opens the archive at root with a row log, resumes from its
// checkpoint and writes batches of 50 flows up to total, every second one
// asking for a commit, and closes. An error (an injected crash) stops it as
// a crash would; it reports whether the run completed.
func logRun(t *testing.T, root string, total int) bool {
	t.Helper()
	w, err := Open(Config{Root: root, Log: true, MaxFileRows: 300}, nil, nil)
	if err != nil {
		if !errors.Is(err, errCrash) {
			t.Fatalf("open: %v", err)
		}
		return false
	}
	start := 0
	if cp := w.Checkpoints()["test"]; cp.Position != "" {
		start, _ = strconv.Atoi(cp.Position)
	}
	for i := start; i < total; i += 50 {
		b := batch(i, min(i+50, total))
		b.Commit = i%100 == 0
		if err := w.Write(b); err != nil {
			if !errors.Is(err, errCrash) {
				t.Fatalf("write: %v", err)
			}
			crash(w)
			return false
		}
	}
	if err := w.Close(); err != nil {
		if !errors.Is(err, errCrash) {
			t.Fatalf("close: %v", err)
		}
		crash(w)
		return false
	}
	return true
}

// checkExactlyOnce checks that root holds flows 0..total-1 once each,
// verifies clean and has no temporary file or cut log left.
func checkExactlyOnce(t *testing.T, root string, total int, what string) {
	t.Helper()
	seen := scanUUIDs(t, root)
	for i := 0; i < total; i++ {
		if n := seen[strconv.Itoa(i)]; n != 1 {
			t.Fatalf("%s: flow %d archived %d times", what, i, n)
		}
	}
	if len(seen) != total {
		t.Fatalf("%s: %d flows, want %d", what, len(seen), total)
	}
	rep, err := Verify(root, time.Time{}, time.Time{}, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("%s: verify: %v %+v", what, err, rep)
	}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tmpPrefix) {
			t.Errorf("%s: temporary file left: %s", what, p)
		}
		return nil
	})
	logs, _ := filepath.Glob(filepath.Join(root, walDir, walPrefix+"*"))
	if len(logs) != 1 {
		t.Errorf("%s: row logs %v, want one", what, logs)
	}
}

// TestRowLogCrashAtEveryStep fails every step of a run with a row log in
// turn (a write, fsync, rename, removal of the log, of a Parquet file, of
// a commit record or of a manifest), then fails a step of the recovery that
// follows, then runs to the end: every flow is archived exactly once.
func TestRowLogCrashAtEveryStep(t *testing.T) {
	const total = 1000
	f := &faults{}
	withFaults(t, f)
	if !logRun(t, t.TempDir(), total) {
		t.Fatal("a run without faults did not complete")
	}
	steps := f.n
	t.Logf("%d steps in a run", steps)
	if steps < 100 {
		t.Fatalf("%d steps in a run: the protocol is not instrumented", steps)
	}
	// Every step; under the race detector (crash semantics do not need
	// it) or -short, every 15th or 11th from a random first one, so that
	// runs cover them all.
	stride := 1
	if raceEnabled {
		stride = 15
	}
	if testing.Short() {
		stride = 11
	}
	for k := 1 + rand.IntN(stride); k <= steps; k += stride {
		root := t.TempDir()
		f.n, f.failAt = 0, k
		if logRun(t, root, total) {
			t.Fatalf("step %d: no crash", k)
		}
		what := fmt.Sprintf("crash at step %d (%s)", k, f.failed)
		// The next start crashes at one of its first steps: in the
		// recovery of the log or of the commit group, or just after.
		f.n, f.failAt, f.failed = 0, 1+k%9, ""
		if logRun(t, root, total) {
			f.failed = "none"
		}
		what += ", then at " + f.failed
		f.n, f.failAt = 0, 0
		if !logRun(t, root, total) {
			t.Fatalf("%s: the run after did not complete", what)
		}
		checkExactlyOnce(t, root, total, what)
	}
}

// TestRowLogTornTail cuts the live log at every record boundary and inside
// records, and damages its last record: the writer keeps the records
// before the damage, resumes after them, and archives every flow once.
func TestRowLogTornTail(t *testing.T) {
	const total = 600
	base := t.TempDir()
	w, err := Open(Config{Root: base, Log: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Record boundaries, as the log grows.
	bounds := []int64{int64(len(walMagic))}
	for i := 0; i < total; i += 50 {
		b := batch(i, i+50)
		b.Commit = true
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		bounds = append(bounds, w.rlog.size)
	}
	logPath := w.rlog.path
	crash(w)
	full, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(full)) != bounds[len(bounds)-1] {
		t.Fatalf("log is %d bytes, records end at %d", len(full), bounds[len(bounds)-1])
	}
	type damage struct {
		name string
		keep int // records expected to survive
		fn   func(b []byte) []byte
	}
	var cases []damage
	for r := 1; r < len(bounds); r++ {
		lo, hi := bounds[r-1], bounds[r]
		for _, cut := range []int64{lo + 1, lo + 7, lo + 8, (lo + hi) / 2, hi - 1} {
			cases = append(cases, damage{fmt.Sprintf("cut at %d in record %d", cut, r), r - 1, func(b []byte) []byte { return b[:cut] }})
		}
		cases = append(cases, damage{fmt.Sprintf("flipped byte in record %d", r), r - 1, func(b []byte) []byte {
			if r != len(bounds)-1 {
				b = b[:hi] // a damaged record is the tail
			}
			b[(lo+hi)/2] ^= 0x5a
			return b
		}})
	}
	// Under the race detector (crash semantics do not need it), a quarter
	// of the cases, a different quarter each run.
	stride := 1
	if raceEnabled {
		stride = 4
	}
	for i := rand.IntN(stride); i < len(cases); i += stride {
		c := cases[i]
		root := t.TempDir()
		if err := os.CopyFS(root, os.DirFS(base)); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, walDir, filepath.Base(logPath))
		if err := os.WriteFile(p, c.fn(slices.Clone(full)), 0o644); err != nil {
			t.Fatal(err)
		}
		w, err := Open(Config{Root: root, Log: true}, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got, want := w.Checkpoints()["test"].Position, strconv.Itoa(50*c.keep); c.keep > 0 && got != want {
			t.Fatalf("%s: resumes at %q, want %q", c.name, got, want)
		}
		if w.rows != 50*c.keep {
			t.Fatalf("%s: %d rows replayed, want %d", c.name, w.rows, 50*c.keep)
		}
		if st, err := os.Stat(p); err != nil || st.Size() != bounds[c.keep] {
			t.Fatalf("%s: log not cut to its last whole record: %v %v", c.name, st, err)
		}
		for i := 50 * c.keep; i < total; i += 50 {
			if err := w.Write(batch(i, i+50)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		checkExactlyOnce(t, root, total, c.name)
	}
}

// TestRowLogCutsByAgeNotByCommit: commits fsync the log and leave the
// files open; the files are cut when the oldest row is MaxFileAge old,
// including by the first Open after a writer stopped with an old log.
func TestRowLogCutsByAgeNotByCommit(t *testing.T) {
	root := t.TempDir()
	now := t0
	clock := func() time.Time { return now }
	w, err := Open(Config{Root: root, Log: true, MaxFileAge: time.Minute, Now: clock}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		b := batch(i*10, i*10+10)
		b.Commit = true
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		now = now.Add(5 * time.Second)
	}
	if w.Seq() != 0 || w.Commits() != 10 {
		t.Fatalf("after 10 commits in 50 s: seq %d, commits %d; want no cut, 10 log commits", w.Seq(), w.Commits())
	}
	if n := len(scanUUIDs(t, root)); n != 0 {
		t.Fatalf("%d flows visible before the cut", n)
	}
	now = now.Add(10 * time.Second) // the first row is 60 s old
	if err := w.Write(batch(100, 110)); err != nil {
		t.Fatal(err)
	}
	if w.Seq() != 1 {
		t.Fatalf("seq %d after MaxFileAge, want a cut", w.Seq())
	}
	if n := len(scanUUIDs(t, root)); n != 110 {
		t.Fatalf("%d flows visible after the cut, want 110", n)
	}
	// A log left by a writer that stopped is cut when it is opened too late.
	b := batch(110, 120)
	b.Commit = true
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	crash(w)
	now = now.Add(2 * time.Minute)
	w, err = Open(Config{Root: root, Log: true, MaxFileAge: time.Minute, Now: clock}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w.Seq() != 2 {
		t.Fatalf("seq %d after opening an old log, want the cut", w.Seq())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, root, 120, "age")
}

// TestRowLogSameRows: the same batches give the same rows, value for
// value, whether every commit closes the files or the row log holds them
// across commits, crashes and replays included.
func TestRowLogSameRows(t *testing.T) {
	rows := func(root string) []FlowRow {
		sc, err := OpenScanner(root)
		if err != nil {
			t.Fatal(err)
		}
		var out []FlowRow
		if err := sc.ScanFlows(t.Context(), ScanOptions{}, func(rs []FlowRow) error {
			out = append(out, rs...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(out, func(a, b FlowRow) int { return strings.Compare(*a.UUID, *b.UUID) })
		return out
	}
	files, logged := t.TempDir(), t.TempDir()
	w, err := Open(Config{Root: files}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i += 50 {
		b := batch(i, i+50)
		b.Commit = true
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; {
		w, err := Open(Config{Root: logged, Log: true}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 7 && i < 1000; j, i = j+1, i+50 {
			b := batch(i, i+50)
			b.Commit = true
			if err := w.Write(b); err != nil {
				t.Fatal(err)
			}
		}
		crash(w)
	}
	w, err = Open(Config{Root: logged, Log: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	a, b := rows(files), rows(logged)
	if len(a) != 1000 || len(b) != 1000 {
		t.Fatalf("%d and %d rows, want 1000", len(a), len(b))
	}
	for i := range a {
		if !reflect.DeepEqual(a[i], b[i]) {
			t.Fatalf("row %d differs:\nfiles %+v\nlog   %+v", i, a[i], b[i])
		}
	}
}

// TestRowLogFilesPerHour: with the daemon's limits and a commit every
// second (a source whose exporter rotates every half second), a node's
// hour at 100 flows/s (and 1,000 without -short or the race detector) is
// at most 12 flows files and 12 stats files, whatever the number of
// commits (under the race detector, 20 minutes and at most 4).
func TestRowLogFilesPerHour(t *testing.T) {
	type run struct {
		rate   int
		window time.Duration // of flows written
		cuts   int           // files per table the window cuts
	}
	runs := []run{{100, time.Hour, 12}}
	if raceEnabled {
		runs[0] = run{100, 20 * time.Minute, 4}
	}
	if !testing.Short() && !raceEnabled {
		// 50k flows/s is 15M rows in 5 minutes: one window and a few
		// seconds more show that the rows and bytes limits (16Mi, 1Gi)
		// leave the cut to maxFileAge, so every 5 minutes of an hour
		// close one flows and one stats file.
		runs = append(runs, run{1000, time.Hour, 12}, run{50_000, 5*time.Minute + 5*time.Second, 1})
	}
	for _, r := range runs {
		rate := r.rate
		t.Run(strconv.Itoa(rate), func(t *testing.T) {
			withFaults(t, &faults{}) // none fail; fsync is left out, as it does not change the count
			root := t.TempDir()
			start := time.Date(2026, 1, 12, 10, 0, 0, 0, time.UTC)
			now := start
			w, err := Open(Config{Root: root, Log: true, MaxFileRows: 16 << 20, MaxFileBytes: 1 << 30, MaxFileAge: 5 * time.Minute,
				Now: func() time.Time { return now }}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			const tick = 500 * time.Millisecond
			perTick := rate / 2
			b := &flow.Batch{}
			commits, n := 0, 0
			window, cuts := r.window, r.cuts
			for now.Before(start.Add(window)) {
				b.Reset()
				for i := 0; i < perTick; i++ {
					f := b.Next()
					f.Reset()
					f.Time = timestamppb.New(now.Add(time.Duration(i) * tick / time.Duration(perTick)))
					f.NodeName = "c/n1"
					f.Verdict = flowpb.Verdict_FORWARDED
					if rate > 1000 {
						docsMaskFlow(f, n) // the rows whose size the bytes limit is set for
					} else {
						f.Uuid = strconv.Itoa(n)
					}
					n++
				}
				b.AddStat("c/n1", now.Unix()/60*60, flow.Counts{Seen: uint64(perTick), Kept: uint64(perTick)})
				b.Checkpoint = flow.Checkpoint{Source: "test", Position: strconv.Itoa(n)}
				b.Commit = now.Sub(start)%time.Second == 0
				if b.Commit {
					commits++
				}
				if err := w.Write(b); err != nil {
					t.Fatal(err)
				}
				now = now.Add(tick)
			}
			files := map[string]int{}
			for _, table := range []string{"flows", "stats"} {
				m, _ := filepath.Glob(filepath.Join(root, table, "date=*", "node=*", "part-*.parquet"))
				files[table] = len(m)
			}
			if files["flows"] > cuts || files["stats"] > cuts || files["flows"] < cuts-1 {
				t.Errorf("%d flows/s, %d commits: %d flows and %d stats files in %s, want %d-%d each", rate, commits, files["flows"], files["stats"], window, cuts-1, cuts)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			entries, err := nodeManifest(root, "c/n1")
			if err != nil {
				t.Fatal(err)
			}
			var rows int64
			var flowsFiles []int64
			for _, e := range entries {
				if e.Table == "flows" {
					rows += e.Rows
					flowsFiles = append(flowsFiles, e.Rows)
				}
			}
			if rows != int64(n) {
				t.Fatalf("%d flows archived, want %d", rows, n)
			}
			// Every file but the one Close cut holds maxFileAge of rows:
			// neither the rows nor the bytes limit cut it first.
			for i, fr := range flowsFiles[:len(flowsFiles)-1] {
				if fr < int64(rate)*300 {
					t.Errorf("%d flows/s: flows file %d of %d holds %d rows, less than 5 minutes' %d", rate, i+1, len(flowsFiles), fr, rate*300)
				}
			}
		})
	}
}

// docsMaskFlow fills f with what the docs-example field mask keeps of a
// node's flow (fieldmask.DocsExample), from a few hundred pods: rows of the
// size the row log's bytes limit is set for. The parts come from a fixed
// set of flows, shared (the writer only reads them).
func docsMaskFlow(f *flowpb.Flow, n int) {
	p := &docsMaskFlows()[n%len(docsMaskFlows())]
	f.Source, f.Destination, f.IP, f.L4, f.IsReply = p.Source, p.Destination, p.IP, p.L4, p.IsReply
	if p.Verdict == flowpb.Verdict_DROPPED {
		f.Verdict, f.DropReasonDesc = p.Verdict, p.DropReasonDesc
	}
}

var docsMaskFlows = sync.OnceValue(func() []flowpb.Flow {
	out := make([]flowpb.Flow, 7919) // prime: no period shared with a batch
	for n := range out {
		f := &out[n]
		r := uint32(n*2654435761) >> 8 // spread, reproducible
		f.Source = &flowpb.Endpoint{Namespace: fmt.Sprintf("ns-%d", r%12), PodName: fmt.Sprintf("app-%d-7d9f8c-%05d", r%40, r%300)}
		f.Destination = &flowpb.Endpoint{Namespace: fmt.Sprintf("ns-%d", (r>>4)%12), PodName: fmt.Sprintf("svc-%d-5c7b9d-%05d", (r>>4)%40, (r>>4)%300)}
		f.IP = &flowpb.IP{Source: fmt.Sprintf("10.0.%d.%d", r%16, r%250), Destination: fmt.Sprintf("10.0.%d.%d", (r>>6)%16, (r>>6)%250), IpVersion: flowpb.IPVersion_IPv4}
		f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 32768 + r%28000, DestinationPort: []uint32{80, 443, 8080, 5432}[r%4]}}}
		f.IsReply = wrapperspb.Bool(r%2 == 1)
		if r%50 == 0 {
			f.Verdict = flowpb.Verdict_DROPPED
			f.DropReasonDesc = flowpb.DropReason_POLICY_DENIED
		}
	}
	return out
})

// TestVerifyRowLog: verify reports the rows of a log not yet cut, and a
// torn tail, as pending, with no finding; a log that is not a row log is a
// finding.
func TestVerifyRowLog(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, Log: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i += 100 {
		b := batch(i, i+100)
		b.Commit = true
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	p := w.rlog.path
	crash(w)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{9, 9, 9}) // a torn record header
	f.Close()
	rep, err := Verify(root, time.Time{}, time.Time{}, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	if len(rep.Pending) != 1 || rep.Pending[0].Rows != 300 || rep.Pending[0].Records != 3 || rep.Pending[0].TornBytes != 3 || rep.Pending[0].Cut {
		t.Fatalf("pending %+v, want 300 rows in 3 records and a torn tail of 3 bytes", rep.Pending)
	}
	if err := os.WriteFile(p, []byte("not a log"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(root, time.Time{}, time.Time{}, nil); err != nil || rep.OK() {
		t.Fatalf("verify of a damaged log: %v %+v, want a finding", err, rep)
	}
}

// TestRowLogReplaysUnderItsConfiguration: rows logged under one
// configuration and replayed by a writer started with another are cut into
// files of the configuration that filtered and masked them.
func TestRowLogReplaysUnderItsConfiguration(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, Log: true, ConfigHash: "a"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i += 100 {
		b := batch(i, i+100)
		b.Commit = true
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	crash(w)
	if w, err = Open(Config{Root: root, Log: true, ConfigHash: "b"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(batch(200, 300)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rows := map[string]int64{}
	for _, node := range []string{"c/n1", "c/n2"} {
		entries, err := nodeManifest(root, node)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Table == "flows" {
				rows[e.ConfigHash] += e.Rows
			}
		}
	}
	if rows["a"] != 200 || rows["b"] != 100 {
		t.Fatalf("rows by configuration %v, want a:200 b:100", rows)
	}
	checkExactlyOnce(t, root, 300, "configuration")
}

// FuzzRowLog: any bytes as a row log are read up to their first damaged
// record without a panic, and every record read decodes or fails cleanly.
func FuzzRowLog(f *testing.F) {
	b := batch(0, 3)
	_, rec, err := encodeRecord(nil, nil, b, t0, "h")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte(walMagic), rec...))
	f.Add([]byte(walMagic))
	f.Add(append([]byte(walMagic), rec[:len(rec)-1]...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var out flow.Batch
		var raw []byte
		valid, err := scanLog(data, func(p []byte) error {
			_, raw, _ = decodeRecord(p, raw, &out)
			return nil
		})
		if err == nil && (valid < int64(len(walMagic)) || valid > int64(len(data))) {
			t.Fatalf("valid prefix %d of %d bytes", valid, len(data))
		}
	})
}

// TestCompactionLeavesFilesTheLogCut: a writer with a row log merges the
// short files of a closed day (a shutdown's) but not the files it cut by
// age, which are as large as readers need.
func TestCompactionLeavesFilesTheLogCut(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, Log: true, MaxFileAge: 10 * time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int{{0, 1000}, {1000, 1010}, {1010, 1020}} {
		if err := w.Write(batch(r[0], r[1])); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	big := map[string]bool{}
	for _, node := range []string{"c/n1", "c/n2"} {
		entries, err := nodeManifest(root, node)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Table == "flows" && e.Rows == 500 {
				big[e.Path] = true
			}
		}
	}
	if len(big) != 2 {
		t.Fatalf("files of 500 rows: %v, want one per node", big)
	}
	res, err := w.Compact(t0.Add(72 * time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs == 0 {
		t.Fatalf("compaction %+v: the short files were not merged", res)
	}
	for p := range big {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v, want it left as written", p, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, root, 1020, "compaction")
}

// TestRowLogReplayNotCounted: the rows a recovery replays from the row log
// were counted as written when they were written, so
// flowaudit_archive_rows_written_total does not count them again, neither
// in the process that wrote them (a writer reopened on the same registry)
// nor in the next one.
func TestRowLogReplayNotCounted(t *testing.T) {
	root := t.TempDir()
	reg := prometheus.NewRegistry()
	w, err := Open(Config{Root: root, Log: true}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	b := batch(0, 300)
	b.Commit = true
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(w.m.rows); n != 300 {
		t.Fatalf("%v rows written, want 300", n)
	}
	crash(w)
	w, err = Open(Config{Root: root, Log: true}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	if w.rows != 300 {
		t.Fatalf("%d rows replayed into the open files, want 300", w.rows)
	}
	if n := testutil.ToFloat64(w.m.rows); n != 300 {
		t.Errorf("%v rows written after the replay in the same process, want 300", n)
	}
	if err := w.Write(batch(300, 400)); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(w.m.rows); n != 400 {
		t.Errorf("%v rows written, want 400", n)
	}
	crash(w)
	w, err = Open(Config{Root: root, Log: true}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if w.rows != 400 {
		t.Fatalf("%d rows replayed into the open files, want 400", w.rows)
	}
	if n := testutil.ToFloat64(w.m.rows); n != 0 {
		t.Errorf("%v rows written by a new process that only replayed, want 0", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if seen := scanUUIDs(t, root); len(seen) != 400 {
		t.Errorf("%d flows archived, want 400", len(seen))
	}
}

// TestLogStatusStreams: verify reads the live row log a record at a time
// (a log holds up to maxFileAge of a node's rows, hundreds of MB on a busy
// node, and the daemon verifies while it writes): what it allocates is a
// fraction of the log's size, not the log.
func TestLogStatusStreams(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, Log: true, MaxFileRows: 1 << 24, MaxFileBytes: 1 << 30}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const total = 100_000
	for i := 0; i < total; i += 2000 {
		b := batch(i, i+2000)
		for _, f := range b.Flows {
			f.Uuid = randHex(16) // as incompressible as a real flow's UUID
		}
		b.Commit = true
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	size := w.rlog.size
	crash(w)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st, err := readLogStatus(root)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Rows != total || st[0].Records != total/2000 {
		t.Fatalf("log status %+v, want one log of %d records and %d rows", st, total/2000, total)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(size)/4 {
		t.Errorf("reading the status of a %d-byte log allocated %d bytes", size, alloc)
	}
}

// TestLogFlows: the flows of the row log, not yet in a closed file, are
// readable (a gRPC source's resume dedupes against them), up to a torn
// tail; once a cut has put them in files the log has none.
func TestLogFlows(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, Log: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i += 100 {
		if err := w.Write(batch(i, i+100)); err != nil {
			t.Fatal(err)
		}
	}
	path := w.rlog.path
	crash(w)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{200, 0, 0, 0, 1, 2}); err != nil { // a torn record
		t.Fatal(err)
	}
	f.Close()
	uuids := func() map[string]int {
		t.Helper()
		out := map[string]int{}
		if err := LogFlows(root, 0, func(f *flowpb.Flow) { out[f.GetUuid()]++ }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := uuids()
	if len(got) != 300 {
		t.Fatalf("%d flows in the log, want 300", len(got))
	}
	for u, n := range got {
		if n != 1 {
			t.Errorf("flow %s read %d times", u, n)
		}
	}
	w, err = Open(Config{Root: root, Log: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := uuids(); len(got) != 0 {
		t.Errorf("%d flows in the log after the cut, want 0", len(got))
	}
	if seen := scanUUIDs(t, root); len(seen) != 300 {
		t.Errorf("%d flows archived, want 300", len(seen))
	}
}

// oldRecord is a record as the versions before the accounting's "newest"
// key wrote it: the same layout, the accounting without that key.
func oldRecord(t *testing.T, b *flow.Batch, now time.Time, configHash string) []byte {
	t.Helper()
	meta, err := json.Marshal(map[string]any{"t": now.UnixNano(), "cfg": configHash, "cp": b.Checkpoint, "stats": b.Stats})
	if err != nil {
		t.Fatal(err)
	}
	buf := binary.AppendUvarint(nil, uint64(len(meta)))
	buf = append(buf, meta...)
	buf = binary.AppendUvarint(buf, uint64(len(b.Flows)))
	for _, f := range b.Flows {
		p, err := proto.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		buf = binary.AppendUvarint(buf, uint64(len(p)))
		buf = append(buf, p...)
	}
	z := s2.Encode(nil, buf)
	rec := binary.LittleEndian.AppendUint32(nil, uint32(len(z)))
	rec = binary.LittleEndian.AppendUint32(rec, crc32.Checksum(z, crcTable))
	return append(rec, z...)
}

// TestLogFlowsSkipsOlderRecords: LogFlows decodes only the records with a
// flow from the time asked for on, and every flow of a record written by
// an earlier version (no "newest" in its accounting), which a writer also
// recovers.
func TestLogFlowsSkipsOlderRecords(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, Log: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i += 100 {
		if err := w.Write(batch(i, i+100)); err != nil {
			t.Fatal(err)
		}
	}
	path := w.rlog.path
	crash(w)
	from := flowTimeNs(batch(900, 901).Flows[0])
	count := func(from int64) (n int) {
		t.Helper()
		if err := LogFlows(root, from, func(*flowpb.Flow) { n++ }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(0); n != 1000 {
		t.Fatalf("%d flows from 0, want 1000", n)
	}
	if n := count(from); n != 100 {
		t.Fatalf("%d flows from the last record's first, want its 100 (no older record decoded)", n)
	}
	if n := count(from + 1); n != 100 {
		t.Fatalf("%d flows from within the last record, want its 100", n)
	}
	all := testing.AllocsPerRun(3, func() { count(0) })
	last := testing.AllocsPerRun(3, func() { count(from) })
	if last > all/4 {
		t.Errorf("reading the last record allocates %.0f, reading all ten %.0f: older records were decoded", last, all)
	}

	// Records of an earlier version, after the new ones: read whole.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1000; i < 1200; i += 100 {
		if _, err := f.Write(oldRecord(t, batch(i, i+100), t0, "")); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	if n := count(flowTimeNs(batch(5000, 5001).Flows[0])); n != 200 {
		t.Fatalf("%d flows of the old records from after them, want all 200 (they cannot be skipped)", n)
	}
	w, err = Open(Config{Root: root, Log: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, root, 1200, "a log with records of an earlier version")
}
