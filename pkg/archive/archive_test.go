package archive

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

var t0 = time.Date(2026, 1, 10, 23, 59, 0, 0, time.UTC)

// batch makes flows with uuids from..to-1, on two nodes, spanning midnight.
func batch(from, to int) *flow.Batch {
	b := &flow.Batch{}
	for i := from; i < to; i++ {
		f := b.Next()
		f.Reset()
		f.Uuid = strconv.Itoa(i)
		f.Time = timestamppb.New(t0.Add(time.Duration(i) * 10 * time.Millisecond))
		f.NodeName = []string{"c/n1", "c/n2"}[i%2]
		f.Verdict = flowpb.Verdict_FORWARDED
		if i%7 == 0 {
			f.Verdict = flowpb.Verdict_DROPPED
			f.DropReasonDesc = flowpb.DropReason_POLICY_DENIED
		}
		b.AddStat(f.NodeName, f.Time.GetSeconds()/60*60, flow.Counts{Seen: 1, Kept: 1})
	}
	b.Checkpoint = flow.Checkpoint{Source: "test", Position: strconv.Itoa(to)}
	return b
}

func scanUUIDs(t *testing.T, root string) map[string]int {
	t.Helper()
	sc, err := OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	err = sc.ScanFlows(context.Background(), ScanOptions{}, func(rows []FlowRow) error {
		for _, r := range rows {
			seen[*r.UUID]++
			if r.DropReasonDesc != nil && *r.Verdict != "DROPPED" {
				return fmt.Errorf("drop reason on a %s flow", *r.Verdict)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

func TestRoundTripRotationAndCheckpoints(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, MaxFileRows: 1000}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10000; i += 500 {
		if err := w.Write(batch(i, i+500)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	seen := scanUUIDs(t, root)
	if len(seen) != 10000 {
		t.Fatalf("%d rows scanned", len(seen))
	}
	for u, n := range seen {
		if n != 1 {
			t.Fatalf("uuid %s seen %d times", u, n)
		}
	}
	sc, _ := OpenScanner(root)
	files, _ := sc.Files("flows", time.Time{}, time.Time{})
	dates := map[string]bool{}
	for _, f := range files {
		dates[f.Date+"/"+f.Node] = true
	}
	if len(dates) != 4 || len(files) < 10 {
		t.Fatalf("files %d in partitions %v: want rotation and 2 days x 2 nodes", len(files), dates)
	}
	w2, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cp := w2.Checkpoints()["test"]; cp.Position != "10000" {
		t.Fatalf("checkpoint after reopen %+v", cp)
	}
	rep, err := Verify(root, time.Time{}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Rows < 10000 {
		t.Fatalf("verify: %+v", rep)
	}
}

func TestSanitizeNode(t *testing.T) {
	for _, n := range []string{"cluster/node", "../../etc", "..", ".", "", "_", "a b\x00c", "노드", strings.Repeat("x", 50)} {
		s := SanitizeNode(n)
		if strings.ContainsAny(s, "/\\\x00") || s == "." || s == ".." || s == "" {
			t.Errorf("%q -> unsafe %q", n, s)
		}
		if got := UnsanitizeNode(s); got != n {
			t.Errorf("%q -> %q -> %q", n, s, got)
		}
	}
}

func FuzzSanitizeNode(f *testing.F) {
	for _, s := range []string{"c/n", "..", "%2F", "_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n string) {
		s := SanitizeNode(n)
		if strings.ContainsAny(s, "/\\\x00") || s == "." || s == ".." || s == "" {
			t.Fatalf("%q -> unsafe %q", n, s)
		}
		if len(n) < 60 {
			if got := UnsanitizeNode(s); got != n {
				t.Fatalf("%q -> %q -> %q", n, s, got)
			}
		}
	})
}

func TestVerifyDetectsTampering(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	setup := func(t *testing.T) (string, []string) {
		root := t.TempDir()
		w, err := Open(Config{Root: root, MaxFileRows: 300, SigningKey: priv}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2000; i += 100 {
			if err := w.Write(batch(i, i+100)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		sc, _ := OpenScanner(root)
		files, _ := sc.Files("flows", time.Time{}, time.Time{})
		var paths []string
		for _, f := range files {
			paths = append(paths, filepath.Join(root, f.Path))
		}
		return root, paths
	}
	pub := priv.Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name, kind string
		tamper     func(t *testing.T, root string, files []string)
	}{
		{"missing", "missing", func(t *testing.T, _ string, files []string) { os.Remove(files[1]) }},
		{"extra", "extra", func(t *testing.T, _ string, files []string) {
			b, _ := os.ReadFile(files[0])
			os.WriteFile(filepath.Join(filepath.Dir(files[0]), "part-99999999999999999999-000001-x.parquet"), b, 0o644)
		}},
		{"modified", "modified", func(t *testing.T, _ string, files []string) {
			b, _ := os.ReadFile(files[2])
			b[len(b)/2] ^= 0xff
			os.WriteFile(files[2], b, 0o644)
		}},
		{"truncated", "truncated", func(t *testing.T, _ string, files []string) {
			st, _ := os.Stat(files[0])
			os.Truncate(files[0], st.Size()-10)
		}},
		{"manifest entry removed", "chain", func(t *testing.T, root string, _ []string) {
			m, _ := filepath.Glob(filepath.Join(root, "manifests", "*", "*.jsonl"))
			b, _ := os.ReadFile(m[0])
			lines := strings.SplitAfter(string(b), "\n")
			os.WriteFile(m[0], []byte(strings.Join(append(lines[:1], lines[2:]...), "")), 0o644)
		}},
		{"manifest lines reordered", "chain", func(t *testing.T, root string, _ []string) {
			m, _ := filepath.Glob(filepath.Join(root, "manifests", "*", "*.jsonl"))
			b, _ := os.ReadFile(m[0])
			lines := strings.SplitAfter(string(b), "\n")
			lines[1], lines[2] = lines[2], lines[1]
			os.WriteFile(m[0], []byte(strings.Join(lines, "")), 0o644)
		}},
		{"manifest entry altered", "chain", func(t *testing.T, root string, _ []string) {
			m, _ := filepath.Glob(filepath.Join(root, "manifests", "*", "*.jsonl"))
			b, _ := os.ReadFile(m[0])
			os.WriteFile(m[0], []byte(strings.Replace(string(b), `"rows":`, `"rows":1`, 1)), 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, files := setup(t)
			if rep, err := Verify(root, time.Time{}, time.Time{}, pub); err != nil || !rep.OK() {
				t.Fatalf("clean archive: %v %+v", err, rep)
			}
			tc.tamper(t, root, files)
			rep, err := Verify(root, time.Time{}, time.Time{}, pub)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, f := range rep.Findings {
				if f.Kind == tc.kind {
					found = true
				}
			}
			if !found {
				t.Fatalf("no %s finding: %+v", tc.kind, rep.Findings)
			}
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		root, _ := setup(t)
		other, _, _ := ed25519.GenerateKey(nil)
		rep, _ := Verify(root, time.Time{}, time.Time{}, other)
		if rep.OK() {
			t.Fatal("signatures verified with the wrong key")
		}
	})
}

// TestExactlyOnceUnderSIGKILL runs a writer in a child process, kills it with
// SIGKILL at random moments, restarts it from the committed checkpoint, and
// finally checks that every row is in the archive exactly once: with every
// commit a cut ("files"), and with the row log ("log"), where commits
// fsync the log, files are cut by size and the kills also land in replays.
func TestExactlyOnceUnderSIGKILL(t *testing.T) {
	if os.Getenv("FLOWAUDIT_ARCHIVE_CHILD") != "" {
		return
	}
	for _, mode := range []string{"files", "log"} {
		t.Run(mode, func(t *testing.T) { testExactlyOnceUnderSIGKILL(t, mode) })
	}
}

func testExactlyOnceUnderSIGKILL(t *testing.T, mode string) {
	root := t.TempDir()
	kills, total := 40, 30000
	if testing.Short() {
		kills = 8
	}
	if raceEnabled {
		// Crash semantics do not need the race detector, which makes every
		// child ~10x slower: fewer, smaller runs (make soak runs hundreds).
		kills, total = 12, 10000
	}
	// FLOWAUDIT_SIGKILL_KILLS=300 for a soak run (make soak).
	if n, err := strconv.Atoi(os.Getenv("FLOWAUDIT_SIGKILL_KILLS")); err == nil && n > 0 {
		kills = n
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for i := 0; i < kills; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestArchiveChild$")
		cmd.Env = append(os.Environ(), "FLOWAUDIT_ARCHIVE_CHILD="+root, "FLOWAUDIT_ARCHIVE_TOTAL="+strconv.Itoa(total), "FLOWAUDIT_ARCHIVE_MODE="+mode)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(20+r.IntN(150)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	// A last run to completion.
	cmd := exec.Command(os.Args[0], "-test.run=^TestArchiveChild$")
	cmd.Env = append(os.Environ(), "FLOWAUDIT_ARCHIVE_CHILD="+root, "FLOWAUDIT_ARCHIVE_TOTAL="+strconv.Itoa(total), "FLOWAUDIT_ARCHIVE_MODE="+mode)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	seen := scanUUIDs(t, root)
	for i := 0; i < total; i++ {
		if n := seen[strconv.Itoa(i)]; n != 1 {
			t.Fatalf("row %d archived %d times after %d kills", i, n, kills)
		}
	}
	if len(seen) != total {
		t.Fatalf("%d rows, want %d", len(seen), total)
	}
	rep, err := Verify(root, time.Time{}, time.Time{}, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("verify after kills: %v %+v", err, rep.Findings)
	}
	if rep.Compacted == 0 {
		t.Fatal("no file was compacted")
	}
}

// TestArchiveChild is the child of TestExactlyOnceUnderSIGKILL.
func TestArchiveChild(t *testing.T) {
	root := os.Getenv("FLOWAUDIT_ARCHIVE_CHILD")
	if root == "" {
		t.Skip("child process of TestExactlyOnceUnderSIGKILL")
	}
	total, _ := strconv.Atoi(os.Getenv("FLOWAUDIT_ARCHIVE_TOTAL"))
	cfg := Config{Root: root, MaxFileRows: 700, CompactMaxRows: 1 << 20}
	if os.Getenv("FLOWAUDIT_ARCHIVE_MODE") == "log" {
		// Files of 1900 rows: a log holds up to 19 records, and the
		// commits below fsync it every third batch.
		cfg.Log, cfg.MaxFileRows = true, 1900
	}
	w, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := 0
	if cp := w.Checkpoints()["test"]; cp.Position != "" {
		start, _ = strconv.Atoi(cp.Position)
	}
	for i := start; i < total; i += 100 {
		b := batch(i, min(i+100, total))
		b.Commit = cfg.Log && i%300 == 0
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		// Both days of the batches are closed three days later: the
		// kills also land in compactions, between and inside them.
		if i%1000 == 900 {
			if _, err := w.Compact(t0.Add(72 * time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOneWriterPerRoot: a second writer on a root fails with who holds it,
// until the first is closed or aborted.
func TestOneWriterPerRoot(t *testing.T) {
	root := t.TempDir()
	w1, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Root: root}, nil, nil); err == nil || !strings.Contains(err.Error(), "in use by another writer (pid ") {
		t.Fatalf("second writer: %v, want in use by another writer", err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	w2, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	if err := w2.Abort(); err != nil {
		t.Fatal(err)
	}
	w3, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatalf("after Abort: %v", err)
	}
	if err := w3.Close(); err != nil {
		t.Fatal(err)
	}
	// Readers need no lock, and verify does not count the lock file.
	res, err := Verify(root, time.Time{}, time.Time{}, nil)
	if err != nil || !res.OK() {
		t.Fatalf("verify: %+v, %v", res, err)
	}
}

// TestManifestReadOncePerWriter: a writer reads a day's manifest whole (the
// recovery checks) the first time it appends to it, not for every commit;
// a new writer on the same root reads it again, and the chain stays whole.
func TestManifestReadOncePerWriter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Root = t.TempDir()
	for round := 0; round < 2; round++ {
		w, err := Open(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Opening may re-apply the last commit groups (recovery), which
		// checks each of their entries against the manifest; count after.
		w.manifestReads = 0
		for c := 0; c < 40; c++ {
			if err := w.Write(batch(round*1000+c*10, round*1000+c*10+10)); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		// Two nodes, one day: two manifests, each read at most once.
		if w.manifestReads > 2 {
			t.Errorf("round %d: %d whole reads of the manifests in 40 commits, want at most 2", round, w.manifestReads)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Verify(cfg.Root, time.Time{}, time.Time{}, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	if n := len(scanUUIDs(t, cfg.Root)); n != 800 {
		t.Fatalf("%d flows, want 800", n)
	}
}

// TestCommitKeepsBuffersForItsPartitions: a commit that closes the files of
// many partitions keeps their column buffers for the next files (all of
// them, not three), and a later commit of fewer files lets the extra go.
func TestCommitKeepsBuffersForItsPartitions(t *testing.T) {
	spareBufs.keep(0)
	defer spareBufs.keep(0)
	free := func() int {
		spareBufs.mu.Lock()
		defer spareBufs.mu.Unlock()
		return len(spareBufs.free)
	}
	w, err := Open(Config{Root: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	write := func(nodes int) {
		t.Helper()
		b := &flow.Batch{}
		for i := range 4 * nodes {
			f := b.Next()
			f.Reset()
			f.Uuid = strconv.Itoa(i)
			f.Time = timestamppb.New(t0.Add(-time.Hour + time.Duration(i)*time.Millisecond))
			f.NodeName = fmt.Sprintf("node-%d", i%nodes)
		}
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	write(8)
	if n := free(); n != 8 {
		t.Fatalf("after a commit of 8 files %d buffers kept, want 8", n)
	}
	write(8) // takes all 8, then gives them back
	if n := free(); n != 8 {
		t.Fatalf("after a second commit of 8 files %d buffers kept, want 8", n)
	}
	write(1)
	if n := free(); n != maxSpareBufs {
		t.Fatalf("after a commit of 1 file %d buffers kept, want %d", n, maxSpareBufs)
	}
}

// TestSizeLimitUsesTheMeasuredRowSize: the size limit counts 256 bytes a
// row until a commit has measured the rows' compressed size, then that.
func TestSizeLimitUsesTheMeasuredRowSize(t *testing.T) {
	const limit = 256 * 1000 // 1,000 rows at the initial estimate
	w, err := Open(Config{Root: t.TempDir(), MaxFileBytes: limit}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var commits []int  // rows in each commit
	var measured int64 // the estimate after the first commit
	rows := 0
	for i := 0; len(commits) < 2; i += 100 {
		if i > 1_000_000 {
			t.Fatalf("no second commit after %d rows (estimate %d B/row)", i, w.rowBytes)
		}
		b := batch(i, i+100)
		b.Stats = nil
		seq := w.seq
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		rows += 100
		if w.seq != seq {
			commits = append(commits, rows)
			rows = 0
			if measured == 0 {
				measured = w.rowBytes
			}
		}
	}
	if commits[0] != 1000 {
		t.Fatalf("first commit after %d rows, want 1000 (256 B/row)", commits[0])
	}
	if measured >= initialRowBytes || measured < 8 {
		t.Fatalf("measured %d B/row", measured)
	}
	want := (limit + int(measured) - 1) / int(measured)
	if commits[1] < want || commits[1] >= want+100 {
		t.Fatalf("second commit after %d rows, want the first 100-row batch past %d (%d B/row)", commits[1], want, measured)
	}
}

// TestSizeLimitMeasuredFromRowGroups: before any commit, the row groups the
// open files have written measure the row size, so the first commit too
// comes at the size limit rather than at 256 bytes a row.
func TestSizeLimitMeasuredFromRowGroups(t *testing.T) {
	const limit = 256 * 3000 // 3,000 rows at the initial estimate
	w, err := Open(Config{Root: t.TempDir(), MaxFileBytes: limit, RowGroupRows: 500}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rows := 0
	for i := 0; w.seq == 0; i += 100 {
		if i > 1_000_000 {
			t.Fatalf("no commit after %d rows (estimate %d B/row)", i, w.rowBytes)
		}
		b := batch(i, i+100)
		b.Stats = nil
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		rows += 100
	}
	if !w.measured || w.rowBytes >= initialRowBytes {
		t.Fatalf("measured %v, %d B/row", w.measured, w.rowBytes)
	}
	if rows <= 3000 {
		t.Fatalf("first commit after %d rows: the 256 B/row estimate, not the measured one", rows)
	}
}

// TestRowBuffersKeptAcrossCommits: the next file of a partition takes the
// row buffer the committed one grew, with the column buffers (spareBufs),
// and none of the old file's rows are in it. How many buffers a commit keeps
// is TestCommitKeepsBuffersForItsPartitions'.
func TestRowBuffersKeptAcrossCommits(t *testing.T) {
	spareBufs.keep(0)
	defer spareBufs.keep(0)
	w, err := Open(Config{Root: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(batch(0, 3000)); err != nil {
		t.Fatal(err)
	}
	var grown []*FlowRow
	for _, of := range w.files {
		if of.flows != nil {
			grown = append(grown, &of.flows.bufs.rows[:1][0])
		}
	}
	if len(grown) != 2 {
		t.Fatalf("%d flows files open, want 2 (two nodes)", len(grown))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(batch(3000, 3100)); err != nil {
		t.Fatal(err)
	}
	reused := 0
	for _, of := range w.files {
		if of.flows == nil {
			continue
		}
		if n := of.flows.pending(); n != 0 {
			t.Fatalf("%d rows pending after a Write", n)
		}
		for _, g := range grown {
			if &of.flows.bufs.rows[:1][0] == g {
				reused++
			}
		}
	}
	if reused != 2 {
		t.Fatalf("%d of 2 files reuse a committed file's row buffer", reused)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := scanUUIDs(t, w.cfg.Root); len(got) != 3100 {
		t.Fatalf("%d committed flows, want 3100", len(got))
	}
}

// TestLastCommittedFlowTime: the gauge of a source's newest committed flow
// moves at a commit, not at a write, to the newest flow time of that
// source's batches (not the last row's, when a batch is out of order), and
// not at all for a commit without its flows.
func TestLastCommittedFlowTime(t *testing.T) {
	w, err := Open(Config{Root: t.TempDir()}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	gauge := func() float64 { return testutil.ToFloat64(w.m.lastCommittedFlow.WithLabelValues("test")) }
	b := batch(0, 100)
	b.Flows[0], b.Flows[99] = b.Flows[99], b.Flows[0] // the newest first
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if got := gauge(); got != 0 {
		t.Fatalf("before the commit: %v, want 0", got)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := float64(t0.Add(99*10*time.Millisecond).UnixNano()) / 1e9
	if got := gauge(); got != want {
		t.Fatalf("after the commit: %v, want %v (flow 99's time)", got, want)
	}
	// A commit of another source's checkpoint leaves it alone.
	if err := w.Write(&flow.Batch{Checkpoint: flow.Checkpoint{Source: "other", Position: "1"}, Commit: true}); err != nil {
		t.Fatal(err)
	}
	if got := gauge(); got != want {
		t.Fatalf("after a commit without its flows: %v, want %v", got, want)
	}
}
