package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
)

var copyKV = fileMetadata(partKey{table: "flows", date: "2026-01-01", node: "n"}, "v", "h")

// writeFlows writes rows with a flowWriter in batches of copyBatch.
func writeFlows(t *testing.T, fw *flowWriter, rows []FlowRow) {
	t.Helper()
	for i := 0; i < len(rows); i += copyBatch {
		if err := fw.Write(rows[i:min(i+copyBatch, len(rows))]); err != nil {
			t.Fatal(err)
		}
	}
}

func flowFile(t *testing.T, path string, rows []FlowRow, rgRows int) {
	t.Helper()
	var b bytes.Buffer
	fw, err := newFlowWriter(&b, rgRows, pagesBetter, copyKV)
	if err != nil {
		t.Fatal(err)
	}
	writeFlows(t, fw, rows)
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCopyColumnsMatchesRows copies files (every field: NULLs, empty and
// long lists, strings past the statistics bound, integer extremes; files of
// one row to several row groups) into one output and checks that the
// output is byte for byte the file that writing their rows makes: the same
// levels, values, dictionaries, pages, row groups and statistics.
func TestCopyColumnsMatchesRows(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{1, 3_000, 6_500, 37}
	var files []string
	var all [][]FlowRow
	for i, n := range sizes {
		rows := randomRows(uint64(100+i), n, i%2 == 1)
		p := filepath.Join(dir, fmt.Sprintf("in-%d.parquet", i))
		flowFile(t, p, rows, 2_500) // inputs of several row groups
		files, all = append(files, p), append(all, rows)
	}
	for _, rgRows := range []int{1_000, 5_000, 1 << 17} {
		t.Run(fmt.Sprint(rgRows), func(t *testing.T) {
			var want, got bytes.Buffer
			fw, err := newFlowWriter(&want, rgRows, pagesBetter, copyKV)
			if err != nil {
				t.Fatal(err)
			}
			for _, rows := range all {
				writeFlows(t, fw, rows)
			}
			if err := fw.Close(); err != nil {
				t.Fatal(err)
			}
			cw, err := newFlowWriter(&got, rgRows, pagesBetter, copyKV)
			if err != nil {
				t.Fatal(err)
			}
			cp := new(copier)
			for i, p := range files {
				n, err := cw.copyFlowFile(context.Background(), p, cp)
				if err != nil || n != int64(sizes[i]) {
					t.Fatalf("copy %s: %d rows, %v", p, n, err)
				}
			}
			if err := cw.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				g, _ := readRows(t, got.Bytes())
				w, _ := readRows(t, want.Bytes())
				for i := range min(len(g), len(w)) {
					if !g[i].Equal(w[i]) {
						t.Fatalf("row %d differs:\ncopied  %v\nwritten %v", i, g[i], w[i])
					}
				}
				t.Fatalf("copied file (%d bytes, %d rows) differs from the written one (%d bytes, %d rows)", got.Len(), len(g), want.Len(), len(w))
			}
		})
	}
}

// TestCopyRefusesAnotherSchema: a file of another schema is not copied
// (compaction reads it through rows) and the output is untouched.
func TestCopyRefusesAnotherSchema(t *testing.T) {
	type oldRow struct {
		Time    int64   `parquet:"time,timestamp(microsecond)"`
		Verdict *string `parquet:"verdict,optional"`
	}
	p := filepath.Join(t.TempDir(), "old.parquet")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	pw := parquet.NewGenericWriter[oldRow](f)
	v := "DROPPED"
	if _, err := pw.Write([]oldRow{{Time: 1, Verdict: &v}}); err != nil {
		t.Fatal(err)
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	fw, err := newFlowWriter(&out, 100, pagesBetter, copyKV)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := fw.copyFlowFile(context.Background(), p, new(copier)); !errors.Is(err, errNotCopyable) || n != 0 {
		t.Fatalf("copy of another schema: %d rows, %v", n, err)
	}
	if fw.err != nil || fw.total != 0 {
		t.Fatalf("writer after a refused copy: %d rows, %v", fw.total, fw.err)
	}
	rows := randomRows(7, 10, false)
	writeFlows(t, fw, rows)
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := readRows(t, out.Bytes()); len(got) != len(rows) {
		t.Fatalf("%d rows read back, %d written", len(got), len(rows))
	}
}

// TestCompactByColumnsAndByRows compacts the same closed day both ways:
// the outputs hold the same rows in the same order.
func TestCompactByColumnsAndByRows(t *testing.T) {
	scan := func(byRows bool) []parquet.Row {
		w := closedDayOfGeneratedFlows(t, 12_000, 3_000)
		defer w.Close()
		compactByRows = byRows
		defer func() { compactByRows = false }()
		res, err := w.Compact(compactNow)
		if err != nil || res.Inputs != 4 || res.Outputs != 1 || res.Rows != 12_000 {
			t.Fatalf("compaction %+v: %v", res, err)
		}
		verifyClean(t, w.cfg.Root)
		var out []parquet.Row
		matches, _ := filepath.Glob(filepath.Join(w.cfg.Root, "flows", "*", "*", "part-*.parquet"))
		if len(matches) != 1 {
			t.Fatalf("files after compaction: %v", matches)
		}
		b, err := os.ReadFile(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		out, _ = readRows(t, b)
		return out
	}
	cols, rows := scan(false), scan(true)
	if len(cols) != 12_000 || len(rows) != len(cols) {
		t.Fatalf("rows: %d copied, %d through rows", len(cols), len(rows))
	}
	for i := range cols {
		if !cols[i].Equal(rows[i]) {
			t.Fatalf("row %d differs:\ncopied       %v\nthrough rows %v", i, cols[i], rows[i])
		}
	}
}
