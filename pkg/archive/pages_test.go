package archive

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// pagesPerColumn writes n flows of one node and day (labels on every flow
// when withLabels) and returns the first row group's page count per column.
func pagesPerColumn(t *testing.T, n int, withLabels bool) map[string]int {
	t.Helper()
	root := t.TempDir()
	w, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 4096 {
		b := &flow.Batch{}
		for j := i; j < min(n, i+4096); j++ {
			f := b.Next()
			f.Reset()
			f.Uuid = strconv.Itoa(j)
			f.Time = timestamppb.New(t0.Add(-time.Hour).Add(time.Duration(j) * time.Millisecond))
			f.NodeName = "n1"
			f.Verdict = flowpb.Verdict_FORWARDED
			if withLabels {
				f.Source = &flowpb.Endpoint{Labels: []string{"k8s:app=a" + strconv.Itoa(j%7), "k8s:io.kubernetes.pod.namespace=ns"}}
			}
		}
		b.Checkpoint = flow.Checkpoint{Source: "t", Position: strconv.Itoa(i)}
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "flows", "*", "*", "*.parquet"))
	if len(files) != 1 {
		t.Fatalf("%d flows files, want 1", len(files))
	}
	fh, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	pf, err := parquet.OpenFile(fh, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	if pf.NumRows() != int64(n) {
		t.Fatalf("%d rows in the file, want %d", pf.NumRows(), n)
	}
	pages := map[string]int{}
	cols := pf.Schema().Columns()
	for i, cc := range pf.RowGroups()[0].ColumnChunks() {
		oi, err := cc.OffsetIndex()
		if err != nil {
			t.Fatal(err)
		}
		pages[cols[i][0]] = oi.NumPages()
	}
	return pages
}

// TestPagesAreCutEveryPageRows: a column that is NULL in every row (what a
// field mask leaves of most of the schema) is cut into a page every
// pageRows rows instead of being held uncompressed for the whole row group;
// label lists in use keep pages cut by size, which compress better.
func TestPagesAreCutEveryPageRows(t *testing.T) {
	n := 3*pageRows + 100
	want := (n + pageRows - 1) / pageRows
	masked := pagesPerColumn(t, n, false)
	for _, col := range []string{"uuid", "time", "l7_http_url", "source_pod_name", "source_labels", "destination_labels"} {
		if masked[col] < want {
			t.Errorf("%s: %d pages in %d rows, want >= %d (one per %d rows)", col, masked[col], n, want, pageRows)
		}
	}
	labelled := pagesPerColumn(t, n, true)
	if labelled["source_labels"] != 1 {
		t.Errorf("source_labels in use: %d pages, want 1 (cut by size: a few hundred KiB here)", labelled["source_labels"])
	}
	if labelled["uuid"] < want {
		t.Errorf("uuid: %d pages, want >= %d", labelled["uuid"], want)
	}
}
