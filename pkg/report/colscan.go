package report

import (
	"context"
	"sync"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// The report reads its rows column-first with archive.RowReader: only the
// columns of flowRow, page by page, without parquet.Value or reflection per
// row. parquet-go's row reader (ScanFlowsAs) reconstructs every row through
// reflection and allocates a string per value: 80% of a report's CPU.
//
// The strings handed to the aggregator must never change afterwards: a Go
// map assignment (m[k]++) on an existing key stores the assigned key's
// strings, so a map keyed by strings ends up pointing at the rows' strings.
// The reader's strings are interned per row group and immutable (not
// Transient: a per-batch buffer that is overwritten corrupted the report's
// keys when it was tried).
//
// TestColumnScanMatchesRowScan compares the result with parquet-go's rows.

// columns is a set of flowRow's columns.
type columns = archive.Columns

// rowLayout is a reader of flowRow, for its column sets.
var rowLayout = newRowReader()

func newRowReader() *archive.RowReader[flowRow] {
	r, err := archive.NewRowReader[flowRow]()
	if err != nil {
		panic(err) // flowRow is a projection of archive.FlowRow
	}
	return r
}

// allColumns is every column of flowRow.
var allColumns = rowLayout.AllColumns()

// allWithout returns every column of flowRow but the named ones (parquet
// tag names: "source_labels"), which must be flowRow's.
func allWithout(names ...string) columns {
	c, err := rowLayout.Columns(names...)
	if err != nil {
		panic(err)
	}
	return allColumns.Without(c)
}

// batchRows is the rows handed to the aggregator at a time.
const batchRows = 4096

// rowScan is one goroutine's reader and batch.
type rowScan struct {
	r    *archive.RowReader[flowRow]
	rows []flowRow
}

// scanRows calls add with the flow rows in [o.From, o.To), read on up to
// o.Parallel goroutines, with the columns read filled (time always; the
// others NULL); add is never called concurrently and must not keep the
// rows.
func scanRows(ctx context.Context, sc *archive.Scanner, o archive.ScanOptions, read columns, add func([]flowRow)) error {
	from, to := o.Micros()
	timeCol, err := rowLayout.Columns("time")
	if err != nil {
		return err
	}
	read = read.Union(timeCol)
	var mu sync.Mutex
	newScan := func() *rowScan { return &rowScan{r: newRowReader(), rows: make([]flowRow, batchRows)} }
	return archive.ScanFlowRowGroups(ctx, sc, o, newScan, func(s *rowScan, rg archive.RowGroup) error {
		s.r.Reset(rg)
		defer s.r.Close()
		for first, n := int64(0), rg.NumRows(); first < n; first += batchRows {
			rows := s.rows[:min(batchRows, n-first)]
			s.r.Begin()
			if err := s.r.Read(read, first, rows, nil); err != nil {
				return err
			}
			sel := rows[:0]
			for i := range rows {
				if t := rows[i].Time; t >= from && t < to {
					if len(sel) < i { // a row was left out: move this one up
						rows[len(sel)] = rows[i]
					}
					sel = rows[:len(sel)+1]
				}
			}
			if len(sel) > 0 {
				mu.Lock()
				add(sel)
				mu.Unlock()
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return nil
	})
}
