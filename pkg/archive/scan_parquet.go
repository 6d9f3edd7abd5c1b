package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

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
