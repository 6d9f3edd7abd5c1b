package archive

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// writeSeconds archives n flows of one node, flow i at t0+i seconds, in row
// groups of rowGroup rows.
func writeSeconds(t *testing.T, root string, t0 time.Time, n, rowGroup int) {
	t.Helper()
	w, err := Open(Config{Root: root, RowGroupRows: rowGroup}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &flow.Batch{}
	for i := 0; i < n; i++ {
		f := b.Next()
		f.Reset()
		f.Uuid = strconv.Itoa(i)
		f.Time = timestamppb.New(t0.Add(time.Duration(i) * time.Second))
		f.NodeName = "n1"
		f.Verdict = flowpb.Verdict_FORWARDED
		b.AddStat(f.NodeName, f.Time.GetSeconds()/60*60, flow.Counts{Seen: 1, Kept: 1})
	}
	b.Checkpoint = flow.Checkpoint{Source: "t", Position: "1"}
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestScanPrunesRowGroupsByTime: a scan for a time range reads only the row
// groups whose time statistics overlap it, and returns exactly the rows in
// the range.
func TestScanPrunesRowGroupsByTime(t *testing.T) {
	root := t.TempDir()
	t0 := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	writeSeconds(t, root, t0, 10000, 1000)
	sc, err := OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	scan := func(from, to time.Time) (map[string]bool, int64) {
		before := rowGroupsSkipped.Load()
		got := map[string]bool{}
		err := sc.ScanFlows(context.Background(), ScanOptions{From: from, To: to}, func(rows []FlowRow) error {
			for _, r := range rows {
				got[*r.UUID] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got, rowGroupsSkipped.Load() - before
	}
	all, skipped := scan(time.Time{}, time.Time{})
	if len(all) != 10000 || skipped != 0 {
		t.Fatalf("unbounded scan: %d rows, %d row groups skipped; want 10000, 0", len(all), skipped)
	}
	// [2500 s, 4500 s): rows 2500..4499, in row groups 2, 3 and 4 of 10.
	got, skipped := scan(t0.Add(2500*time.Second), t0.Add(4500*time.Second))
	if len(got) != 2000 || !got["2500"] || !got["4499"] || got["2499"] || got["4500"] {
		t.Fatalf("range scan: %d rows (want 2000: 2500..4499)", len(got))
	}
	if skipped != 7 {
		t.Fatalf("range scan skipped %d row groups, want 7 of 10", skipped)
	}
	// The stats table is pruned by its minute the same way.
	minutes := 0
	err = sc.ScanStats(context.Background(), ScanOptions{From: t0.Add(time.Hour), To: t0.Add(2 * time.Hour)}, func(rows []StatRow) error {
		minutes += len(rows)
		return nil
	})
	if err != nil || minutes != 60 {
		t.Fatalf("stats for one hour: %d rows, %v; want 60", minutes, err)
	}
}

// TestScanOfACorruptFileIsAnError: a damaged file is an error that names
// it, not a panic (parquet-go's file reader constructor panics).
func TestScanOfACorruptFileIsAnError(t *testing.T) {
	root := t.TempDir()
	writeSeconds(t, root, time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC), 3000, 1000)
	files, _ := filepath.Glob(filepath.Join(root, "flows", "*", "*", "*.parquet"))
	if len(files) != 1 {
		t.Fatalf("%d files", len(files))
	}
	st, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(files[0], st.Size()/2); err != nil {
		t.Fatal(err)
	}
	sc, err := OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	err = sc.ScanFlows(context.Background(), ScanOptions{}, func([]FlowRow) error { return nil })
	if err == nil || !strings.Contains(err.Error(), filepath.Base(files[0])) {
		t.Fatalf("scan of a truncated file: %v, want an error naming %s", err, filepath.Base(files[0]))
	}
}

// TestParallelScan: ScanFlowRowGroups on several goroutines hands every row
// group to exactly one of them, each with its own state, and still reports
// a damaged file.
func TestParallelScan(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, MaxFileRows: 300}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000; i += 100 {
		if err := w.Write(batch(i, i+100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sc, err := OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := sc.Files("flows", time.Time{}, time.Time{})
	if len(files) < 8 {
		t.Fatalf("%d files, want several", len(files))
	}
	type state struct {
		seen map[string]int
		buf  []FlowRow
	}
	var (
		mu     sync.Mutex
		states []*state
	)
	newState := func() *state {
		st := &state{seen: map[string]int{}, buf: make([]FlowRow, 64)}
		mu.Lock()
		states = append(states, st)
		mu.Unlock()
		return st
	}
	err = ScanFlowRowGroups(context.Background(), sc, ScanOptions{Parallel: 4}, newState, func(st *state, g RowGroup) error {
		rg := g.rg
		r := parquet.NewGenericRowGroupReader[FlowRow](rg)
		defer r.Close()
		for left := rg.NumRows(); left > 0; {
			n, err := r.Read(st.buf[:min(int64(len(st.buf)), left)])
			for _, row := range st.buf[:n] {
				st.seen[*row.UUID]++ // the state is this goroutine's alone
			}
			left -= int64(n)
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(states) < 2 {
		t.Fatalf("%d goroutines read the files, want several", len(states))
	}
	seen := map[string]int{}
	for _, st := range states {
		for u, n := range st.seen {
			seen[u] += n
		}
	}
	if len(seen) != 3000 {
		t.Fatalf("%d rows, want 3000", len(seen))
	}
	for u, n := range seen {
		if n != 1 {
			t.Fatalf("row %s read %d times", u, n)
		}
	}
	bad := filepath.Join(files[len(files)/2].Root, files[len(files)/2].Path)
	if err := os.Truncate(bad, 100); err != nil {
		t.Fatal(err)
	}
	err = ScanFlowRowGroups(context.Background(), sc, ScanOptions{Parallel: 4}, newState, func(*state, RowGroup) error { return nil })
	if err == nil || !strings.Contains(err.Error(), filepath.Base(bad)) {
		t.Fatalf("parallel scan over a damaged file: %v", err)
	}
}
