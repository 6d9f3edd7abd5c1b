package archive

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowaudit/flowaudit/pkg/objstore"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
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

// Vouched is a committed data file that its manifest entry vouches for,
// with what the entry records of it.
type Vouched struct {
	FileInfo
	Bytes, Rows      int64
	MinTime, MaxTime time.Time
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

// checkArchive says why root is not an archive that can be read: it has no
// flows/ directory, or it cannot be read (a bucket refusing the
// credentials, an unreachable endpoint).
func checkArchive(root string) error {
	fsys, err := rootFS(root)
	if err != nil {
		return fmt.Errorf("archive: %s: %w", root, err)
	}
	st, err := fs.Stat(fsys, "flows")
	switch {
	case errors.Is(err, fs.ErrNotExist) || (err == nil && !st.IsDir()):
		return fmt.Errorf("archive: %s is not an archive (no flows/ directory)", root)
	case err != nil:
		return fmt.Errorf("archive: %s: %w", root, err)
	}
	return nil
}

// IsArchive reports whether dir is an archive root (it has a flows/
// directory; the writer creates it when it opens the archive).
func IsArchive(dir string) bool {
	fsys, err := rootFS(dir)
	if err != nil {
		return false
	}
	st, err := fs.Stat(fsys, "flows")
	return err == nil && st.IsDir()
}

// ExpandRoots turns the --archive arguments into archive roots: an
// existing directory as it is (even when its name holds glob characters,
// as mount paths with [ and ] do), a glob pattern (e.g. /archive/* for the
// per-node roots of a shared volume) into every archive root it matches,
// sorted, and anything else as it is (OpenScanner and Verify then say what
// is wrong). A pattern that matches no archive is an error, so that a typo
// cannot yield an empty report. A directory given twice, by the same or
// another path, is one root.
func ExpandRoots(args []string) ([]string, error) {
	var roots []string
	seen := map[string]bool{}
	var dirs []os.FileInfo
	add := func(r string) {
		if seen[r] {
			return
		}
		seen[r] = true
		if st, err := os.Stat(r); err == nil {
			for _, d := range dirs {
				if os.SameFile(d, st) {
					return
				}
			}
			dirs = append(dirs, st)
		}
		roots = append(roots, r)
	}
	for _, a := range args {
		if objstore.IsURL(a) {
			add(a) // a bucket location: no glob
			continue
		}
		if st, err := os.Stat(a); (err == nil && st.IsDir()) || !strings.ContainsAny(a, "*?[") {
			add(a)
			continue
		}
		matches, err := filepath.Glob(a)
		if err != nil {
			return nil, fmt.Errorf("archive: pattern %q: %w", a, err)
		}
		n := 0
		for _, m := range matches {
			if IsArchive(m) {
				add(m)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("archive: pattern %q matches no archive root (a directory with flows/)", a)
		}
	}
	if len(roots) == 0 {
		return nil, errors.New("archive: no archive root given")
	}
	return roots, nil
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
type RowGroupFunc[S any] func(st S, rg parquet.RowGroup) error

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
			if err := fn(st, rg); err != nil {
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

// window is the half-open time range [from, to) of a scan, in microseconds
// since the epoch (the unit of the time and minute columns).
type window struct{ from, to int64 }

func windowOf(from, to time.Time) window {
	w := window{from: math.MinInt64, to: math.MaxInt64}
	if !from.IsZero() {
		w.from = from.UnixMicro()
	}
	if !to.IsZero() {
		w.to = to.UnixMicro()
	}
	return w
}

func (w window) has(t int64) bool { return t >= w.from && t < w.to }

// Micros returns [o.From, o.To) in microseconds since the epoch, the unit of
// the time and minute columns, for readers that check rows themselves
// (ScanFlowRowGroups); a zero bound is math.MinInt64 or math.MaxInt64.
func (o ScanOptions) Micros() (from, to int64) {
	w := windowOf(o.From, o.To)
	return w.from, w.to
}

// overlaps reports whether a row group whose time column has the footer
// statistics st can hold a row in w. Without usable statistics it can.
func (w window) overlaps(st format.Statistics) bool {
	if len(st.MinValue) != 8 || len(st.MaxValue) != 8 {
		return true
	}
	lo, hi := int64(binary.LittleEndian.Uint64(st.MinValue)), int64(binary.LittleEndian.Uint64(st.MaxValue))
	return hi >= w.from && lo < w.to
}

// rowGroupsSkipped counts the row groups scans skipped by their statistics
// (tests read it).
var rowGroupsSkipped atomic.Int64

// openParquet opens the local Parquet file at path for reading its row
// groups (without the page index and bloom filters); the caller closes f.
func openParquet(path string) (f *os.File, pf *parquet.File, err error) {
	f, err = os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err == nil {
		pf, err = parquet.OpenFile(f, info.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, pf, nil
}

// openRowGroups opens the Parquet file rel of root (a directory or an
// s3:// location) and returns its row groups whose timeCol statistics
// overlap w. The caller closes c.
func openRowGroups(root, rel, timeCol string, w window) (io.Closer, []parquet.RowGroup, error) {
	c, pf, err := openParquetAt(root, rel)
	if err != nil {
		return nil, nil, err
	}
	return c, keepGroups(pf, timeCol, w), nil
}

// keepGroups returns pf's row groups whose timeCol statistics overlap w.
func keepGroups(pf *parquet.File, timeCol string, w window) []parquet.RowGroup {
	groups := pf.RowGroups()
	keep := make([]parquet.RowGroup, 0, len(groups))
	col, hasTime := pf.Schema().Lookup(timeCol)
	for i, rg := range groups {
		if hasTime && !w.overlaps(pf.Metadata().RowGroups[i].Columns[col.ColumnIndex].MetaData.Statistics) {
			rowGroupsSkipped.Add(1)
			continue
		}
		keep = append(keep, rg)
	}
	return keep
}

// scanFile reads the rows of the local Parquet file at path into buf and
// hands them to fn, batch by batch, skipping the row groups whose timeCol
// statistics fall outside w (the writer's compaction reads its inputs so).
func scanFile[T any](path string, buf []T, timeCol string, w window, fn func([]T) error) error {
	f, pf, err := openParquet(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return readGroups(keepGroups(pf, timeCol, w), buf, fn)
}

// scanFileAt is scanFile for the file rel of an archive root, which may be
// an s3:// location.
func scanFileAt[T any](root, rel string, buf []T, timeCol string, w window, fn func([]T) error) error {
	c, keep, err := openRowGroups(root, rel, timeCol, w)
	if err != nil {
		return err
	}
	defer c.Close()
	return readGroups(keep, buf, fn)
}

// readGroups reads the rows of keep into buf and hands them to fn.
func readGroups[T any](keep []parquet.RowGroup, buf []T, fn func([]T) error) error {
	if len(keep) == 0 {
		return nil
	}
	rg := keep[0]
	if len(keep) > 1 {
		rg = parquet.MultiRowGroup(keep...)
	}
	r := parquet.NewGenericRowGroupReader[T](rg)
	defer r.Close()
	// Never ask for more rows than are left: parquet-go v0.32 then decodes a
	// page header per missing row and column (400k allocations to read a
	// 500-row file into a 4096-row buffer).
	for left := rg.NumRows(); left > 0; {
		want := buf[:min(int64(len(buf)), left)]
		clear(want)
		n, err := r.Read(want)
		left -= int64(n)
		if n > 0 {
			if ferr := fn(want[:n]); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%d rows announced by the footer were not read", left)
		}
	}
	return nil
}

// Finding is one problem verify found.
type Finding struct {
	Kind string `json:"kind"` // missing, unreadable, modified, truncated, extra, chain, signature, rows
	Path string `json:"path"`
	Node string `json:"node,omitempty"`
	What string `json:"what"`
	// Rows is, for a data file, the rows its manifest entry records (an
	// extra file: the rows its Parquet footer announces), when known.
	Rows *int64 `json:"rows,omitempty"`
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Files   int   `json:"files_checked"`
	Rows    int64 `json:"rows_checked"`
	Entries int   `json:"manifest_entries"`
	// Retired counts committed files of partitions that retention deleted
	// (a "retention" entry in the chain names each partition).
	Retired int `json:"files_retired"`
	// Retention lists the partitions retention deleted (every "retention"
	// entry of the chains read), whatever the range: what a reader needs to
	// tell a retention policy kept from one that deleted too early.
	Retention []RetiredPartition `json:"-"`
	// Compacted counts committed files that a compaction merged into a
	// larger file (a "compaction" entry names each with its hash and rows).
	Compacted  int               `json:"files_compacted"`
	ChainHeads map[string]string `json:"chain_heads"` // node -> hash of its last entry
	KeyIDs     []string          `json:"key_ids,omitempty"`
	Findings   []Finding         `json:"findings"`
	// Pending is the row log of a local root (docs/format.md, "The row
	// log"): rows durable but not yet in a closed file, which is no
	// finding, and a torn tail, which the writer cuts when it opens.
	Pending []LogStatus `json:"pending,omitempty"`

	// Intact are the committed files of the range that match their
	// manifest entries (size, SHA-256, Parquet footer and row count; the
	// size only with SizesOnly), whose entries are intact (hash, and
	// signature when checked): the files a reader may count, in root and
	// path order.
	Intact []Vouched `json:"-"`
	// Unvouched are the data files of the range a reader must not count,
	// each with the finding that says why: committed files missing,
	// damaged or named by an altered entry, and files no manifest knows
	// (kind extra). Files that a compaction merged into another (their
	// rows are in it) are there too, as kind "compacted", which is no
	// finding.
	Unvouched []Unvouched `json:"-"`
}

// RetiredPartition is one partition that retention deleted, as its
// "retention" entry records it: the partition directory and the time range
// of the rows it held.
type RetiredPartition struct {
	Node, Table, Path string
	Rows              int64
	MinTime, MaxTime  time.Time
}

// Unvouched is a data file a reader must not count, and why.
type Unvouched struct {
	FileInfo
	Kind, What string
	Rows       *int64 // as Finding.Rows
}

// OK reports whether nothing was found.
func (r *VerifyReport) OK() bool { return len(r.Findings) == 0 }

// VerifyOptions select what Verify checks.
type VerifyOptions struct {
	// From, To: the files of the date partitions that can hold times in
	// [From, To) (zero: unbounded). Every manifest chain is checked whole.
	From, To time.Time
	// PublicKey, when set, checks every entry's ed25519 signature.
	PublicKey ed25519.PublicKey
	// SizesOnly compares each committed file's size with its entry without
	// reading the file: no SHA-256, footer or row count. For a reader that
	// must know which files the manifests vouch for and cannot afford to
	// read them twice (the report, for the months around the one it
	// verifies).
	SizesOnly bool
}

// Verify recomputes, for files dated in [from, to) (zero: everything), every
// committed file's SHA-256, size and row count, every node's manifest hash
// chain and, with pub, every signature; and lists data files that no
// manifest knows.
func Verify(root string, from, to time.Time, pub ed25519.PublicKey) (*VerifyReport, error) {
	return verifyRoot(root, VerifyOptions{From: from, To: to, PublicKey: pub})
}

func verifyRoot(root string, o VerifyOptions) (*VerifyReport, error) {
	rep := &VerifyReport{ChainHeads: map[string]string{}, Findings: []Finding{}}
	fsys, err := rootFS(root)
	if err != nil {
		return nil, fmt.Errorf("archive: verify %s: %w", root, err)
	}
	if err := checkArchive(root); err != nil {
		return nil, err
	}
	if !objstore.IsURL(root) {
		logs, err := readLogStatus(root)
		if err != nil {
			rep.Findings = append(rep.Findings, Finding{Kind: "log", Path: walDir, What: err.Error()})
		}
		rep.Pending = logs
	}
	// No manifests at all (a bucket whose first shipment was cut before its
	// first manifest): every file is extra.
	nodes, err := fs.ReadDir(fsys, "manifests")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("archive: verify %s: %w", root, err)
	}
	known := map[string]bool{}
	keyIDs := map[string]bool{}
	inRange := func(date string) bool { return partitionInRange(date, o.From, o.To) }
	pub := o.PublicKey
	for _, n := range nodes {
		part, ok := strings.CutPrefix(n.Name(), "node=")
		if !ok {
			continue
		}
		node := UnsanitizeNode(part)
		entries, moved, err := nodeManifestOrderFS(fsys, node)
		if err != nil {
			rep.Findings = append(rep.Findings, Finding{Kind: "chain", Node: node, What: err.Error()})
			continue
		}
		rep.Findings = append(rep.Findings, moved...)
		retired := map[string]bool{}
		compacted := map[string]ReplacedFile{}
		outputs := map[string]string{} // a replaced file -> the compaction's output
		for _, e := range entries {
			if e.Op == "retention" {
				retired[e.Path] = true
				rep.Retention = append(rep.Retention, RetiredPartition{Node: node, Table: e.Table, Path: e.Path, Rows: e.Rows, MinTime: e.MinTime, MaxTime: e.MaxTime})
			}
			for _, r := range e.Replaces {
				compacted[r.Path] = r
				outputs[r.Path] = e.Path
			}
		}
		prev := ""
		for _, e := range entries {
			known[e.Path] = true
			// distrust is why the entry cannot vouch for its file ("": it can).
			var distrust, distrustKind string
			if e.Prev != prev {
				rep.Findings = append(rep.Findings, Finding{Kind: "chain", Path: e.Path, Node: node, What: fmt.Sprintf("entry seq %d: prev %s does not match the previous entry's hash %s (an entry was removed, reordered or altered)", e.Seq, short(e.Prev), short(prev))})
			}
			if h := entryHash(e); h != e.Hash {
				rep.Findings = append(rep.Findings, Finding{Kind: "chain", Path: e.Path, Node: node, What: fmt.Sprintf("entry seq %d: hash %s, recomputed %s (the entry was altered)", e.Seq, short(e.Hash), short(h))})
				distrust, distrustKind = fmt.Sprintf("its manifest entry (seq %d) was altered", e.Seq), "chain"
			}
			if e.KeyID != "" {
				keyIDs[e.KeyID] = true
			}
			if pub != nil {
				sig, _ := hex.DecodeString(e.Signature)
				if e.Signature == "" || !ed25519.Verify(pub, []byte(e.Hash), sig) {
					rep.Findings = append(rep.Findings, Finding{Kind: "signature", Path: e.Path, Node: node, What: fmt.Sprintf("entry seq %d: missing or invalid signature for key %s", e.Seq, KeyID(pub))})
					if distrust == "" {
						distrust, distrustKind = fmt.Sprintf("its manifest entry (seq %d) has no valid signature", e.Seq), "signature"
					}
				}
			}
			prev = e.Hash
			rep.Entries++
			if e.Op != "commit" && e.Op != "compaction" {
				continue
			}
			date := dateOf(e.Path)
			if !inRange(date) {
				continue
			}
			if e.Op == "compaction" {
				var sum int64
				for _, r := range e.Replaces {
					sum += r.Rows
				}
				if sum != e.Rows {
					rep.Findings = append(rep.Findings, Finding{Kind: "rows", Path: e.Path, Node: node, What: fmt.Sprintf("compaction entry seq %d: %d rows, the %d files it replaces had %d", e.Seq, e.Rows, len(e.Replaces), sum)})
				}
			}
			if retired[path.Dir(e.Path)] {
				if _, err := fs.Stat(fsys, e.Path); errors.Is(err, fs.ErrNotExist) {
					rep.Retired++
					continue
				}
			}
			if r, ok := compacted[e.Path]; ok {
				if r.SHA256 != e.SHA256 || r.Rows != e.Rows {
					rep.Findings = append(rep.Findings, Finding{Kind: "chain", Path: e.Path, Node: node, What: fmt.Sprintf("a compaction replaced this file as sha256 %s with %d rows; its commit entry says %s with %d", short(r.SHA256), r.Rows, short(e.SHA256), e.Rows)})
				}
				// Its rows are in the compaction's output (if a crash kept
				// it from being deleted, the writer's next start deletes it).
				rep.Compacted++
				if _, err := fs.Stat(fsys, e.Path); err == nil {
					rep.Unvouched = append(rep.Unvouched, Unvouched{FileInfo: fileInfoOf(root, e.Path), Kind: "compacted", What: "merged into " + outputs[e.Path] + " by a compaction, which holds its rows"})
				}
				continue
			}
			if f, ok := verifyFile(fsys, root, e, node, rep, o.SizesOnly); ok {
				if distrust != "" {
					rows := e.Rows
					rep.Unvouched = append(rep.Unvouched, Unvouched{FileInfo: f.FileInfo, Kind: distrustKind, What: distrust, Rows: &rows})
				} else {
					rep.Intact = append(rep.Intact, f)
				}
			}
		}
		rep.ChainHeads[node] = prev
	}
	for k := range keyIDs {
		rep.KeyIDs = append(rep.KeyIDs, k)
	}
	slices.Sort(rep.KeyIDs)
	for _, table := range tables {
		err := fs.WalkDir(fsys, table, func(rel string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if date, ok := strings.CutPrefix(d.Name(), "date="); ok && !inRange(date) {
					return fs.SkipDir // nothing in it is reported
				}
				return nil
			}
			if strings.HasPrefix(d.Name(), tmpPrefix) {
				return nil
			}
			if !known[rel] && inRange(dateOf(rel)) {
				f := Finding{Kind: "extra", Path: rel, What: "file is in the archive but in no manifest", Rows: footerRows(root, rel)}
				rep.Findings = append(rep.Findings, f)
				rep.Unvouched = append(rep.Unvouched, Unvouched{FileInfo: fileInfoOf(root, rel), Kind: f.Kind, What: f.What, Rows: f.Rows})
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("archive: verify %s: %w", root, err)
		}
	}
	slices.SortFunc(rep.Intact, func(a, b Vouched) int { return strings.Compare(a.Path, b.Path) })
	slices.SortFunc(rep.Unvouched, func(a, b Unvouched) int { return strings.Compare(a.Path, b.Path) })
	return rep, nil
}

// footerRows returns the row count in the Parquet footer of the file rel of
// root, or nil when it has none that can be read.
func footerRows(root, rel string) *int64 {
	if !strings.HasSuffix(rel, ".parquet") {
		return nil
	}
	f, pf, err := openParquetAt(root, rel)
	if err != nil {
		return nil
	}
	defer f.Close()
	n := pf.NumRows()
	return &n
}

// VerifyAll verifies several archive roots as one report. With more than one
// root, finding paths are prefixed with their root, and a node whose chain
// appears in two roots (a node that moved) keeps one head per root.
func VerifyAll(roots []string, from, to time.Time, pub ed25519.PublicKey) (*VerifyReport, error) {
	return VerifyRoots(roots, VerifyOptions{From: from, To: to, PublicKey: pub})
}

// VerifyRoots is VerifyAll with options. Intact and Unvouched keep their
// root in FileInfo.Root and their path relative to it.
func VerifyRoots(roots []string, o VerifyOptions) (*VerifyReport, error) {
	if len(roots) == 1 {
		return verifyRoot(roots[0], o)
	}
	all := &VerifyReport{ChainHeads: map[string]string{}, Findings: []Finding{}}
	keyIDs := map[string]bool{}
	for _, root := range roots {
		rep, err := verifyRoot(root, o)
		if err != nil {
			return nil, err
		}
		all.Files += rep.Files
		all.Rows += rep.Rows
		all.Entries += rep.Entries
		all.Retired += rep.Retired
		all.Compacted += rep.Compacted
		for _, l := range rep.Pending {
			l.Name = root + "/" + l.Name
			all.Pending = append(all.Pending, l)
		}
		for node, h := range rep.ChainHeads {
			if _, dup := all.ChainHeads[node]; dup {
				node = node + " (" + root + ")"
			}
			all.ChainHeads[node] = h
		}
		for _, k := range rep.KeyIDs {
			keyIDs[k] = true
		}
		for _, f := range rep.Findings {
			if f.Path != "" {
				f.Path = filepath.ToSlash(filepath.Join(root, f.Path))
			} else {
				f.Path = filepath.ToSlash(root)
			}
			all.Findings = append(all.Findings, f)
		}
		all.Intact = append(all.Intact, rep.Intact...)
		all.Unvouched = append(all.Unvouched, rep.Unvouched...)
		all.Retention = append(all.Retention, rep.Retention...)
	}
	for k := range keyIDs {
		all.KeyIDs = append(all.KeyIDs, k)
	}
	slices.Sort(all.KeyIDs)
	return all, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "(none)"
	}
	return h
}

func dateOf(rel string) string {
	for _, part := range strings.Split(rel, "/") {
		if d, ok := strings.CutPrefix(part, "date="); ok {
			return d
		}
	}
	return ""
}

// digest returns the size and hex SHA-256 of what r holds, as a manifest
// entry records them.
func digest(r io.Reader) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// verifyFile checks the file of the commit or compaction entry e against it
// and returns it as vouched when it matches (ok), or adds the finding and
// the file to rep.Unvouched.
func verifyFile(fsys fs.FS, root string, e ManifestEntry, node string, rep *VerifyReport, sizesOnly bool) (v Vouched, ok bool) {
	v = Vouched{FileInfo: fileInfoOf(root, e.Path), Bytes: e.Bytes, Rows: e.Rows, MinTime: e.MinTime, MaxTime: e.MaxTime}
	rows := e.Rows
	bad := func(kind, what string) (Vouched, bool) {
		rep.Findings = append(rep.Findings, Finding{Kind: kind, Path: e.Path, Node: node, What: what, Rows: &rows})
		rep.Unvouched = append(rep.Unvouched, Unvouched{FileInfo: v.FileInfo, Kind: kind, What: what, Rows: &rows})
		return v, false
	}
	if sizesOnly {
		st, err := fs.Stat(fsys, e.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return bad("missing", "committed file is missing")
		}
		if err != nil {
			return bad("unreadable", err.Error())
		}
		rep.Files++
		if st.Size() != e.Bytes {
			return bad("truncated", fmt.Sprintf("size %d, manifest says %d", st.Size(), e.Bytes))
		}
		rep.Rows += e.Rows
		return v, true
	}
	f, err := fsys.Open(e.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return bad("missing", "committed file is missing")
	}
	if err != nil {
		return bad("unreadable", err.Error())
	}
	defer f.Close()
	rep.Files++
	n, sum, err := digest(f)
	if err != nil {
		// A read that failed says nothing of the file's content (a
		// network error reading a bucket): not truncated, not vouched.
		return bad("unreadable", err.Error())
	}
	if n != e.Bytes {
		return bad("truncated", fmt.Sprintf("size %d, manifest says %d", n, e.Bytes))
	}
	if sum != e.SHA256 {
		return bad("modified", fmt.Sprintf("sha256 %s, manifest says %s", short(sum), short(e.SHA256)))
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return bad("unreadable", "no random access")
	}
	pf, err := parquet.OpenFile(ra, n)
	if err != nil {
		return bad("truncated", "unreadable Parquet footer: "+err.Error())
	}
	rep.Rows += pf.NumRows()
	if pf.NumRows() != e.Rows {
		return bad("rows", fmt.Sprintf("%d rows, manifest says %d", pf.NumRows(), e.Rows))
	}
	return v, true
}
