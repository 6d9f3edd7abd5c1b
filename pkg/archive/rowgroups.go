package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"time"

	"github.com/parquet-go/parquet-go"
)

// FlowRowGroup is one row group of a committed flows file, with the bounds
// its footer statistics give its time column (µs since the epoch;
// math.MinInt64 and math.MaxInt64 when the footer has none).
type FlowRowGroup struct {
	File             FileInfo
	Index            int
	Rows             int64
	MinTime, MaxTime int64
}

// FlowRowGroups reads the footers of files and returns their row groups
// whose time statistics can hold times in [from, to) (zero: unbounded), in
// the order of files: the units a reader that merges files by time opens
// one by one (OpenFlowFile).
func FlowRowGroups(files []FileInfo, from, to time.Time) ([]FlowRowGroup, error) {
	w := windowOf(from, to)
	var out []FlowRowGroup
	for _, fi := range files {
		c, pf, err := openParquetAt(fi.Root, fi.Path)
		if err != nil {
			return nil, &ScanError{File: fi, Err: err}
		}
		col, hasTime := pf.Schema().Lookup("time")
		for i, rg := range pf.Metadata().RowGroups {
			g := FlowRowGroup{File: fi, Index: i, Rows: rg.NumRows, MinTime: math.MinInt64, MaxTime: math.MaxInt64}
			if hasTime {
				st := rg.Columns[col.ColumnIndex].MetaData.Statistics
				if !w.overlaps(st) {
					rowGroupsSkipped.Add(1)
					continue
				}
				if len(st.MinValue) == 8 && len(st.MaxValue) == 8 {
					g.MinTime, g.MaxTime = int64(binary.LittleEndian.Uint64(st.MinValue)), int64(binary.LittleEndian.Uint64(st.MaxValue))
				}
			}
			out = append(out, g)
		}
		c.Close()
	}
	return out, nil
}

// FlowFile is a committed flows file open for reading its row groups.
type FlowFile struct {
	c  io.Closer
	pf *parquet.File
}

// RowGroup is one row group of a flows file, which a RowReader reads:
// readers outside this package hold it without the Parquet library's types.
type RowGroup struct{ rg parquet.RowGroup }

// NumRows is the row group's number of rows.
func (g RowGroup) NumRows() int64 { return g.rg.NumRows() }

// OpenFlowFile opens the committed flows file fi for reading its row groups
// (FlowRowGroup.Index into RowGroups); the caller closes it.
func OpenFlowFile(fi FileInfo) (*FlowFile, error) {
	c, pf, err := openParquetAt(fi.Root, fi.Path)
	if err != nil {
		return nil, &ScanError{File: fi, Err: err}
	}
	return &FlowFile{c: c, pf: pf}, nil
}

// RowGroups are the file's row groups, in file order.
func (f *FlowFile) RowGroups() []RowGroup {
	groups := f.pf.RowGroups()
	out := make([]RowGroup, len(groups))
	for i, rg := range groups {
		out[i] = RowGroup{rg}
	}
	return out
}

// Close closes the file.
func (f *FlowFile) Close() error { return f.c.Close() }

// Compactions returns, for the day date of node in root, each compaction's
// output file and the files it replaced (paths relative to root), as the
// node's manifest of the day records them: a reader that follows the archive
// as it grows knows by it that a new file holds rows it has read already.
func Compactions(root, node, date string) (map[string][]string, error) {
	fsys, err := rootFS(root)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	rel := manifestRel(node, date)
	b, err := fs.ReadFile(fsys, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: manifest %s: %w", rel, err)
	}
	entries, err := parseManifest(rel, b)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, e := range entries {
		if e.Op != "compaction" {
			continue
		}
		for _, r := range e.Replaces {
			out[e.Path] = append(out[e.Path], r.Path)
		}
	}
	return out, nil
}
