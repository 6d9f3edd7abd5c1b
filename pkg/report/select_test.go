package report

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

func build(t *testing.T, o Options) *Report {
	t.Helper()
	if o.Month.IsZero() {
		o.Month = jan
	}
	o.Now = jan.AddDate(0, 1, 0)
	rep, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// januaryFlowsFiles are the committed flows files of the small archive's
// January partitions, as Verify vouches for them.
func januaryFlowsFiles(t *testing.T, root string) []archive.Vouched {
	t.Helper()
	rep, err := archive.VerifyAll([]string{root}, jan, jan.AddDate(0, 1, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []archive.Vouched
	for _, v := range rep.Intact {
		if v.Table == "flows" && strings.HasPrefix(v.Date, "2026-01") {
			out = append(out, v)
		}
	}
	if len(out) < 2 {
		t.Fatalf("January flows files %+v", out)
	}
	return out
}

func sqlOf(rep *Report, name string) string {
	for _, q := range rep.Queries {
		if q.Name == name {
			return q.SQL
		}
	}
	return ""
}

// TestPlantedFileIsNotCounted: a Parquet file put into a partition, named
// like the writer's files but in no manifest, is an integrity finding and
// excluded: the numbers and the printed queries leave it out.
func TestPlantedFileIsNotCounted(t *testing.T) {
	root := smallArchive(t)
	clean := build(t, Options{Archives: []string{root}})
	if len(clean.Excluded) != 0 || !strings.Contains(sqlOf(clean, "total_flows"), "/flows/date=*/node=*/part-*.parquet'") {
		t.Fatalf("clean archive: excluded %+v, SQL %s", clean.Excluded, sqlOf(clean, "total_flows"))
	}
	files := januaryFlowsFiles(t, root)
	src := filepath.Join(root, files[0].Path)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(filepath.Dir(src), "part-01767225600000000000-000099-planted.parquet")
	if err := os.WriteFile(planted, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := build(t, Options{Archives: []string{root}})
	if rep.TotalFlows != clean.TotalFlows || rep.DeniedTotal != clean.DeniedTotal {
		t.Errorf("total_flows %d, denied %d with a planted file; %d and %d without", rep.TotalFlows, rep.DeniedTotal, clean.TotalFlows, clean.DeniedTotal)
	}
	if len(rep.Excluded) != 1 || rep.Excluded[0].Kind != "extra" || !strings.HasSuffix(rep.Excluded[0].Path, "planted.parquet") ||
		rep.Excluded[0].Rows == nil || *rep.Excluded[0].Rows != files[0].Rows {
		t.Errorf("excluded %+v, want the planted file with its %d rows", rep.Excluded, files[0].Rows)
	}
	for _, q := range rep.Queries {
		if strings.Contains(q.SQL, "planted") || strings.Contains(q.SQL, "flows/date=*") {
			t.Errorf("%s reads the planted file (or a glob that matches it): %s", q.Name, q.SQL)
		}
	}
	if q := sqlOf(rep, "total_flows"); !strings.Contains(q, "read_parquet(['") || !strings.Contains(q, "'"+root+"/"+files[0].Path+"'") {
		t.Errorf("total_flows does not read the counted files by name: %s", sqlOf(rep, "total_flows"))
	}
	var md bytes.Buffer
	if err := RenderMarkdown(&md, rep, "en"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "1 file(s) (") || !strings.Contains(md.String(), "planted.parquet") {
		t.Errorf("the Markdown report does not say what it excluded:\n%s", md.String())
	}
}

// TestDamagedFileDoesNotStopTheReport: a truncated file, one whose footer
// is gone and one modified in place are integrity findings; the report is
// written from the other files and says what it left out.
func TestDamagedFileDoesNotStopTheReport(t *testing.T) {
	for _, tc := range []struct {
		name, kind string
		damage     func(b []byte) []byte
	}{
		{"truncated", "truncated", func(b []byte) []byte { return b[:len(b)*2/3] }},
		{"bad footer", "modified", func(b []byte) []byte { copy(b[len(b)-4:], "XXXX"); return b }},
		{"modified", "modified", func(b []byte) []byte {
			for i := len(b) / 3; i < len(b)/3+64; i++ {
				b[i] ^= 0x5a
			}
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := smallArchive(t)
			clean := build(t, Options{Archives: []string{root}})
			f := januaryFlowsFiles(t, root)[1]
			path := filepath.Join(root, f.Path)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := Build(context.Background(), Options{Archives: []string{root}, Month: jan, Now: jan})
			if err != nil {
				t.Fatalf("report over a %s file: %v", tc.name, err)
			}
			if rep.TotalFlows != clean.TotalFlows-f.Rows {
				t.Errorf("total_flows %d, want %d - the damaged file's %d", rep.TotalFlows, clean.TotalFlows, f.Rows)
			}
			if len(rep.Excluded) != 1 || rep.Excluded[0].Path != f.Path || rep.Excluded[0].Kind != tc.kind || *rep.Excluded[0].Rows != f.Rows {
				t.Errorf("excluded %+v, want %s as %s with %d rows", rep.Excluded, f.Path, tc.kind, f.Rows)
			}
			if rep.Integrity.OK() || strings.Contains(sqlOf(rep, "verdicts"), f.Path) {
				t.Errorf("integrity %+v; verdicts SQL %s", rep.Integrity.Findings, sqlOf(rep, "verdicts"))
			}
		})
	}
}

// TestUnreadableFileIsLeftOutAndScannedAgain: a file that matched its
// entry but cannot be decoded is excluded, and the scan runs again
// without it, so that none of its rows count.
func TestUnreadableFileIsLeftOutAndScannedAgain(t *testing.T) {
	a, b := archive.FileInfo{Root: "r", Path: "flows/date=2026-01-02/node=n/part-1.parquet", Table: "flows", Date: "2026-01-02", Node: "n"},
		archive.FileInfo{Root: "r", Path: "flows/date=2026-01-02/node=n/part-2.parquet", Table: "flows", Date: "2026-01-02", Node: "n"}
	rows := int64(7)
	s := &selection{roots: []string{"r"}, from: jan, to: jan.AddDate(0, 1, 0), prevFrom: jan.AddDate(0, -1, 0),
		files: []archive.FileInfo{a, b}, month: map[fileKey]archive.Vouched{{"r", b.Path}: {FileInfo: b, Rows: rows}}}
	var runs [][]archive.FileInfo
	err := s.scan(context.Background(), func(files []archive.FileInfo) error {
		runs = append(runs, files)
		for _, f := range files {
			if f == b {
				return &archive.ScanError{File: b, Err: errors.New("page checksum mismatch")}
			}
		}
		return nil
	})
	if err != nil || len(runs) != 2 || len(runs[1]) != 1 || runs[1][0] != a {
		t.Fatalf("scan: %v after runs %v, want a second run over the first file alone", err, runs)
	}
	if len(s.excluded) != 1 || s.excluded[0].Kind != "unreadable" || *s.excluded[0].Rows != rows || !strings.Contains(s.excluded[0].Reason, "checksum") {
		t.Errorf("excluded %+v", s.excluded)
	}
	other := errors.New("disk on fire")
	if err := s.scan(context.Background(), func([]archive.FileInfo) error { return other }); err != other {
		t.Errorf("an error that names no file: %v", err)
	}
}

// copyTree copies the files under src into dst.
func copyTree(t *testing.T, src, dst string, keep func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if !keep(filepath.ToSlash(rel)) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOverlappingRootsAreRefused: a second root that holds a node's flows
// for the same time as the first (a backfill, a copy) is refused with the
// node, both roots and a flow they share; roots that split the nodes are
// read as one archive.
func TestOverlappingRootsAreRefused(t *testing.T) {
	a := smallArchive(t)
	clean := build(t, Options{Archives: []string{a}})
	backfill := t.TempDir()
	copyTree(t, a, backfill, func(rel string) bool { return strings.Contains(rel, "node=c%2Fnode-2") })
	if err := os.MkdirAll(filepath.Join(backfill, "flows"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), Options{Archives: []string{a, backfill}, Month: jan, Now: jan})
	var oe *OverlapError
	if !errors.As(err, &oe) || len(oe.Overlaps) != 1 || oe.Overlaps[0].Node != "c/node-2" || oe.Overlaps[0].UUID == "" {
		t.Fatalf("roots that both hold node-2: %v, want an OverlapError for c/node-2 naming a flow", err)
	}
	for _, want := range []string{a, backfill, `"c/node-2"`, oe.Overlaps[0].UUID, "twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	// Scoped to the other node, nothing is counted twice.
	if _, err := Build(context.Background(), Options{Archives: []string{a, backfill}, Nodes: []string{"c/node-1"}, Month: jan, Now: jan}); err != nil {
		t.Errorf("report on node-1 only: %v", err)
	}
	// One root per node, as the DaemonSet writes them: no overlap.
	n1, n2 := t.TempDir(), t.TempDir()
	copyTree(t, a, n1, func(rel string) bool { return strings.Contains(rel, "node=c%2Fnode-1") })
	copyTree(t, a, n2, func(rel string) bool { return strings.Contains(rel, "node=c%2Fnode-2") })
	split := build(t, Options{Archives: []string{n1, n2}})
	if split.TotalFlows != clean.TotalFlows || len(split.Excluded) != 0 {
		t.Errorf("per-node roots: %d flows, excluded %+v; one root: %d", split.TotalFlows, split.Excluded, clean.TotalFlows)
	}
}

// TestEmptyListsAreListsInJSON: a month without data has [] for its lists
// in JSON (nodes, findings, ...), never null.
func TestEmptyListsAreListsInJSON(t *testing.T) {
	root := smallArchive(t)
	rep := build(t, Options{Archives: []string{root}, Month: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)})
	var js bytes.Buffer
	if err := RenderJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(js.String(), "null") || !strings.Contains(js.String(), `"nodes": []`) || !strings.Contains(js.String(), `"findings": []`) {
		t.Errorf("JSON of an empty month:\n%s", js.String())
	}
}

// TestTopMustBePositive: a negative TopN is refused, not read as
// "unlimited".
func TestTopMustBePositive(t *testing.T) {
	root := smallArchive(t)
	if _, err := Build(context.Background(), Options{Archives: []string{root}, Month: jan, TopN: -5}); err == nil {
		t.Error("TopN -5 accepted")
	}
	if rep := build(t, Options{Archives: []string{root}, TopN: 1}); len(rep.TopTalkers) != 1 {
		t.Errorf("TopN 1: %d top talkers", len(rep.TopTalkers))
	}
}
