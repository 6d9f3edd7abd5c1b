package archive

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// retentionArchive writes 2000 flows from 2026-01-10T23:59:50Z to
// 2026-01-11T00:00:10Z on two nodes (1000 on each day).
func retentionArchive(t *testing.T, priv ed25519.PrivateKey) string {
	t.Helper()
	root := t.TempDir()
	w, err := Open(Config{Root: root, MaxFileRows: 400, SigningKey: priv}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 5000; i < 7000; i += 250 {
		if err := w.Write(batch(i, i+250)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestRetentionDeletesWholeDaysAndRecordsThem(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	pub := priv.Public().(ed25519.PublicKey)
	root := retentionArchive(t, priv)
	before, err := Verify(root, time.Time{}, time.Time{}, pub)
	if err != nil || !before.OK() {
		t.Fatalf("verify before: %v %+v", err, before)
	}
	oldFiles, _ := filepath.Glob(filepath.Join(root, "flows", "date=2026-01-10", "*", "*.parquet"))
	if len(oldFiles) == 0 {
		t.Fatal("no flows on the 10th")
	}

	w, err := Open(Config{Root: root, SigningKey: priv}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 36h before noon on the 12th is midnight starting the 11th: the 10th is
	// entirely older, the 11th is not.
	now := time.Date(2026, 1, 12, 12, 0, 0, 0, time.UTC)
	res, err := w.ApplyRetention(now, Retention{Flows: 36 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Partitions != 2 || res.Files != len(oldFiles) || res.Rows != 1000 {
		t.Fatalf("retention removed %+v; want 2 partitions, %d files, 1000 rows", res, len(oldFiles))
	}
	if _, err := os.Stat(filepath.Join(root, "flows", "date=2026-01-10")); !os.IsNotExist(err) {
		t.Fatalf("the 10th's flows are still there: %v", err)
	}
	if st, _ := filepath.Glob(filepath.Join(root, "stats", "date=2026-01-10", "*", "*.parquet")); len(st) == 0 {
		t.Fatal("stats have no retention set and must stay")
	}
	// What is left: exactly the flows of the 11th.
	seen := scanUUIDs(t, root)
	if len(seen) != 1000 {
		t.Fatalf("%d flows left, want 1000", len(seen))
	}
	for u := range seen {
		if n, _ := strconv.Atoi(u); n < 6000 {
			t.Fatalf("flow %s of the 10th survived", u)
		}
	}
	// Again: nothing more to do.
	if again, err := w.ApplyRetention(now, Retention{Flows: 36 * time.Hour}); err != nil || again.Partitions != 0 || again.Files != 0 {
		t.Fatalf("second run: %+v, %v", again, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// The chain stays verifiable and says what was retired.
	rep, err := Verify(root, time.Time{}, time.Time{}, pub)
	if err != nil || !rep.OK() {
		t.Fatalf("verify after retention: %v %+v", err, rep)
	}
	if rep.Retired != len(oldFiles) || rep.Entries != before.Entries+2 {
		t.Fatalf("retired %d files (want %d), %d entries (want %d)", rep.Retired, len(oldFiles), rep.Entries, before.Entries+2)
	}
	m, err := readManifest(manifestPath(root, "c/n1", "2026-01-10"))
	if err != nil {
		t.Fatal(err)
	}
	last := m[len(m)-1]
	if last.Op != "retention" || last.Path != "flows/date=2026-01-10/node=c%2Fn1" || last.Rows != 500 || last.Signature == "" {
		t.Fatalf("retention entry: %+v", last)
	}

	// A file missing from a partition retention did not delete is still a
	// finding.
	newFiles, _ := filepath.Glob(filepath.Join(root, "flows", "date=2026-01-11", "*", "*.parquet"))
	if err := os.Remove(newFiles[0]); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(root, time.Time{}, time.Time{}, pub)
	if err != nil || len(rep.Findings) != 1 || rep.Findings[0].Kind != "missing" {
		t.Fatalf("verify after removing a live file: %v %+v", err, rep)
	}
}

// TestRetentionResumesAfterACrash: the entry is written before the files are
// removed; a crash in between leaves the entry, and the next run removes the
// files without a second entry.
func TestRetentionResumesAfterACrash(t *testing.T) {
	root := retentionArchive(t, nil)
	w, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rel := "stats/date=2026-01-10/node=c%2Fn1"
	if err := w.appendManifest(ManifestEntry{Op: "retention", Path: rel, Table: "stats"}, "c/n1", "2026-01-10"); err != nil {
		t.Fatal(err)
	}
	// Verify in between: the files are still there and still checked.
	if rep, err := Verify(root, time.Time{}, time.Time{}, nil); err != nil || !rep.OK() || rep.Retired != 0 {
		t.Fatalf("verify with the deletion pending: %v %+v", err, rep)
	}
	res, err := w.ApplyRetention(time.Date(2026, 1, 12, 0, 0, 0, 0, time.UTC), Retention{Stats: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res.Partitions != 1 || res.Files < 2 { // n2 recorded now; n1's files removed under the old entry
		t.Fatalf("%+v", res)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, node := range []string{"c/n1", "c/n2"} {
		m, _ := readManifest(manifestPath(root, node, "2026-01-10"))
		for _, e := range m {
			if e.Op == "retention" && strings.HasPrefix(e.Path, "stats/") {
				n++
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d stats retention entries, want one per node", n)
	}
	if rep, err := Verify(root, time.Time{}, time.Time{}, nil); err != nil || !rep.OK() || rep.Retired == 0 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// TestRetentionRecordsFlowsThatCameAfterIt: flows of a day already deleted
// by retention that arrive later (a node catching up) are deleted by the
// next run with an entry of their own: the day's retention entries count
// every row its commits wrote.
func TestRetentionRecordsFlowsThatCameAfterIt(t *testing.T) {
	root := retentionArchive(t, nil)
	now := time.Date(2026, 1, 12, 12, 0, 0, 0, time.UTC)
	w, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w.ApplyRetention(now, Retention{Flows: 36 * time.Hour}); err != nil || res.Rows != 1000 {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	if err := w.Write(batch(5000, 5100)); err != nil { // 100 more flows of the 10th
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.ApplyRetention(now, Retention{Flows: 36 * time.Hour})
	if err != nil || res.Rows != 100 || res.Files == 0 {
		t.Fatalf("second run: %+v, %v; want the 100 late rows recorded and deleted", res, err)
	}
	if again, err := w.ApplyRetention(now, Retention{Flows: 36 * time.Hour}); err != nil || again.Partitions != 0 || again.Files != 0 {
		t.Fatalf("third run: %+v, %v", again, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var rows, committed int64
	for _, node := range []string{"c/n1", "c/n2"} {
		m, _ := readManifest(manifestPath(root, node, "2026-01-10"))
		for _, e := range m {
			switch {
			case e.Op == "retention" && e.Table == "flows":
				rows += e.Rows
			case e.Op == "commit" && e.Table == "flows":
				committed += e.Rows
			}
		}
	}
	if rows != 1100 || committed != 1100 {
		t.Fatalf("retention entries of the 10th count %d rows, its commits %d: want 1100 both", rows, committed)
	}
	if rep, err := Verify(root, time.Time{}, time.Time{}, nil); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// TestRecoveryAfterRetentionDeletedTheLastCommit: retention deletes the
// files of the last commit group (flows of a day long past, committed
// last), then the writer crashes: the next open, which completes the last
// commit group, finds its files entered in the chain and deleted by
// retention, and opens.
func TestRecoveryAfterRetentionDeletedTheLastCommit(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(batch(5000, 5100)); err != nil { // flows of the 10th
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.ApplyRetention(time.Date(2026, 1, 12, 12, 0, 0, 0, time.UTC), Retention{Flows: 36 * time.Hour})
	if err != nil || res.Rows != 100 {
		t.Fatalf("retention: %+v, %v", res, err)
	}
	if err := w.Abort(); err != nil { // a crash: nothing more committed
		t.Fatal(err)
	}
	w, err = Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatalf("open after retention deleted the last commit's flows: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(root, time.Time{}, time.Time{}, nil); err != nil || !rep.OK() || rep.Retired == 0 {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}
