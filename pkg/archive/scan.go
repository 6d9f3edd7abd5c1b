package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// FileInfo is one committed data file.
type FileInfo struct {
	Root  string // the archive root the file is in
	Path  string // relative to Root
	Table string
	Date  string
	Node  string
}

// fileInfoOf is the FileInfo of the file at rel (slash-separated, relative
// to root), its table, date and node read from the path as the scanner
// reads them from the directories.
func fileInfoOf(root, rel string) FileInfo {
	fi := FileInfo{Root: root, Path: rel}
	for i, part := range strings.Split(rel, "/") {
		if i == 0 {
			fi.Table = part
		}
		if d, ok := strings.CutPrefix(part, "date="); ok && fi.Date == "" {
			fi.Date = d
		}
		if n, ok := strings.CutPrefix(part, "node="); ok && fi.Node == "" {
			fi.Node = UnsanitizeNode(n)
		}
	}
	return fi
}

// InRange reports whether f's date partition can hold times in [from, to)
// (a zero bound is unbounded); a file outside any valid date partition
// cannot.
func (f FileInfo) InRange(from, to time.Time) bool { return partitionInRange(f.Date, from, to) }

func partitionInRange(date string, from, to time.Time) bool {
	d, err := time.Parse("2006-01-02", date)
	if err != nil {
		return false
	}
	return (from.IsZero() || d.Add(24*time.Hour).After(from)) && (to.IsZero() || d.Before(to))
}

// ScanError is a file that a scan could not read: the error names it, and
// File says which, so that a reader can leave the file out and scan again.
type ScanError struct {
	File FileInfo
	Err  error
}

func (e *ScanError) Error() string {
	return fmt.Sprintf("archive: scan %s: %v", filepath.Join(e.File.Root, e.File.Path), e.Err)
}

func (e *ScanError) Unwrap() error { return e.Err }

// ScanOptions select what to scan: flows with time in [From, To) (zero means
// unbounded), on the given nodes (nil: all).
type ScanOptions struct {
	From, To time.Time
	Nodes    []string
	// Parallel is how many files ScanFlowRowGroups reads at a time (0 or 1:
	// one, in path order). The row-at-a-time scans read one.
	Parallel int
	// Files, when not nil, are the only files a scan reads (those of its
	// table, date range and nodes), in their order, instead of every
	// committed file of the partitions: e.g. the files Verify found intact
	// (VerifyReport.Intact), so that a reader counts only the rows the
	// manifests vouch for.
	Files []FileInfo
}

// Scanner reads one archive, or several archive roots as one (the DaemonSet
// writes one root per node). It never sees uncommitted files.
type Scanner struct {
	roots []string
}

// OpenScanner opens the archives at roots for reading, as one archive.
func OpenScanner(roots ...string) (*Scanner, error) {
	if len(roots) == 0 {
		return nil, errors.New("archive: no archive root given")
	}
	for _, root := range roots {
		if err := checkArchive(root); err != nil {
			return nil, err
		}
	}
	return &Scanner{roots: slices.Clone(roots)}, nil
}

// NodeInfo is a node the archive knows: one with a manifest chain.
type NodeInfo struct {
	Name string
	// First is the start of the earliest UTC day of its manifest files: the
	// archive holds nothing of the node before it.
	First time.Time
}

// Nodes lists every node that has a manifest chain in any root, by name:
// manifests are never deleted (retention records its deletions in them), so
// a node that stopped sending is still listed.
func (s *Scanner) Nodes() ([]NodeInfo, error) {
	first := map[string]time.Time{}
	for _, root := range s.roots {
		fsys, err := rootFS(root)
		if err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		ents, err := fs.ReadDir(fsys, "manifests")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		for _, e := range ents {
			part, ok := strings.CutPrefix(e.Name(), "node=")
			if !ok || !e.IsDir() {
				continue
			}
			days, err := fs.ReadDir(fsys, "manifests/"+e.Name())
			if err != nil {
				return nil, fmt.Errorf("archive: %w", err)
			}
			for _, d := range days {
				date, ok := strings.CutPrefix(strings.TrimSuffix(d.Name(), ".jsonl"), "date=")
				if !ok || !strings.HasSuffix(d.Name(), ".jsonl") {
					continue
				}
				day, err := time.Parse("2006-01-02", date)
				if err != nil {
					continue
				}
				node := UnsanitizeNode(part)
				if f, seen := first[node]; !seen || day.Before(f) {
					first[node] = day
				}
			}
		}
	}
	out := make([]NodeInfo, 0, len(first))
	for n, f := range first {
		out = append(out, NodeInfo{Name: n, First: f})
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Files lists the committed files of a table whose date partition can hold
// times in [from, to), pruning by the partition directories, across every
// root.
func (s *Scanner) Files(table string, from, to time.Time) ([]FileInfo, error) {
	var out []FileInfo
	for _, root := range s.roots {
		files, err := rootFiles(root, table, from, to)
		if err != nil {
			return nil, err
		}
		out = append(out, files...)
	}
	return out, nil
}

func rootFiles(root, table string, from, to time.Time) ([]FileInfo, error) {
	fsys, err := rootFS(root)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	dates, err := dateDirsFS(fsys, table)
	if errors.Is(err, fs.ErrNotExist) && table != "flows" {
		return nil, nil // an archive written before the table existed
	}
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	var out []FileInfo
	for _, d := range dates {
		if !partitionInRange(d.date, from, to) {
			continue
		}
		names, nodes, err := nodeDirsFS(fsys, table+"/"+d.name)
		if err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		for i, node := range nodes {
			files, err := fs.ReadDir(fsys, table+"/"+d.name+"/"+names[i])
			if err != nil {
				return nil, fmt.Errorf("archive: %w", err)
			}
			// Inputs of a compaction that a crash kept from deleting them
			// are in its output already.
			replaced, err := replacedFilesFS(fsys, manifestRel(UnsanitizeNode(node), d.date))
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				rel := table + "/" + d.name + "/" + names[i] + "/" + f.Name()
				if strings.HasPrefix(f.Name(), "part-") && strings.HasSuffix(f.Name(), ".parquet") && !replaced[rel] {
					out = append(out, FileInfo{Root: root, Path: rel, Table: table, Date: d.date, Node: UnsanitizeNode(node)})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func (o ScanOptions) wantNode(n string) bool { return len(o.Nodes) == 0 || slices.Contains(o.Nodes, n) }

// ScanFlows calls fn with batches of flow rows (reused between calls: copy
// what you keep) in [o.From, o.To). Memory stays bounded by the batch size.
func (s *Scanner) ScanFlows(ctx context.Context, o ScanOptions, fn func([]FlowRow) error) error {
	return ScanFlowsAs(ctx, s, o, func(r *FlowRow) int64 { return r.Time }, fn)
}

// ScanFlowsAs is ScanFlows into a projection of FlowRow: T has a subset of
// FlowRow's fields with the same parquet tags, and only those columns are
// read and decoded (the report reads about a third of them). timeOf returns
// a row's time column.
func ScanFlowsAs[T any](ctx context.Context, s *Scanner, o ScanOptions, timeOf func(*T) int64, fn func([]T) error) error {
	files, err := s.selected("flows", o)
	if err != nil {
		return err
	}
	win := windowOf(o.From, o.To)
	buf := make([]T, 4096)
	var sel []T
	for _, fi := range files {
		err := scanFileAt(fi.Root, fi.Path, buf, "time", win, func(rows []T) error {
			sel = sel[:0]
			for i := range rows {
				if win.has(timeOf(&rows[i])) {
					sel = append(sel, rows[i])
				}
			}
			if len(sel) == 0 {
				return ctx.Err()
			}
			if err := fn(sel); err != nil {
				return err
			}
			return ctx.Err()
		})
		if err != nil {
			return &ScanError{File: fi, Err: err}
		}
	}
	return nil
}

// selected lists the table's files that may hold rows of o: its partitions
// of the dates in [o.From, o.To), on o's nodes.
func (s *Scanner) selected(table string, o ScanOptions) ([]FileInfo, error) {
	var files []FileInfo
	if o.Files != nil {
		for _, fi := range o.Files {
			if fi.Table == table && fi.InRange(o.From, o.To) {
				files = append(files, fi)
			}
		}
	} else {
		var err error
		if files, err = s.Files(table, o.From, o.To); err != nil {
			return nil, err
		}
	}
	out := files[:0]
	for _, fi := range files {
		if o.wantNode(fi.Node) {
			out = append(out, fi)
		}
	}
	return out, nil
}

// forEachFile calls do for each file, on up to parallel goroutines, each
// with its own state from newState; the first error stops the others.
func forEachFile[S any](ctx context.Context, files []FileInfo, parallel int, newState func() S, do func(S, FileInfo) error) error {
	workers := min(max(parallel, 1), len(files))
	if workers <= 1 {
		st := newState()
		for _, fi := range files {
			if err := do(st, fi); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan FileInfo)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := newState()
			for fi := range next {
				if err := do(st, fi); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for _, fi := range files {
		select {
		case next <- fi:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// RowGroupFunc receives one row group of a scan, and the state that the
// goroutine calling it was given.
type RowGroupFunc[S any] func(st S, rg RowGroup) error

// ScanFlowRowGroups calls fn with the row groups of the flows table that may
// hold rows in [o.From, o.To) (partitions and row-group statistics prune the
// rest; fn still checks each row's time), on up to o.Parallel goroutines at
// once, each with its own state from newState. For readers that decode
// columns themselves; ScanFlowsAs is the row-at-a-time form.
func ScanFlowRowGroups[S any](ctx context.Context, s *Scanner, o ScanOptions, newState func() S, fn RowGroupFunc[S]) error {
	files, err := s.selected("flows", o)
	if err != nil {
		return err
	}
	win := windowOf(o.From, o.To)
	return forEachFile(ctx, files, o.Parallel, newState, func(st S, fi FileInfo) error {
		f, groups, err := openRowGroups(fi.Root, fi.Path, "time", win)
		if err != nil {
			return &ScanError{File: fi, Err: err}
		}
		defer f.Close()
		for _, rg := range groups {
			if err := fn(st, RowGroup{rg}); err != nil {
				return &ScanError{File: fi, Err: err}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return nil
	})
}

// ScanStats calls fn with the stats rows whose minute is in [o.From, o.To).
func (s *Scanner) ScanStats(ctx context.Context, o ScanOptions, fn func([]StatRow) error) error {
	files, err := s.selected("stats", o)
	if err != nil {
		return err
	}
	win := windowOf(o.From, o.To)
	buf := make([]StatRow, 4096)
	var sel []StatRow
	for _, fi := range files {
		if err := scanFileAt(fi.Root, fi.Path, buf, "minute", win, func(rows []StatRow) error {
			sel = sel[:0]
			for _, r := range rows {
				if win.has(r.Minute) {
					sel = append(sel, r)
				}
			}
			if len(sel) > 0 {
				if err := fn(sel); err != nil {
					return err
				}
			}
			return ctx.Err()
		}); err != nil {
			return &ScanError{File: fi, Err: err}
		}
	}
	return nil
}

// ScanLosses calls fn with the rows of the losses table whose gap can hold
// flows in [o.From, o.To) (LossRow.Range, an unknown start taken as the
// detection): a gap that began before o.From and ended in it is there.
func (s *Scanner) ScanLosses(ctx context.Context, o ScanOptions, fn func([]LossRow) error) error {
	// A gap is filed under the date of its start: any earlier date can hold
	// one that reaches into the window.
	files, err := s.selected("losses", ScanOptions{To: o.To, Nodes: o.Nodes, Files: o.Files})
	if err != nil {
		return err
	}
	win := windowOf(o.From, o.To)
	all := windowOf(time.Time{}, time.Time{})
	buf := make([]LossRow, 1024)
	var sel []LossRow
	for _, fi := range files {
		if err := scanFileAt(fi.Root, fi.Path, buf, "detected", all, func(rows []LossRow) error {
			sel = sel[:0]
			for i := range rows {
				lo, hi := rows[i].Range(rows[i].Detected)
				if hi >= win.from && lo < win.to {
					sel = append(sel, rows[i])
				}
			}
			if len(sel) > 0 {
				if err := fn(sel); err != nil {
					return err
				}
			}
			return ctx.Err()
		}); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &ScanError{File: fi, Err: err}
		}
	}
	return nil
}
