package archive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

var (
	compactDay = time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	compactNow = time.Date(2026, 1, 12, 6, 0, 0, 0, time.UTC)
)

// commitFlows writes flows uuids from..to-1 at day+i minutes on nodes n1 and
// n2 and commits them (one flows and one stats file per node).
func commitFlows(t *testing.T, w *Writer, day time.Time, from, to int) {
	t.Helper()
	b := &flow.Batch{}
	for i := from; i < to; i++ {
		f := b.Next()
		f.Reset()
		f.Uuid = strconv.Itoa(i)
		f.Time = timestamppb.New(day.Add(time.Duration(i) * time.Minute))
		f.NodeName = []string{"c/n1", "c/n2"}[i%2]
		f.Verdict = flowpb.Verdict_FORWARDED
		f.Source = &flowpb.Endpoint{Namespace: "ns", Labels: []string{"k8s:app=a" + strconv.Itoa(i%3)}}
		b.AddStat(f.NodeName, f.Time.GetSeconds()/60*60, flow.Counts{Seen: 1, Kept: 1})
	}
	b.Checkpoint = flow.Checkpoint{Source: "t", Position: strconv.Itoa(to)}
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// closedDay opens a writer on a new archive and commits files commits of
// rows flows each (uuids from 0) on compactDay.
func closedDay(t *testing.T, files, rows int) (string, *Writer) {
	t.Helper()
	root := t.TempDir()
	w, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < files; i++ {
		commitFlows(t, w, compactDay, i*rows, (i+1)*rows)
	}
	return root, w
}

func partFiles(t *testing.T, root, table string, day time.Time, node string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, table, "date="+day.Format("2006-01-02"), "node="+SanitizeNode(node), "part-*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func statRows(t *testing.T, root string) map[int64]uint64 {
	t.Helper()
	sc, err := OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]uint64{}
	err = sc.ScanStats(context.Background(), ScanOptions{}, func(rows []StatRow) error {
		for _, r := range rows {
			seen[r.Minute] += r.FlowsSeen
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

func verifyClean(t *testing.T, root string) *VerifyReport {
	t.Helper()
	rep, err := Verify(root, time.Time{}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) > 0 {
		t.Fatalf("verify: %+v", rep.Findings)
	}
	return rep
}

// TestCompactMergesClosedDays: the files of a closed day become one file
// per table and node with the same rows; the open day is left alone; verify
// stays clean and counts the merged files; a second run does nothing; a
// late file of the closed day is merged with the compacted one.
func TestCompactMergesClosedDays(t *testing.T) {
	root, w := closedDay(t, 5, 40)
	commitFlows(t, w, compactNow.Truncate(24*time.Hour), 1000, 1010)
	commitFlows(t, w, compactNow.Truncate(24*time.Hour), 1010, 1020)
	flowsBefore, statsBefore := scanUUIDs(t, root), statRows(t, root)
	if n := len(partFiles(t, root, "flows", compactDay, "c/n1")); n != 5 {
		t.Fatalf("%d files before compaction, want 5", n)
	}

	res, err := w.Compact(compactNow)
	if err != nil {
		t.Fatal(err)
	}
	// Two nodes, two tables: 4 outputs of 5 inputs each.
	if res.Outputs != 4 || res.Inputs != 20 || res.Partitions != 4 {
		t.Fatalf("compaction: %+v, want 4 outputs of 20 inputs", res)
	}
	for _, node := range []string{"c/n1", "c/n2"} {
		for _, table := range []string{"flows", "stats"} {
			if n := len(partFiles(t, root, table, compactDay, node)); n != 1 {
				t.Errorf("%s %s: %d files after compaction, want 1", table, node, n)
			}
		}
		if n := len(partFiles(t, root, "flows", compactNow, node)); n != 2 {
			t.Errorf("the open day of %s: %d files, want its 2 untouched", node, n)
		}
	}
	if got := scanUUIDs(t, root); !equalCounts(got, flowsBefore) {
		t.Fatalf("flows after compaction differ: %d uuids, want %d", len(got), len(flowsBefore))
	}
	if got := statRows(t, root); !equalCounts(got, statsBefore) {
		t.Fatalf("stats after compaction differ")
	}
	rep := verifyClean(t, root)
	if rep.Compacted != 20 {
		t.Fatalf("verify counted %d compacted files, want 20", rep.Compacted)
	}
	entries, err := readManifest(manifestPath(root, "c/n1", "2026-01-10"))
	if err != nil {
		t.Fatal(err)
	}
	var comp []ManifestEntry
	for _, e := range entries {
		if e.Op == "compaction" {
			comp = append(comp, e)
		}
	}
	if len(comp) != 2 || comp[0].Table != "flows" || comp[0].Rows != 100 || len(comp[0].Replaces) != 5 || comp[1].Table != "stats" || len(comp[1].Replaces) != 5 {
		t.Fatalf("compaction entries of c/n1: %+v, want flows (100 rows) and stats, 5 files each", comp)
	}

	if res, err := w.Compact(compactNow); err != nil || res.Outputs != 0 {
		t.Fatalf("second compaction: %+v, %v; want nothing to do", res, err)
	}

	// A node catching up writes into the closed day again.
	commitFlows(t, w, compactDay, 200, 210)
	if res, err := w.Compact(compactNow); err != nil || res.Outputs != 4 || res.Inputs != 8 {
		t.Fatalf("compaction of a late file: %+v, %v; want 4 outputs of 8 inputs", res, err)
	}
	want := scanUUIDs(t, root)
	if len(want) != 230 {
		t.Fatalf("%d flows, want 230", len(want))
	}
	for u, n := range want {
		if n != 1 {
			t.Fatalf("uuid %s archived %d times", u, n)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	verifyClean(t, root)

	// The compacted file is evidence like any other.
	out := partFiles(t, root, "flows", compactDay, "c/n1")[0]
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 1
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(root, time.Time{}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != "modified" {
		t.Fatalf("verify after modifying the compacted file: %+v", rep.Findings)
	}
}

func equalCounts[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestCompactRefusesAModifiedFile: a file that changed since its commit is
// not merged (its new content would get a valid hash); nothing is deleted.
func TestCompactRefusesAModifiedFile(t *testing.T) {
	root, w := closedDay(t, 3, 10)
	files := partFiles(t, root, "flows", compactDay, "c/n1")
	b, err := os.ReadFile(files[1])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(files[1], b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = w.Compact(compactNow)
	if err == nil || !strings.Contains(err.Error(), filepath.Base(files[1])) || !strings.Contains(err.Error(), "changed since it was committed") {
		t.Fatalf("compaction over a modified file: %v", err)
	}
	if n := testutil.ToFloat64(w.m.writeErrors.WithLabelValues("compaction")); n != 1 {
		t.Fatalf("the refused compaction counted as %v errors, want 1", n)
	}
	if n := len(partFiles(t, root, "flows", compactDay, "c/n1")); n != 3 {
		t.Fatalf("%d files left, want the 3 untouched", n)
	}
}

// TestCompactionInterruptedBeforeDeletion: a crash after the compaction was
// recorded but before its inputs were deleted leaves them on disk; readers
// and verify do not count them twice, and the next compaction deletes them.
func TestCompactionInterruptedBeforeDeletion(t *testing.T) {
	root, w := closedDay(t, 3, 10)
	inputs := partFiles(t, root, "flows", compactDay, "c/n1")
	saved := map[string][]byte{}
	for _, p := range inputs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		saved[p] = b
	}
	if _, err := w.Compact(compactNow); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil { // the crash
		t.Fatal(err)
	}
	for p, b := range saved { // as if the deletions had not happened
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for u, n := range scanUUIDs(t, root) {
		if n != 1 {
			t.Fatalf("uuid %s read %d times with the compaction's inputs still on disk", u, n)
		}
	}
	verifyClean(t, root)
	w2, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if res, err := w2.Compact(compactNow); err != nil || res.Outputs != 0 {
		t.Fatalf("compaction after the crash: %+v, %v; want only the deletions finished", res, err)
	}
	for _, p := range inputs {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there after the next compaction: %v", filepath.Base(p), err)
		}
	}
	if n := len(scanUUIDs(t, root)); n != 30 {
		t.Fatalf("%d flows after recovery, want 30", n)
	}
}

// TestCompactionWhoseManifestAppendFails: the commit record of a compaction
// is durable but its manifest entry cannot be written (disk full): the
// output is kept for the retry, the inputs stay until the entry exists, no
// row is read twice, and the next Compact finishes the group.
func TestCompactionWhoseManifestAppendFails(t *testing.T) {
	root, w := closedDay(t, 3, 10)
	old := createFile
	createFile = func(path string, flag int, perm os.FileMode) (writableFile, error) {
		if strings.HasSuffix(path, ".jsonl") {
			return nil, syscall.ENOSPC
		}
		return old(path, flag, perm)
	}
	_, err := w.Compact(compactNow)
	createFile = old
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("compaction with a full disk: %v", err)
	}
	if n := len(partFiles(t, root, "flows", compactDay, "c/n1")); n != 4 {
		t.Fatalf("%d files after the failed append, want the 3 inputs and the output", n)
	}
	res, err := w.Compact(compactNow)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(partFiles(t, root, "flows", compactDay, "c/n1")); n != 1 {
		t.Fatalf("%d files after the retry (%+v), want 1", n, res)
	}
	for u, n := range scanUUIDs(t, root) {
		if n != 1 {
			t.Fatalf("uuid %s read %d times", u, n)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	verifyClean(t, root)
}

// TestCompactEachLetsWritesThrough: CompactEach takes the writer's lock to
// find the runs, then for each run twice (to start it, to commit its
// output) but not while it reads and writes the files, so batches written
// in between (the daemon's sources, while a day is compacted) are committed
// at once, even while a run is being merged; every flow is there once and
// verify is clean afterwards.
func TestCompactEachLetsWritesThrough(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, CompactMaxRows: 40}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ { // 6 commits of 20 flows per node: 3 runs of 2 files per table and node
		commitFlows(t, w, compactDay, i*40, (i+1)*40)
	}
	today := compactNow.Truncate(24 * time.Hour)
	var held bool
	locks, written := 0, 0
	lock := func(fn func() error) error {
		if held {
			t.Fatal("lock taken twice")
		}
		if locks > 1 { // between two runs: the sources' batch
			commitFlows(t, w, today, 1000+written*10, 1010+written*10)
			written++
		}
		locks++
		held = true
		defer func() { held = false }()
		return w.locked(fn)
	}
	res, err := w.compactEach(context.Background(), compactNow, lock)
	if err != nil {
		t.Fatal(err)
	}
	// 2 nodes x 2 tables x 3 runs, each started and committed under its own
	// locks, after the one that found them.
	if res.Outputs != 12 || res.Inputs != 24 || res.Partitions != 4 || locks != 25 || written != 23 {
		t.Fatalf("compaction %+v with %d locks and %d batches written in between; want 12 outputs of 24 inputs in 4 partitions, 25 locks, 23 batches", res, locks, written)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := scanUUIDs(t, root)
	if len(got) != 240+written*10 {
		t.Fatalf("%d flows after compaction, want %d", len(got), 240+written*10)
	}
	for u, n := range got {
		if n != 1 {
			t.Fatalf("uuid %s %d times", u, n)
		}
	}
	if rep := verifyClean(t, root); rep.Compacted != 24 {
		t.Fatalf("verify counted %d compacted files, want 24", rep.Compacted)
	}
}

// TestCompactEachWriterClosedWhileMerging: a writer closed (daemon shutdown)
// while a run is merged outside the lock discards the run's output; no
// temporary file is left and the inputs stay committed.
func TestCompactEachWriterClosedWhileMerging(t *testing.T) {
	root, w := closedDay(t, 4, 40)
	before := scanUUIDs(t, root)
	locks := 0
	_, err := w.compactEach(context.Background(), compactNow, func(fn func() error) error {
		locks++
		if locks == 3 { // the first run is merged: its commit is next
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return w.locked(fn)
	})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("compaction of a closed writer: %v", err)
	}
	if n := testutil.ToFloat64(w.m.writeErrors.WithLabelValues("compaction")); n != 0 {
		t.Fatalf("an interrupted compaction counted as %v errors", n)
	}
	noTemporaryFiles(t, root)
	if got := scanUUIDs(t, root); !equalCounts(got, before) {
		t.Fatalf("%d flows after the interrupted compaction, want %d", len(got), len(before))
	}
	verifyClean(t, root)
}

// TestCompactEachConcurrentWrites: batches written and committed from
// another goroutine for as long as CompactEach runs, the writer taking its
// own lock (the race detector checks that merging touches no state they
// change).
func TestCompactEachConcurrentWrites(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, CompactMaxRows: 40}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		commitFlows(t, w, compactDay, i*40, (i+1)*40)
	}
	today := compactNow.Truncate(24 * time.Hour)
	done := make(chan error, 1)
	compacted := make(chan struct{})
	batches := 0
	go func() {
		for i := 0; ; i++ {
			select {
			case <-compacted:
				batches = i
				done <- nil
				return
			default:
			}
			b := &flow.Batch{}
			for j := 0; j < 10; j++ {
				f := b.Next()
				f.Reset()
				f.Uuid, f.NodeName = strconv.Itoa(1000+i*10+j), "c/n1"
				f.Time = timestamppb.New(today.Add(time.Duration(i*10+j) * time.Second))
			}
			b.Checkpoint = flow.Checkpoint{Source: "t", Position: strconv.Itoa(i)}
			if err := w.Write(b); err != nil {
				done <- err
				return
			}
			if err := w.Flush(); err != nil {
				done <- err
				return
			}
		}
	}()
	res, err := w.CompactEach(context.Background(), compactNow)
	close(compacted)
	if werr := <-done; werr != nil {
		t.Fatal("write:", werr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Outputs != 16 || res.Inputs != 32 {
		t.Fatalf("compaction %+v, want 16 outputs of 32 inputs", res)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := scanUUIDs(t, root)
	if len(got) != 320+10*batches || batches == 0 {
		t.Fatalf("%d flows, want %d (%d batches written during the compaction)", len(got), 320+10*batches, batches)
	}
	for u, n := range got {
		if n != 1 {
			t.Fatalf("uuid %s %d times", u, n)
		}
	}
	verifyClean(t, root)
}

// TestCompactEachCancelled: a compaction cancelled (daemon shutdown) stops
// in the middle of merging a run: no temporary file is left, and the inputs
// stay committed.
func TestCompactEachCancelled(t *testing.T) {
	root, w := closedDay(t, 4, 40)
	before := scanUUIDs(t, root)
	ctx, cancel := context.WithCancel(context.Background())
	locks := 0
	_, err := w.compactEach(ctx, compactNow, func(fn func() error) error {
		if locks++; locks == 2 { // the first run is started: cancel its merge
			defer cancel()
		}
		return w.locked(fn)
	})
	if !errors.Is(err, context.Canceled) || locks != 2 {
		t.Fatalf("cancelled compaction: %v after %d locks, want context.Canceled after 2", err, locks)
	}
	if n := testutil.ToFloat64(w.m.writeErrors.WithLabelValues("compaction")); n != 0 {
		t.Fatalf("a cancelled compaction counted as %v errors", n)
	}
	noTemporaryFiles(t, root)
	if got := scanUUIDs(t, root); !equalCounts(got, before) {
		t.Fatalf("%d flows after the cancelled compaction, want %d", len(got), len(before))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	verifyClean(t, root)
}

// noTemporaryFiles fails when a data file's temporary is left in root.
func noTemporaryFiles(t *testing.T, root string) {
	t.Helper()
	leftovers, err := filepath.Glob(filepath.Join(root, "*", "*", "*", tmpPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

// TestProvisionalPagesCompactedAtTheBetterLevel: the files a writer with
// ProvisionalPages commits are compressed at zstd's default level, and
// compaction rewrites them into byte for byte the file it makes of the same
// files committed at the better level.
func TestProvisionalPagesCompactedAtTheBetterLevel(t *testing.T) {
	compacted := func(provisional bool) (inputs, output []byte) {
		root := t.TempDir()
		w, err := Open(Config{Root: root, ProvisionalPages: provisional}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for i := 0; i < 3; i++ {
			commitFlows(t, w, compactDay, i*400, (i+1)*400)
		}
		for _, p := range partFiles(t, root, "flows", compactDay, "c/n1") {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, b...)
		}
		if _, err := w.Compact(compactNow); err != nil {
			t.Fatal(err)
		}
		files := partFiles(t, root, "flows", compactDay, "c/n1")
		if len(files) != 1 {
			t.Fatalf("%d files after compaction", len(files))
		}
		if output, err = os.ReadFile(files[0]); err != nil {
			t.Fatal(err)
		}
		if got := scanUUIDs(t, root); len(got) != 1200 {
			t.Fatalf("%d flows after compaction", len(got))
		}
		return inputs, output
	}
	betterIn, betterOut := compacted(false)
	provIn, provOut := compacted(true)
	if bytes.Equal(betterIn, provIn) {
		t.Error("the provisional files are the better level's")
	}
	if !bytes.Equal(betterOut, provOut) {
		t.Errorf("compaction of provisional files: %d bytes, of the better level's: %d", len(provOut), len(betterOut))
	}
}
