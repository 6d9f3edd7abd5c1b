package report

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// The report's reader decodes the columns it needs one at a time and fills
// flowRow itself. parquet-go's row reader (ScanFlowsAs) reconstructs every
// row through reflection and allocates a string per value: 80% of a
// report's CPU. Here a string is looked up in a per-reader table without
// allocating (the columns are dictionary-encoded and repeat), and list
// elements and optional numbers live in slabs reused batch after batch.
//
// The strings handed to the aggregator must never change afterwards: a Go
// map assignment (m[k]++) on an existing key stores the assigned key's
// strings, so the aggregator's keys end up pointing at the rows' strings.
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

// cursor reads one column chunk's values, page after page.
type cursor struct {
	pages  parquet.Pages
	vr     parquet.ValueReader
	page   parquet.Page
	buf    []parquet.Value
	i, n   int
	eof    bool
	maxDef int
	absent bool // the file has no such column: every row NULL

	// Strings are interned per column; consecutive rows often repeat the
	// last one (a pod's flows, its labels).
	strs map[string]*string
	last *string
}

// str returns the interned string of b.
func (c *cursor) str(b []byte) *string {
	if c.last != nil && *c.last == string(b) {
		return c.last
	}
	p, ok := c.strs[string(b)]
	if !ok {
		s := string(b)
		p = &s
		c.strs[s] = p
	}
	c.last = p
	return p
}

func (c *cursor) open(cc parquet.ColumnChunk, maxDef int) {
	c.close()
	c.pages, c.vr, c.i, c.n, c.eof, c.maxDef, c.absent = cc.Pages(), nil, 0, 0, false, maxDef, false
	if c.buf == nil {
		c.buf = make([]parquet.Value, 1024)
		c.strs = map[string]*string{}
	}
	// Interned per row group (whose dictionaries bound the distinct values):
	// over a month the table would hold every IP and name ever seen.
	clear(c.strs)
	c.last = nil
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

// peek returns the next value, nil at the end of the chunk. It is valid
// until the next call.
func (c *cursor) peek() (*parquet.Value, error) {
	for c.i == c.n {
		if c.eof {
			return nil, nil
		}
		if c.vr == nil {
			p, err := c.pages.ReadPage()
			if errors.Is(err, io.EOF) {
				c.eof = true
				continue
			}
			if err != nil {
				return nil, err
			}
			if c.page != nil {
				parquet.Release(c.page) // every value of it was used
			}
			c.page, c.vr = p, p.Values()
		}
		n, err := c.vr.ReadValues(c.buf)
		c.i, c.n = 0, n
		if errors.Is(err, io.EOF) {
			c.vr = nil
		} else if err != nil {
			return nil, err
		}
	}
	return &c.buf[c.i], nil
}

// colScan turns row groups into flowRow batches. One per goroutine.
type colScan struct {
	cur   []cursor
	rows  []flowRow
	u32s  []uint32
	strSl []string
	wls   []archive.Workload
	pols  []archive.Policy
}

func newColScan() *colScan { return &colScan{cur: make([]cursor, len(cols))} }

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

// next returns the next value of a column that must have one.
func (cur *cursor) next() (*parquet.Value, error) {
	v, err := cur.peek()
	if err == nil && v == nil {
		err = errors.New("fewer values than rows")
	}
	if err == nil {
		cur.i++
	}
	return v, err
}

// fill reads the values of len(rows) rows of one column into rows.
func (c *colScan) fill(cur *cursor, spec colSpec, rows []flowRow) error {
	if cur.absent {
		return nil // the rows were cleared: NULL
	}
	switch spec.kind {
	case kTime:
		for r := range rows {
			v, err := cur.next()
			if err != nil {
				return err
			}
			rows[r].Time = v.Int64()
		}
	case kStr:
		for r := range rows {
			v, err := cur.next()
			if err != nil {
				return err
			}
			if int(v.DefinitionLevel()) == cur.maxDef {
				*spec.str(&rows[r]) = cur.str(v.ByteArray())
			}
		}
	case kU32:
		for r := range rows {
			v, err := cur.next()
			if err != nil {
				return err
			}
			if int(v.DefinitionLevel()) == cur.maxDef {
				c.u32s = append(c.u32s, v.Uint32())
				*spec.u32(&rows[r]) = &c.u32s[len(c.u32s)-1]
			}
		}
	case kBool:
		for r := range rows {
			v, err := cur.next()
			if err != nil {
				return err
			}
			if int(v.DefinitionLevel()) == cur.maxDef {
				b := &boolVals[0]
				if v.Boolean() {
					b = &boolVals[1]
				}
				*spec.bl(&rows[r]) = b
			}
		}
	default:
		for r := range rows {
			if err := c.fillList(cur, spec, &rows[r]); err != nil {
				return err
			}
		}
	}
	return nil
}

// fillList reads one row of a list column: its values run until the next
// repetition level 0. Elements go to slabs that are only appended to until
// the batch ends, so the rows' slices stay valid (a slab that grows leaves
// the earlier slices on its old array, unchanged).
func (c *colScan) fillList(cur *cursor, spec colSpec, row *flowRow) error {
	v, err := cur.next()
	if err != nil {
		return err
	}
	start, k := -1, 0
	for {
		if int(v.DefinitionLevel()) == cur.maxDef {
			s := cur.str(v.ByteArray())
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
		if v, err = cur.peek(); err != nil {
			return err
		}
		if v == nil || v.RepetitionLevel() == 0 {
			break
		}
		cur.i++
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
// colScan on up to o.Parallel goroutines; add is never called
// concurrently and must not keep the rows.
func scanRows(ctx context.Context, sc *archive.Scanner, o archive.ScanOptions, add func([]flowRow)) error {
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !o.From.IsZero() {
		from = o.From.UnixMicro()
	}
	if !o.To.IsZero() {
		to = o.To.UnixMicro()
	}
	var mu sync.Mutex
	return archive.ScanFlowRowGroups(ctx, sc, o, newColScan, func(c *colScan, rg parquet.RowGroup) error {
		return c.rowGroup(rg, func(rows []flowRow) error {
			sel := rows[:0]
			for i := range rows {
				if t := rows[i].Time; t >= from && t < to {
					sel = append(sel, rows[i])
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
