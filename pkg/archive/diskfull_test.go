package archive

import (
	"crypto/ed25519"
	"errors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fullDisk is a byte budget shared by every file the archive writes: the
// write that exceeds it is cut short and fails with ENOSPC, as on a full
// file system.
type fullDisk struct {
	mu     sync.Mutex
	left   int64
	used   int64
	writes []diskWrite // every write, in order
}

type diskWrite struct {
	name  string
	at, n int64 // bytes used before the write, bytes written
}

func (d *fullDisk) set(n int64) { d.mu.Lock(); d.left = n; d.mu.Unlock() }

func (d *fullDisk) take(name string, n int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := int(min(int64(n), d.left))
	d.writes = append(d.writes, diskWrite{name: filepath.Base(name), at: d.used, n: int64(k)})
	d.left -= int64(k)
	d.used += int64(k)
	return k
}

type budgetFile struct {
	*os.File
	d *fullDisk
}

func (f budgetFile) Write(p []byte) (int, error) {
	k := f.d.take(f.Name(), len(p))
	n, err := f.File.Write(p[:k])
	if err == nil && k < len(p) {
		err = &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return n, err
}

func withDisk(t *testing.T, d *fullDisk) {
	old := createFile
	createFile = func(path string, flag int, perm os.FileMode) (writableFile, error) {
		f, err := os.OpenFile(path, flag, perm)
		if err != nil {
			return nil, err
		}
		return budgetFile{f, d}, nil
	}
	t.Cleanup(func() { createFile = old })
}

// TestDiskFullLosesNothing fills the disk at many points of a run (inside a
// Parquet file, a commit record, a manifest line, the final Close): each
// time the error names ENOSPC, the writer is aborted and reopened once space
// is back, and the source resumes from the committed checkpoint. At the end
// every flow is archived exactly once, verify finds nothing, and no
// temporary file is left.
func TestDiskFullLosesNothing(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	pub := priv.Public().(ed25519.PublicKey)
	const total = 600
	cfg := func(root string) Config { return Config{Root: root, MaxFileRows: 200, SigningKey: priv} }
	d := &fullDisk{}
	withDisk(t, d)

	// run writes everything, with the disk full after budget bytes; it
	// returns how many times the disk filled up.
	run := func(root string, budget int64) (failures int) {
		d.set(budget)
		w, err := Open(cfg(root), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		pos := 0
		for {
			if pos < total {
				err = w.Write(batch(pos, min(pos+100, total)))
			} else {
				err = w.Close()
			}
			if err == nil {
				if pos >= total {
					return failures
				}
				pos += 100
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), root) {
				t.Fatalf("budget %d: error %q: want ENOSPC with the path", budget, err)
			}
			if pos < total { // Write's failures are counted by kind
				if n := testutil.ToFloat64(w.m.writeErrors.WithLabelValues("no_space")); n != 1 {
					t.Fatalf("budget %d: write_errors_total{kind=no_space} %v after a full disk (%v), want 1", budget, n, err)
				}
				if n := testutil.ToFloat64(w.m.writeErrors.WithLabelValues("io")); n != 0 {
					t.Fatalf("budget %d: a full disk counted as kind=io (%v)", budget, n)
				}
			}
			failures++
			if failures > 3 {
				t.Fatalf("budget %d: still failing after space came back: %v", budget, err)
			}
			if err := w.Abort(); err != nil {
				t.Fatalf("abort: %v", err)
			}
			d.set(math.MaxInt64) // space is back
			if w, err = Open(cfg(root), nil, nil); err != nil {
				t.Fatalf("budget %d: reopen: %v", budget, err)
			}
			pos = 0
			if cp := w.Checkpoints()["test"]; cp.Position != "" {
				pos, _ = strconv.Atoi(cp.Position)
			}
		}
	}
	check := func(root string, budget int64) {
		t.Helper()
		seen := scanUUIDs(t, root)
		if len(seen) != total {
			t.Fatalf("budget %d: %d distinct flows archived, want %d", budget, len(seen), total)
		}
		for u, n := range seen {
			if n != 1 {
				t.Fatalf("budget %d: flow %s archived %d times", budget, u, n)
			}
		}
		rep, err := Verify(root, time.Time{}, time.Time{}, pub)
		if err != nil || !rep.OK() {
			t.Fatalf("budget %d: verify: %v %+v", budget, err, rep)
		}
		_ = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err == nil && !de.IsDir() && (strings.HasPrefix(de.Name(), tmpPrefix) || strings.HasSuffix(de.Name(), ".tmp")) {
				t.Errorf("budget %d: temporary file left: %s", budget, p)
			}
			return nil
		})
	}

	root := t.TempDir()
	d.used = 0
	if f := run(root, math.MaxInt64); f != 0 {
		t.Fatalf("%d failures with space to spare", f)
	}
	check(root, math.MaxInt64)
	need := d.used
	points, each := 10, 2
	if testing.Short() || raceEnabled {
		points, each = 3, 1
	}
	var budgets []int64
	for i := 0; i < points; i++ {
		budgets = append(budgets, need*int64(i)/int64(points))
	}
	// And the middle of the first writes of each kind of file: a Parquet
	// file, a commit record, a manifest line.
	kinds := map[string]int{}
	for _, w := range d.writes {
		kind := filepath.Ext(w.name)
		if strings.HasPrefix(w.name, "commit-") {
			kind = "commit"
		}
		if w.n > 1 && kinds[kind] < each {
			kinds[kind]++
			budgets = append(budgets, w.at+w.n/2)
		}
	}
	if kinds[".parquet"] == 0 || kinds["commit"] == 0 || kinds[".jsonl"] == 0 {
		t.Fatalf("writes seen by kind: %v", kinds)
	}
	filled := 0
	for _, budget := range budgets {
		root := t.TempDir()
		filled += run(root, budget)
		check(root, budget)
	}
	if filled < len(budgets)-1 {
		t.Fatalf("the disk filled up only %d times in %d runs", filled, len(budgets))
	}
}
