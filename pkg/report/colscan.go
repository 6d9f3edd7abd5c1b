package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// The report's reader decodes the columns it needs one at a time and fills
// flowRow itself. parquet-go's row reader (ScanFlowsAs) reconstructs every
// row through reflection and allocates a string per value: 80% of a
// report's CPU. Here pages are read as arrays (levels, dictionary indexes),
// never as parquet.Value; a dictionary entry becomes a string once per row
// group (a plain page's value goes through a per-row-group table), and list
// elements and optional numbers live in slabs reused batch after batch.
//
// The strings handed to the aggregator must never change afterwards: a Go
// map assignment (m[k]++) on an existing key stores the assigned key's
// strings, so a map keyed by strings ends up pointing at the rows' strings.
// Interned strings are immutable; a per-batch arena that is overwritten is
// not (tried: it corrupted the report's keys).
//
// Filled: every field of flowRow, except Workload.Kind and the Policy
// fields other than Name and Namespace, which the report does not read.
// TestColumnScanMatchesRowScan compares the result with parquet-go's rows.

// colKind is how a column's values become flowRow fields.
type colKind uint8

const (
	kTime  colKind = iota // required int64
	kStr                  // optional string -> *string
	kU32                  // optional uint32 -> *uint32
	kBool                 // optional boolean -> *bool
	kStrs                 // optional list of strings -> []string
	kWl                   // optional list of workloads: name -> []Workload
	kPolNm                // optional list of policies: name -> []Policy (with kPolNs)
	kPolNs                // ... namespace, into the same policies
)

type colSpec struct {
	path string
	kind colKind
	// The field the column fills: the one accessor of its kind.
	str  func(*flowRow) **string
	u32  func(*flowRow) **uint32
	bl   func(*flowRow) **bool
	strs func(*flowRow) *[]string
	wl   func(*flowRow) *[]archive.Workload
	pol  func(*flowRow) *[]archive.Policy
}

// cols are the columns of flowRow, each with the field it fills.
var cols = []colSpec{
	{path: "time", kind: kTime},
	{path: "verdict", kind: kStr, str: func(r *flowRow) **string { return &r.Verdict }},
	{path: "drop_reason_desc", kind: kStr, str: func(r *flowRow) **string { return &r.DropReasonDesc }},
	{path: "ip_source", kind: kStr, str: func(r *flowRow) **string { return &r.IPSource }},
	{path: "ip_destination", kind: kStr, str: func(r *flowRow) **string { return &r.IPDestination }},
	{path: "l4_protocol", kind: kStr, str: func(r *flowRow) **string { return &r.L4Protocol }},
	{path: "l4_destination_port", kind: kU32, u32: func(r *flowRow) **uint32 { return &r.L4DestPort }},
	{path: "source_identity", kind: kU32, u32: func(r *flowRow) **uint32 { return &r.SourceIdentity }},
	{path: "source_namespace", kind: kStr, str: func(r *flowRow) **string { return &r.SourceNamespace }},
	{path: "source_pod_name", kind: kStr, str: func(r *flowRow) **string { return &r.SourcePod }},
	{path: "source_labels.list.element", kind: kStrs, strs: func(r *flowRow) *[]string { return &r.SourceLabels }},
	{path: "source_workloads.list.element.name", kind: kWl, wl: func(r *flowRow) *[]archive.Workload { return &r.SourceWorkloads }},
	{path: "destination_identity", kind: kU32, u32: func(r *flowRow) **uint32 { return &r.DestIdentity }},
	{path: "destination_namespace", kind: kStr, str: func(r *flowRow) **string { return &r.DestNamespace }},
	{path: "destination_pod_name", kind: kStr, str: func(r *flowRow) **string { return &r.DestPod }},
	{path: "destination_labels.list.element", kind: kStrs, strs: func(r *flowRow) *[]string { return &r.DestLabels }},
	{path: "destination_workloads.list.element.name", kind: kWl, wl: func(r *flowRow) *[]archive.Workload { return &r.DestWorkloads }},
	{path: "node_name", kind: kStr, str: func(r *flowRow) **string { return &r.NodeName }},
	{path: "source_names.list.element", kind: kStrs, strs: func(r *flowRow) *[]string { return &r.SourceNames }},
	{path: "destination_names.list.element", kind: kStrs, strs: func(r *flowRow) *[]string { return &r.DestinationNames }},
	{path: "l7_dns_query", kind: kStr, str: func(r *flowRow) **string { return &r.L7DNSQuery }},
	{path: "l7_dns_rcode", kind: kU32, u32: func(r *flowRow) **uint32 { return &r.L7DNSRcode }},
	{path: "l7_http_code", kind: kU32, u32: func(r *flowRow) **uint32 { return &r.L7HTTPCode }},
	{path: "l7_http_method", kind: kStr, str: func(r *flowRow) **string { return &r.L7HTTPMethod }},
	{path: "is_reply", kind: kBool, bl: func(r *flowRow) **bool { return &r.IsReply }},
	{path: "egress_denied_by.list.element.name", kind: kPolNm, pol: func(r *flowRow) *[]archive.Policy { return &r.EgressDeniedBy }},
	{path: "egress_denied_by.list.element.namespace", kind: kPolNs, pol: func(r *flowRow) *[]archive.Policy { return &r.EgressDeniedBy }},
	{path: "ingress_denied_by.list.element.name", kind: kPolNm, pol: func(r *flowRow) *[]archive.Policy { return &r.IngressDeniedBy }},
	{path: "ingress_denied_by.list.element.namespace", kind: kPolNs, pol: func(r *flowRow) *[]archive.Policy { return &r.IngressDeniedBy }},
}

// cursor reads one column chunk, page after page, a slot at a time: a slot
// is one definition (and repetition) level, and the value of the slots whose
// level is maxDef. Pages are read column-wise: their levels, and their
// values as dictionary indexes or plain arrays, never as parquet.Value.
type cursor struct {
	pages      parquet.Pages
	page       parquet.Page
	defs, reps []byte // the page's levels (nil: every slot maxDef, or rep 0)
	i, n       int    // the next slot of the page, and its slot count
	vi         int    // the next non-NULL value of the page
	eof        bool
	maxDef     int
	absent     bool // the file has no such column: every row NULL

	// The page's values: idx indexes the dictionary's (plain pages: nil).
	idx   []int32
	bytes []byte // byte arrays: bytes[offs[j]:offs[j+1]]
	offs  []uint32
	u32s  []uint32
	i64s  []int64
	bits  []byte // booleans, LSB first

	// Strings are interned: a dictionary entry once per row group (dict:
	// the dictionary dictStr caches), a plain page's value through strs.
	dict    parquet.Dictionary
	dictStr []*string
	strs    map[string]*string
}

func (c *cursor) open(cc parquet.ColumnChunk, maxDef int) {
	c.close()
	c.pages, c.i, c.n, c.eof, c.maxDef, c.absent = cc.Pages(), 0, 0, false, maxDef, false
	if c.strs == nil {
		c.strs = map[string]*string{}
	}
	// Interned per row group (whose dictionaries bound the distinct values):
	// over a month the table would hold every IP and name ever seen.
	clear(c.strs)
	c.dict = nil
}

func (c *cursor) close() {
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	if c.pages != nil {
		_ = c.pages.Close()
		c.pages = nil
	}
}

// more makes c.i a slot of the current page; false at the end of the chunk.
func (c *cursor) more() (bool, error) {
	for c.i == c.n {
		if c.eof {
			return false, nil
		}
		p, err := c.pages.ReadPage()
		if errors.Is(err, io.EOF) {
			c.eof = true
			continue
		}
		if err != nil {
			return false, err
		}
		if c.page != nil {
			parquet.Release(c.page) // every slot of it was read
		}
		c.page = p
		if err := c.load(p); err != nil {
			return false, err
		}
	}
	return true, nil
}

// load makes p the current page.
func (c *cursor) load(p parquet.Page) error {
	c.defs, c.reps = p.DefinitionLevels(), p.RepetitionLevels()
	c.i, c.n, c.vi = 0, int(p.NumValues()), 0
	if c.defs != nil && len(c.defs) != c.n || c.reps != nil && len(c.reps) != c.n {
		return fmt.Errorf("page of %d values with %d definition and %d repetition levels", c.n, len(c.defs), len(c.reps))
	}
	vals := p.Data()
	c.idx = nil
	if d := p.Dictionary(); d != nil {
		c.idx = vals.Int32()
		if d != c.dict {
			c.dict = d
			c.dictStr = slices.Grow(c.dictStr[:0], d.Len())[:d.Len()]
			clear(c.dictStr)
		}
		vals = d.Page().Data()
	}
	c.bytes, c.offs, c.u32s, c.i64s, c.bits = nil, nil, nil, nil, nil
	switch vals.Kind() {
	case encoding.ByteArray:
		c.bytes, c.offs = vals.ByteArray()
	case encoding.Int32:
		c.u32s = vals.Uint32()
	case encoding.Int64:
		c.i64s = vals.Int64()
	case encoding.Boolean:
		c.bits = vals.Boolean()
	default:
		return fmt.Errorf("values of kind %v", vals.Kind())
	}
	return nil
}

// def and rep are the levels of the current slot.
func (c *cursor) def() int {
	if c.defs == nil {
		return c.maxDef
	}
	return int(c.defs[c.i])
}

func (c *cursor) rep() int {
	if c.reps == nil {
		return 0
	}
	return int(c.reps[c.i])
}

// value returns the position of the current slot's value in the page's
// value arrays and moves past it; the slot's level must be maxDef.
func (c *cursor) value(n int) (int, error) {
	j := c.vi
	if c.idx != nil {
		if j >= len(c.idx) {
			return 0, errors.New("fewer dictionary indexes than values")
		}
		j = int(c.idx[j])
	}
	if j < 0 || j >= n {
		return 0, fmt.Errorf("value %d of %d", j, n)
	}
	c.vi++
	return j, nil
}

// str returns the interned string of the current slot's value.
func (c *cursor) str() (*string, error) {
	if c.offs == nil {
		return nil, errors.New("not a byte array column")
	}
	j, err := c.value(len(c.offs) - 1)
	if err != nil {
		return nil, err
	}
	if c.idx != nil {
		if p := c.dictStr[j]; p != nil {
			return p, nil
		}
	}
	b := c.bytes[c.offs[j]:c.offs[j+1]]
	p, ok := c.strs[string(b)]
	if !ok {
		s := string(b)
		p = &s
		c.strs[s] = p
	}
	if c.idx != nil {
		c.dictStr[j] = p
	}
	return p, nil
}

func (c *cursor) i64() (int64, error) {
	if c.i64s == nil {
		return 0, errors.New("not an int64 column")
	}
	j, err := c.value(len(c.i64s))
	if err != nil {
		return 0, err
	}
	return c.i64s[j], nil
}

func (c *cursor) boolean() (bool, error) {
	if c.bits == nil {
		return false, errors.New("not a boolean column")
	}
	j, err := c.value(len(c.bits) * 8)
	if err != nil {
		return false, err
	}
	return c.bits[j>>3]&(1<<(j&7)) != 0, nil
}

// columns is a set of the columns of cols, by index.
type columns uint64

// allColumns is every column of cols.
var allColumns = columns(1)<<len(cols) - 1

// without returns c without the columns at paths, which must be in cols.
func (c columns) without(paths ...string) columns {
	for _, p := range paths {
		i := slices.IndexFunc(cols, func(s colSpec) bool { return s.path == p })
		if i < 0 {
			panic("report: no column " + p)
		}
		c &^= 1 << i
	}
	return c
}

// colScan turns row groups into flowRow batches. One per goroutine.
type colScan struct {
	read  columns // the columns filled; the others are NULL
	cur   []cursor
	rows  []flowRow
	u32s  []uint32
	strSl []string
	wls   []archive.Workload
	pols  []archive.Policy
}

func newColScan(read columns) *colScan {
	return &colScan{read: read, cur: make([]cursor, len(cols))}
}

// batchRows is the rows handed to the aggregator at a time.
const batchRows = 4096

// u32Cols is how many optional uint32 columns a row has (the capacity of the
// u32 slab per row).
var u32Cols = func() int {
	n := 0
	for _, spec := range cols {
		if spec.kind == kU32 {
			n++
		}
	}
	return n
}()

// boolVals are what the rows' *bool fields point to.
var boolVals = [2]bool{false, true}

// rowGroup calls fn with the rows of rg, in batches (reused between calls).
func (c *colScan) rowGroup(rg parquet.RowGroup, fn func([]flowRow) error) (err error) {
	schema := rg.Schema()
	chunks := rg.ColumnChunks()
	for i, spec := range cols {
		leaf, ok := schema.Lookup(strings.Split(spec.path, ".")...)
		if c.read&(1<<i) == 0 && spec.kind != kTime {
			c.cur[i].close()
			c.cur[i].absent = true
			continue
		}
		if !ok {
			if spec.kind == kTime {
				return fmt.Errorf("column %s: not in the file", spec.path)
			}
			// A file of a schema without the column: NULL in every row.
			c.cur[i].close()
			c.cur[i].absent = true
			continue
		}
		c.cur[i].open(chunks[leaf.ColumnIndex], leaf.MaxDefinitionLevel)
	}
	defer func() {
		for i := range c.cur {
			c.cur[i].close()
		}
	}()
	if c.rows == nil {
		c.rows = make([]flowRow, batchRows)
	}
	for left := rg.NumRows(); left > 0; {
		n := int(min(batchRows, left))
		rows := c.rows[:n]
		clear(rows)
		c.u32s, c.strSl, c.wls, c.pols = c.u32s[:0], c.strSl[:0], c.wls[:0], c.pols[:0]
		// Slabs are sized up front so that slices into them stay valid.
		if cap(c.u32s) < u32Cols*n {
			c.u32s = make([]uint32, 0, u32Cols*n)
		}
		for i, spec := range cols {
			if err := c.fill(&c.cur[i], spec, rows); err != nil {
				return fmt.Errorf("column %s: %w", spec.path, err)
			}
		}
		if err := fn(rows); err != nil {
			return err
		}
		left -= int64(n)
	}
	return nil
}

// slot moves to the next slot of a column that must have one.
func (c *cursor) slot() error {
	ok, err := c.more()
	if err == nil && !ok {
		err = errors.New("fewer values than rows")
	}
	return err
}

// fill reads the values of len(rows) rows of one column into rows.
func (c *colScan) fill(cur *cursor, spec colSpec, rows []flowRow) error {
	if cur.absent {
		return nil // the rows were cleared: NULL
	}
	if spec.kind >= kStrs {
		for r := range rows {
			if err := c.fillList(cur, spec, &rows[r]); err != nil {
				return err
			}
		}
		return nil
	}
	switch spec.kind {
	case kStr:
		return fillStr(cur, spec.str, rows)
	case kU32:
		return c.fillU32(cur, spec.u32, rows)
	}
	// time and is_reply
	for r := range rows {
		if err := cur.slot(); err != nil {
			return err
		}
		if cur.rep() != 0 {
			return errors.New("a repeated value in a column of one value per row")
		}
		if cur.def() == cur.maxDef {
			switch spec.kind {
			case kTime:
				t, err := cur.i64()
				if err != nil {
					return err
				}
				rows[r].Time = t
			case kBool:
				v, err := cur.boolean()
				if err != nil {
					return err
				}
				b := &boolVals[0]
				if v {
					b = &boolVals[1]
				}
				*spec.bl(&rows[r]) = b
			}
		} else if spec.kind == kTime {
			return errors.New("time is NULL")
		}
		cur.i++
	}
	return nil
}

// fillStr is fill of a string column, a page's run of slots at a time; a
// dictionary entry's string is looked up inline.
func fillStr(cur *cursor, field func(*flowRow) **string, rows []flowRow) error {
	for r := 0; r < len(rows); {
		if err := cur.slot(); err != nil {
			return err
		}
		if cur.reps != nil {
			return errors.New("a repeated value in a column of one value per row")
		}
		end := cur.i + min(len(rows)-r, cur.n-cur.i)
		for ; cur.i < end; cur.i, r = cur.i+1, r+1 {
			if cur.defs != nil && int(cur.defs[cur.i]) != cur.maxDef {
				continue
			}
			if cur.idx != nil && cur.vi < len(cur.idx) {
				if j := cur.idx[cur.vi]; uint(j) < uint(len(cur.dictStr)) {
					if p := cur.dictStr[j]; p != nil {
						cur.vi++
						*field(&rows[r]) = p
						continue
					}
				}
			}
			p, err := cur.str()
			if err != nil {
				return err
			}
			*field(&rows[r]) = p
		}
	}
	return nil
}

// fillU32 is fill of a uint32 column, a page's run of slots at a time.
func (c *colScan) fillU32(cur *cursor, field func(*flowRow) **uint32, rows []flowRow) error {
	for r := 0; r < len(rows); {
		if err := cur.slot(); err != nil {
			return err
		}
		if cur.reps != nil {
			return errors.New("a repeated value in a column of one value per row")
		}
		if cur.u32s == nil {
			return errors.New("not an int32 column")
		}
		end := cur.i + min(len(rows)-r, cur.n-cur.i)
		for ; cur.i < end; cur.i, r = cur.i+1, r+1 {
			if cur.defs != nil && int(cur.defs[cur.i]) != cur.maxDef {
				continue
			}
			j, err := cur.value(len(cur.u32s))
			if err != nil {
				return err
			}
			c.u32s = append(c.u32s, cur.u32s[j])
			*field(&rows[r]) = &c.u32s[len(c.u32s)-1]
		}
	}
	return nil
}

// fillList reads one row of a list column: its slots run until the next
// repetition level 0. Elements go to slabs that are only appended to until
// the batch ends, so the rows' slices stay valid (a slab that grows leaves
// the earlier slices on its old array, unchanged).
func (c *colScan) fillList(cur *cursor, spec colSpec, row *flowRow) error {
	if err := cur.slot(); err != nil {
		return err
	}
	if cur.rep() != 0 {
		return errors.New("a row starts with repetition level > 0")
	}
	start, k := -1, 0
	for {
		if cur.def() == cur.maxDef {
			var s *string
			if cur.idx != nil && cur.vi < len(cur.idx) {
				if j := cur.idx[cur.vi]; uint(j) < uint(len(cur.dictStr)) {
					if s = cur.dictStr[j]; s != nil {
						cur.vi++
					}
				}
			}
			if s == nil {
				var err error
				if s, err = cur.str(); err != nil {
					return err
				}
			}
			switch spec.kind {
			case kStrs:
				if start < 0 {
					start = len(c.strSl)
				}
				c.strSl = append(c.strSl, *s)
			case kWl:
				if start < 0 {
					start = len(c.wls)
				}
				c.wls = append(c.wls, archive.Workload{Name: *s})
			case kPolNm:
				if start < 0 {
					start = len(c.pols)
				}
				c.pols = append(c.pols, archive.Policy{Name: *s})
			case kPolNs: // the k-th policy the name column added to this row
				pols := *spec.pol(row)
				if k >= len(pols) {
					return errors.New("a policy namespace without a name")
				}
				pols[k].Namespace = *s
				k++
			}
		}
		cur.i++
		if cur.i == cur.n { // the row may go on in the next page
			ok, err := cur.more()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
		}
		if cur.rep() == 0 {
			break
		}
	}
	if start >= 0 {
		switch spec.kind {
		case kStrs:
			*spec.strs(row) = c.strSl[start:len(c.strSl):len(c.strSl)]
		case kWl:
			*spec.wl(row) = c.wls[start:len(c.wls):len(c.wls)]
		case kPolNm:
			*spec.pol(row) = c.pols[start:len(c.pols):len(c.pols)]
		}
	}
	return nil
}

// scanRows calls add with the flow rows in [o.From, o.To), decoded by
// colScan on up to o.Parallel goroutines, with the columns read filled
// (time always); add is never called concurrently and must not keep the
// rows.
func scanRows(ctx context.Context, sc *archive.Scanner, o archive.ScanOptions, read columns, add func([]flowRow)) error {
	from, to := o.Micros()
	var mu sync.Mutex
	newScan := func() *colScan { return newColScan(read) }
	return archive.ScanFlowRowGroups(ctx, sc, o, newScan, func(c *colScan, rg parquet.RowGroup) error {
		return c.rowGroup(rg, func(rows []flowRow) error {
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
			return ctx.Err()
		})
	})
}
