package archive

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeRoot writes the flows from..to-1 of batch into a new archive root.
func writeRoot(t *testing.T, from, to int) string {
	t.Helper()
	root := t.TempDir()
	w, err := Open(Config{Root: root, MaxFileRows: 300}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i += 100 {
		if err := w.Write(batch(i, min(i+100, to))); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestFindOverlaps: two roots holding the same node's flows for the same
// time are found, with a flow uuid both hold; roots whose flows of a node
// follow one another (a node that moved) are not.
func TestFindOverlaps(t *testing.T) {
	a := writeRoot(t, 0, 1000)
	backfill := writeRoot(t, 800, 1200) // uuids 800..999 are in both
	moved := writeRoot(t, 1000, 1400)   // after a's last flow
	intact := func(roots ...string) []Vouched {
		rep, err := VerifyAll(roots, time.Time{}, time.Time{}, nil)
		if err != nil || !rep.OK() {
			t.Fatalf("verify %v: %v %+v", roots, err, rep)
		}
		return rep.Intact
	}
	if ovs := FindOverlaps(context.Background(), intact(a, moved)); len(ovs) != 0 {
		t.Errorf("a node that moved between roots: overlaps %+v", ovs)
	}
	ovs := FindOverlaps(context.Background(), intact(a, backfill))
	if len(ovs) != 2 {
		t.Fatalf("overlaps %+v, want one per node", ovs)
	}
	for _, ov := range ovs {
		if ov.RootA != a || ov.RootB != backfill || ov.Files[0].Root != a || ov.Files[1].Root != backfill {
			t.Errorf("overlap %+v: want a then the backfill", ov)
		}
		n, err := strconv.Atoi(ov.UUID)
		if err != nil || n < 800 || n >= 1000 || []string{"c/n1", "c/n2"}[n%2] != ov.Node {
			t.Errorf("overlap of %s: uuid %q, want one of 800..999 of that node", ov.Node, ov.UUID)
		}
		first, last := t0.Add(800*10*time.Millisecond), t0.Add(999*10*time.Millisecond)
		if ov.From.Before(first.Add(-10*time.Millisecond)) || ov.To.After(last) || !ov.From.Before(ov.To) {
			t.Errorf("overlap of %s from %v to %v, want within [%v, %v]", ov.Node, ov.From, ov.To, first, last)
		}
	}
}

// TestVerifyListsWhatAReaderMayCount: Intact holds the files that match
// their entries; Unvouched the rest with the finding's kind and the rows
// the entry records (an extra file: its footer's), whether the files are
// read or only their sizes compared.
func TestVerifyListsWhatAReaderMayCount(t *testing.T) {
	root := writeRoot(t, 0, 1000)
	rep, err := Verify(root, time.Time{}, time.Time{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unvouched) != 0 {
		t.Errorf("clean archive: unvouched %+v", rep.Unvouched)
	}
	var flows []Vouched
	var rows int64
	for _, v := range rep.Intact {
		if v.Table == "flows" {
			flows = append(flows, v)
			rows += v.Rows
		}
	}
	if rows != 1000 || len(flows) < 3 || flows[0].Node == "" || flows[0].Date != "2026-01-10" || flows[0].MinTime.IsZero() {
		t.Fatalf("intact flows %+v: want every file, 1000 rows", flows)
	}
	damaged, planted := filepath.Join(root, flows[1].Path), filepath.Join(filepath.Dir(filepath.Join(root, flows[0].Path)), "part-9-9-planted.parquet")
	b, _ := os.ReadFile(filepath.Join(root, flows[0].Path))
	if err := os.WriteFile(planted, b, 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(damaged)
	if err := os.Truncate(damaged, st.Size()-8); err != nil {
		t.Fatal(err)
	}
	for _, sizesOnly := range []bool{false, true} {
		rep, err := VerifyRoots([]string{root}, VerifyOptions{SizesOnly: sizesOnly})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]Unvouched{}
		for _, u := range rep.Unvouched {
			got[u.Kind] = u
		}
		if u := got["truncated"]; u.Path != flows[1].Path || u.Rows == nil || *u.Rows != flows[1].Rows {
			t.Errorf("sizes only %v: truncated file %+v, want %s with %d rows", sizesOnly, u, flows[1].Path, flows[1].Rows)
		}
		if u := got["extra"]; !strings.HasSuffix(u.Path, "planted.parquet") || u.Rows == nil || *u.Rows != flows[0].Rows {
			t.Errorf("sizes only %v: planted file %+v, want its footer's %d rows", sizesOnly, u, flows[0].Rows)
		}
		if len(rep.Intact) != len(flows)-1+countTable(rep.Intact, "stats") || slices.ContainsFunc(rep.Intact, func(v Vouched) bool { return v.Path == flows[1].Path }) {
			t.Errorf("sizes only %v: intact %d files, want all but the truncated one", sizesOnly, len(rep.Intact))
		}
	}
}

func countTable(vs []Vouched, table string) int {
	n := 0
	for _, v := range vs {
		if v.Table == table {
			n++
		}
	}
	return n
}

// TestScanReadsOnlyTheGivenFiles: ScanOptions.Files restricts a scan to
// those files, and a file that cannot be read is a ScanError naming it.
func TestScanReadsOnlyTheGivenFiles(t *testing.T) {
	root := writeRoot(t, 0, 1000)
	sc, err := OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	all, err := sc.Files("flows", time.Time{}, time.Time{})
	if err != nil || len(all) < 3 {
		t.Fatalf("files %v %v", all, err)
	}
	rows := 0
	err = sc.ScanFlows(context.Background(), ScanOptions{Files: all[:1]}, func(r []FlowRow) error { rows += len(r); return nil })
	if err != nil || rows == 0 || rows >= 1000 {
		t.Errorf("scan of one file: %d rows, %v", rows, err)
	}
	if err := os.WriteFile(filepath.Join(root, all[1].Path), []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	var se *ScanError
	err = ScanFlowRowGroups(context.Background(), sc, ScanOptions{Files: all}, func() int { return 0 }, func(int, RowGroup) error { return nil })
	if !errors.As(err, &se) || se.File.Path != all[1].Path || !strings.Contains(err.Error(), all[1].Path) {
		t.Errorf("damaged file: %v, want a ScanError naming %s", err, all[1].Path)
	}
}

// TestVerifyFindingsAreAListInJSON: a clean archive's findings are [] in
// the JSON of verify and of the report, never null.
func TestVerifyFindingsAreAListInJSON(t *testing.T) {
	root := writeRoot(t, 0, 200)
	for _, roots := range [][]string{{root}, {root, writeRoot(t, 200, 400)}} {
		rep, err := VerifyAll(roots, time.Time{}, time.Time{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(rep)
		if !strings.Contains(string(js), `"findings":[]`) {
			t.Errorf("%d root(s): %s", len(roots), js)
		}
	}
}
