package serve

import (
	"fmt"
	"slices"
	"sort"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// cursor reads one row group's matching flows in row order, column-first
// (archive.RowReader), a batch of rows at a time: first the columns the
// filters read, of every row of the batch in the window; then the other
// columns, of the rows whose flow made of the first passes. The filters'
// decision on the flow made of the whole row stays the judge.
type cursor struct {
	q   *query
	g   archive.FlowRowGroup
	ord int
	c   *archive.FlowFile
	rg  archive.RowGroup
	rr  *archive.RowReader[archive.FlowRow]
	// times is the time_ns column, read once the cursor must seek; nil
	// before. sorted: the times are in order (a cursor then stops at the
	// first row past until).
	times  []int64
	sorted bool
	// ruledOut: the row group's statistics show no row passes; it is read
	// as if it had none.
	ruledOut bool
	end      int64 // the row to read no further than
	rows     []archive.FlowRow
	keep     []bool
	first    int64 // the row of rows[0]
	n, i     int   // the batch's rows, and the current one
	b        archive.FlowBuilder
	f        flowpb.Flow
	head     key
	// What a message read in part holds when its columns read are NULL
	// and the whole row has it: its fields read, empty.
	emptyEP flowpb.Endpoint
	emptyIP flowpb.IP
}

func openCursor(q *query, g archive.FlowRowGroup, ord int) (*cursor, error) {
	c, err := archive.OpenFlowFile(g.File)
	if err != nil {
		return nil, err
	}
	rg := c.RowGroups()[g.Index]
	cur := &cursor{q: q, g: g, ord: ord, c: c, rg: rg, rr: q.reader(), end: rg.NumRows(), i: -1}
	cur.rr.Reset(rg)
	if ruledOut(cur.rr, q.pruner) {
		q.groupsPruned++
		cur.ruledOut, cur.times, cur.end = true, []int64{}, 0
	} else if err := cur.loadTimes(); err != nil {
		cur.close()
		return nil, err
	}
	cur.rows, cur.keep = q.batch()
	return cur, nil
}

// reader returns a RowReader for a cursor, reused from one that closed.
func (q *query) reader() *archive.RowReader[archive.FlowRow] {
	if n := len(q.readers); n > 0 {
		r := q.readers[n-1]
		q.readers = q.readers[:n-1]
		return r
	}
	r, err := archive.NewRowReader[archive.FlowRow]()
	if err != nil {
		panic(err) // FlowRow is the archive's own row type
	}
	r.Transient()
	return r
}

// batch returns the row and keep buffers of a cursor, reused from one that
// closed.
func (q *query) batch() ([]archive.FlowRow, []bool) {
	if n := len(q.batches); n > 0 {
		b := q.batches[n-1]
		q.batches = q.batches[:n-1]
		return b.rows, b.keep
	}
	return make([]archive.FlowRow, rowBatch), make([]bool, rowBatch)
}

// loadTimes reads the row group's time_ns column alone (8 bytes a row), so
// that the cursor can seek to the rows of a time instead of reading every
// row before them.
func (c *cursor) loadTimes() error {
	if c.times != nil {
		return nil
	}
	times, err := c.rr.Int64s("time_ns", c.q.times[:0])
	if err != nil {
		return &archive.ScanError{File: c.g.File, Err: err}
	}
	if int64(len(times)) != c.rg.NumRows() {
		return &archive.ScanError{File: c.g.File, Err: fmt.Errorf("%d times for %d rows", len(times), c.rg.NumRows())}
	}
	c.q.times = nil // the cursor owns them until it closes
	c.times, c.sorted = times, slices.IsSorted(times)
	return nil
}

// span returns the rows [lo, hi) from the first whose time is at or after
// from (and since) to the last at or before until: the rows outside cannot
// be in the window, whether the times are in order or not.
func (c *cursor) span(from int64) (lo, hi int64, err error) {
	if c.ruledOut {
		return 0, 0, nil
	}
	if err := c.loadTimes(); err != nil {
		return 0, 0, err
	}
	from = max(from, c.q.since)
	n := int64(len(c.times))
	if c.sorted {
		lo = int64(sort.Search(len(c.times), func(i int) bool { return c.times[i] >= from }))
		hi = int64(sort.Search(len(c.times), func(i int) bool { return c.times[i] > c.q.until }))
		return lo, max(lo, hi), nil
	}
	for lo < n && c.times[lo] < from {
		lo++
	}
	hi = n
	for hi > lo && c.times[hi-1] > c.q.until {
		hi--
	}
	return lo, hi, nil
}

// seek places the cursor before row, to read no further than end.
func (c *cursor) seek(row, end int64) error {
	if c.ruledOut {
		return nil
	}
	c.first, c.n, c.i, c.end = row, 0, -1, end
	return nil
}

func (c *cursor) close() {
	if c.rr != nil {
		c.rr.Close()
		c.c.Close()
		c.q.readers = append(c.q.readers, c.rr)
		c.q.batches = append(c.q.batches, batchBufs{c.rows, c.keep})
		if c.q.times == nil || cap(c.times) > cap(c.q.times) {
			c.q.times = c.times[:0]
		}
		c.rr, c.rows, c.keep, c.times = nil, nil, nil, nil
	}
}

// load reads the next batch of rows (from c.first + c.n): the filters'
// columns of the rows in the window at or after from, then the other
// columns of those whose flow made of the first passes. False at the end.
func (c *cursor) load(from key) (bool, error) {
	first := c.first + int64(c.n)
	if first >= c.end {
		return false, nil
	}
	n := int(min(int64(len(c.rows)), c.end-first))
	c.first, c.n, c.i = first, n, -1
	rows, keep := c.rows[:n], c.keep[:n]
	// The first pass builds flows of the filters' columns alone: nothing
	// of the rows read before may be left in the others.
	clear(rows)
	any := false
	for k := range rows {
		t := c.times[first+int64(k)]
		keep[k] = t >= c.q.since && t <= c.q.until && !(key{t: t, ord: c.ord, row: first + int64(k)}).less(from)
		rows[k].TimeNs = t
		any = any || keep[k]
	}
	if !any {
		return true, nil
	}
	c.rr.Begin()
	if !c.q.filterCols.IsEmpty() {
		if err := c.rr.Read(c.q.filterCols, first, rows, keep); err != nil {
			return false, &archive.ScanError{File: c.g.File, Err: err}
		}
		any = false
		for k := range rows {
			if !keep[k] {
				continue
			}
			if err := c.b.Flow(&rows[k], &c.f); err != nil {
				return false, &archive.ScanError{File: c.g.File, Err: err}
			}
			keep[k] = c.q.match(&c.f) || c.mayMatch(&rows[k])
			any = any || keep[k]
		}
	}
	if any {
		if err := c.rr.Read(c.q.restCols, first, rows, keep); err != nil {
			return false, &archive.ScanError{File: c.g.File, Err: err}
		}
	}
	return true, nil
}

// mayMatch reports whether the whole row r may match where the flow c.f,
// built of the filters' columns, does not: the filters read no field of a
// message read in part but its fields read, so the flow differs from the
// whole row's only in such messages being absent where their columns read
// are all NULL; it is judged again with each such message there, empty.
func (c *cursor) mayMatch(r *archive.FlowRow) bool {
	var unknown [3]*archive.Part
	n := 0
	for i := range c.q.parts {
		p := &c.q.parts[i]
		if c.rr.Null(p.Cols, r) {
			unknown[n] = p
			n++
		}
	}
	if n == 0 {
		return false
	}
	f := &c.f
	for set := 1; set < 1<<n; set++ {
		for k := range n {
			var ep *flowpb.Endpoint
			var ip *flowpb.IP
			if set&(1<<k) != 0 {
				ep, ip = &c.emptyEP, &c.emptyIP
			}
			switch unknown[k].Field {
			case "source":
				f.Source = ep
			case "destination":
				f.Destination = ep
			case "IP":
				f.IP = ip
			}
		}
		if c.q.match(f) {
			return true
		}
	}
	return false
}

// advance moves to the next flow at or after from that is in the window
// and matches; ok is false at the end of the rows the cursor reads.
func (c *cursor) advance(from key) (ok bool, err error) {
	for {
		c.i++
		if c.i >= c.n {
			more, err := c.load(from)
			if !more || err != nil {
				return false, err
			}
			continue
		}
		if !c.keep[c.i] {
			continue
		}
		r := &c.rows[c.i]
		if err := c.b.Flow(r, &c.f); err != nil {
			return false, &archive.ScanError{File: c.g.File, Err: err}
		}
		if c.q.match(&c.f) {
			c.head = key{t: r.TimeNs, ord: c.ord, row: c.first + int64(c.i)}
			return true, nil
		}
	}
}
