package archive

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/parquet-go/parquet-go"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// RowReader reads the flows table's row groups column by column into rows
// of T: FlowRow, or a projection of it (a struct whose fields are fields of
// FlowRow, with their types and parquet tags; only its columns are read).
// It reads the columns a caller asks for, of the rows it asks for, page by
// page into buffers it reuses: no parquet.Value, no reflection and no
// allocation per row in steady state. parquet-go's row reader reconstructs
// every row through reflection and allocates per value, which costs more
// than everything else a reader of the archive does.
//
// Rows are filled in place: Read sets the fields of the columns it reads
// (NULL: nil), and leaves the others as they are. Strings are interned per
// row group and never change, so a caller may keep them; the values the
// rows' other pointers and slices point to belong to the reader until the
// next Begin (with Transient, the strings of plain pages too). A RowReader
// is not safe for concurrent use.
type RowReader[T any] struct {
	l       *rowLayout
	cur     []colCursor
	rg      parquet.RowGroup
	schema  *parquet.Schema
	chunks  []parquet.ColumnChunk
	missing Columns // leaves the row group does not have: NULL
	sl      readSlab
}

// readSlab holds what the rows' pointers and slices point to, from one
// Begin to the next.
type readSlab struct {
	u32s chunks[uint32]
	i32s chunks[int32]
	u64s chunks[uint64]
	strs []string
	wls  []Workload
	hdrs []Header
	pols []Policy
	// Transient strings: their bytes in buf, their headers in strPtrs.
	transient bool
	buf       []byte
	strPtrs   chunks[string]
}

// text returns a transient string of b's bytes.
func (s *readSlab) text(b []byte) *string {
	if len(b) == 0 {
		return s.strPtrs.ptr("")
	}
	if len(s.buf)+len(b) > cap(s.buf) {
		// The strings handed out keep the old array alive.
		s.buf = make([]byte, 0, max(64<<10, 2*cap(s.buf), len(b)))
	}
	k := len(s.buf)
	s.buf = append(s.buf, b...)
	return s.strPtrs.ptr(unsafe.String(&s.buf[k], len(b)))
}

// NewRowReader returns a reader of rows of T.
func NewRowReader[T any]() (*RowReader[T], error) {
	l, err := layoutOf(reflect.TypeFor[T]())
	if err != nil {
		return nil, err
	}
	return &RowReader[T]{l: l, cur: make([]colCursor, len(l.leaves))}, nil
}

// Columns returns the leaf columns of the named columns of T (the names of
// the parquet tags: "verdict", "source_labels").
func (r *RowReader[T]) Columns(names ...string) (Columns, error) { return r.l.columns(names...) }

// AllColumns is every leaf column of T.
func (r *RowReader[T]) AllColumns() Columns { return r.l.all() }

// FlowColumns returns the columns of T that hold the Flow fields of fs
// (whole top-level fields: a Flow built by FlowBuilder from a row of them
// has those fields as the Flow built from the whole row does).
func (r *RowReader[T]) FlowColumns(fs flow.FieldSet) Columns { return r.l.columnsOfFlowFields(fs) }

// FilterColumns returns the columns of T that decide the Flow fields of fs
// (a filter program's): as FlowColumns, except that of an endpoint or the
// IP header, whose fields are one column each, only the columns of the
// fields fs touches (a namespace filter reads source_namespace, not the
// label lists). parts are the messages so read in part: a Flow built of
// these columns lacks such a message where its columns read are all NULL,
// and the whole row may have it (see Null).
func (r *RowReader[T]) FilterColumns(fs flow.FieldSet) (cols Columns, parts []Part) {
	return r.l.columnsOfFlowLeaves(fs)
}

// Null reports whether every column of cols is NULL in row (as Read left
// it).
func (r *RowReader[T]) Null(cols Columns, row *T) bool {
	base := unsafe.Pointer(row)
	for i := range r.l.leaves {
		if !cols.has(i) {
			continue
		}
		sp := &r.l.leaves[i]
		p := unsafe.Add(base, sp.off)
		switch {
		case sp.shape == shapeScalar && sp.val == valI64:
			return false // required
		case sp.shape == shapeScalar:
			if *(*unsafe.Pointer)(p) != nil {
				return false
			}
		default: // a slice: its data pointer
			if *(*unsafe.Pointer)(p) != nil {
				return false
			}
		}
	}
	return true
}

// Reset makes the reader read rg, from its first row.
func (r *RowReader[T]) Reset(g RowGroup) {
	rg := g.rg
	r.Close()
	r.rg, r.schema, r.chunks = rg, rg.Schema(), rg.ColumnChunks()
	r.missing = Columns{}
}

// Close releases the pages of the row group being read.
func (r *RowReader[T]) Close() {
	for i := range r.cur {
		r.cur[i].close()
	}
	r.rg, r.schema, r.chunks = nil, nil, nil
}

// Transient makes the rows' strings valid only until the next Begin (a
// plain page's values, copied into a buffer the reader reuses) or Reset (a
// dictionary's values, copied once per row group), instead of strings of
// their own interned per row group: for a caller that is done with a row
// before it reads on (serve marshals each flow before the next), so that
// unique values (uuid, URLs) cost no allocation.
func (r *RowReader[T]) Transient() {
	r.sl.transient = true
	for i := range r.cur {
		r.cur[i].transient = &r.sl
	}
}

// NumRows is the row count of the row group being read.
func (r *RowReader[T]) NumRows() int64 { return r.rg.NumRows() }

// Begin makes the values that rows filled since the last Begin point to
// reusable: the caller no longer uses those rows' pointers and slices.
func (r *RowReader[T]) Begin() {
	s := &r.sl
	s.u32s.reset()
	s.i32s.reset()
	s.u64s.reset()
	s.strs, s.wls, s.hdrs, s.pols = s.strs[:0], s.wls[:0], s.hdrs[:0], s.pols[:0]
	s.strPtrs.reset()
	s.buf = s.buf[:0]
}

// cursor returns leaf i's cursor, opened on the row group; nil when the
// row group has no such column.
func (r *RowReader[T]) cursor(i int) (*colCursor, error) {
	c := &r.cur[i]
	if c.opened {
		return c, nil
	}
	if r.missing.has(i) {
		return nil, nil
	}
	path := strings.Split(r.l.leaves[i].path, ".")
	leaf, ok := r.schema.Lookup(path...)
	if !ok {
		if r.l.leaves[i].val == valI64 {
			return nil, fmt.Errorf("column %s: not in the file", r.l.leaves[i].path)
		}
		// A file of a schema without the column: NULL in every row.
		r.missing.add(i)
		return nil, nil
	}
	if err := c.open(r.chunks[leaf.ColumnIndex], r.schema, path); err != nil {
		return nil, err
	}
	return c, nil
}

// Int64s appends to dst the values of the required int64 column name (e.g.
// "time_ns") of every row of the row group.
func (r *RowReader[T]) Int64s(name string, dst []int64) ([]int64, error) {
	cols, err := r.l.columns(name)
	if err != nil {
		return dst, err
	}
	for i := range r.l.leaves {
		if !cols.has(i) {
			continue
		}
		if r.l.leaves[i].val != valI64 {
			return dst, fmt.Errorf("archive: column %s is not a required int64", name)
		}
		c, err := r.cursor(i)
		if err != nil {
			return dst, fmt.Errorf("column %s: %w", name, err)
		}
		if err := c.seek(0); err != nil {
			return dst, fmt.Errorf("column %s: %w", name, err)
		}
		for left := r.rg.NumRows(); left > 0; {
			if err := c.slot(); err != nil {
				return dst, fmt.Errorf("column %s: %w", name, err)
			}
			if c.defs != nil || c.idx != nil || c.i64s == nil || c.vi+c.n-c.i > len(c.i64s) {
				return dst, fmt.Errorf("column %s: not a plain required int64 column", name)
			}
			k := int(min(left, int64(c.n-c.i)))
			dst = append(dst, c.i64s[c.vi:c.vi+k]...)
			c.i, c.vi, c.row, left = c.i+k, c.vi+k, c.row+int64(k), left-int64(k)
		}
		return dst, nil
	}
	return dst, fmt.Errorf("archive: no column %s", name)
}

// Read fills the columns cols of rows with the row group's rows first,
// first+1, …: rows[i] is row first+i, filled when keep is nil or keep[i].
// Reading forward from where the last Read ended is the cheapest; rows
// skipped are not decoded, and a page that holds none of the rows read is
// not read when the file has an offset index.
func (r *RowReader[T]) Read(cols Columns, first int64, rows []T, keep []bool) error {
	if len(rows) == 0 {
		return nil
	}
	if first < 0 || first+int64(len(rows)) > r.rg.NumRows() {
		return fmt.Errorf("archive: rows [%d, %d) of a row group of %d", first, first+int64(len(rows)), r.rg.NumRows())
	}
	if keep != nil && len(keep) < len(rows) {
		return errors.New("archive: fewer keep flags than rows")
	}
	base := unsafe.Pointer(unsafe.SliceData(rows))
	stride := unsafe.Sizeof(rows[0])
	field := ""
	for i := range r.l.leaves {
		if !cols.has(i) {
			continue
		}
		sp := &r.l.leaves[i]
		// The first leaf read of a list of structs makes its elements.
		creator := sp.shape == shapeStructList && sp.field != field
		field = sp.field
		c, err := r.cursor(i)
		if err != nil {
			return err
		}
		if c == nil {
			if sp.shape != shapeStructList || creator {
				for k := range rows {
					if keep == nil || keep[k] {
						setNull(unsafe.Add(base, uintptr(k)*stride+sp.off), sp)
					}
				}
			}
			continue
		}
		if err := r.fill(c, sp, creator, first, base, stride, len(rows), keep); err != nil {
			return fmt.Errorf("column %s: %w", sp.path, err)
		}
	}
	return nil
}

func (r *RowReader[T]) fill(c *colCursor, sp *readLeaf, creator bool, first int64, base unsafe.Pointer, stride uintptr, n int, keep []bool) error {
	if err := c.seek(first); err != nil {
		return err
	}
	switch sp.shape {
	case shapeScalar:
		if c.maxRep != 0 {
			return errors.New("a repeated column read as one value a row")
		}
		return r.fillScalar(c, sp, base, stride, n, keep)
	case shapeList:
		if c.maxRep != 1 {
			return errors.New("not a list column")
		}
	case shapeStructList:
		if c.maxRep != 1 && !sp.nested || c.maxRep != 2 && sp.nested {
			return errors.New("not a list column")
		}
	}
	for k := 0; k < n; k++ {
		if keep != nil && !keep[k] {
			e := k + 1
			for e < n && !keep[e] {
				e++
			}
			if err := c.skipRows(int64(e - k)); err != nil {
				return err
			}
			k = e - 1
			continue
		}
		p := unsafe.Add(base, uintptr(k)*stride+sp.off)
		var err error
		switch {
		case sp.shape == shapeList:
			err = r.fillList(c, (*[]string)(p))
		case sp.elem == elemWorkload:
			err = fillStructs(c, sp, creator, (*[]Workload)(p), &r.sl.wls, &r.sl)
		case sp.elem == elemHeader:
			err = fillStructs(c, sp, creator, (*[]Header)(p), &r.sl.hdrs, &r.sl)
		case sp.elem == elemPolicy:
			err = fillStructs(c, sp, creator, (*[]Policy)(p), &r.sl.pols, &r.sl)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// setNull sets the field of a row at p that the leaf sp fills to NULL.
func setNull(p unsafe.Pointer, sp *readLeaf) {
	switch {
	case sp.shape == shapeScalar && sp.val == valI64:
		*(*int64)(p) = 0
	case sp.shape == shapeScalar:
		*(*unsafe.Pointer)(p) = nil
	case sp.shape == shapeList:
		*(*[]string)(p) = nil
	case sp.elem == elemWorkload:
		*(*[]Workload)(p) = nil
	case sp.elem == elemHeader:
		*(*[]Header)(p) = nil
	case sp.elem == elemPolicy:
		*(*[]Policy)(p) = nil
	}
}

// boolVals are what the rows' *bool fields point to.
var boolVals = [2]bool{false, true}

// fillScalar reads n rows of a column of one value a row, a page's run of
// slots at a time.
func (r *RowReader[T]) fillScalar(c *colCursor, sp *readLeaf, base unsafe.Pointer, stride uintptr, n int, keep []bool) error {
	for k := 0; k < n; {
		if err := c.slot(); err != nil {
			return err
		}
		start := c.i
		end := c.i + min(n-k, c.n-c.i)
		for ; c.i < end; c.i, k = c.i+1, k+1 {
			kept := keep == nil || keep[k]
			if c.defs != nil && int(c.defs[c.i]) != c.maxDef {
				if sp.val == valI64 {
					return errors.New("NULL in a required column")
				}
				if kept {
					*(*unsafe.Pointer)(unsafe.Add(base, uintptr(k)*stride+sp.off)) = nil
				}
				continue
			}
			if !kept {
				c.vi++
				continue
			}
			p := unsafe.Add(base, uintptr(k)*stride+sp.off)
			switch sp.val {
			case valI64:
				v, err := c.i64()
				if err != nil {
					return err
				}
				*(*int64)(p) = v
			case valStr:
				s, err := c.str()
				if err != nil {
					return err
				}
				*(**string)(p) = s
			case valU32:
				v, err := c.u32()
				if err != nil {
					return err
				}
				*(**uint32)(p) = r.sl.u32s.ptr(v)
			case valI32:
				v, err := c.u32()
				if err != nil {
					return err
				}
				*(**int32)(p) = r.sl.i32s.ptr(int32(v))
			case valU64:
				v, err := c.i64()
				if err != nil {
					return err
				}
				*(**uint64)(p) = r.sl.u64s.ptr(uint64(v))
			case valBool:
				v, err := c.boolean()
				if err != nil {
					return err
				}
				b := &boolVals[0]
				if v {
					b = &boolVals[1]
				}
				*(**bool)(p) = b
			}
		}
		c.row += int64(c.i - start)
	}
	return nil
}

// next moves past the current slot; false when the row ended (the next
// slot starts another row, or the chunk ended).
func (c *colCursor) next() (bool, error) {
	c.i++
	if c.i == c.n { // the row may go on in the next page
		ok, err := c.more()
		if err != nil || !ok {
			return false, err
		}
	}
	return c.rep() != 0, nil
}

// fillList reads one row of a list of strings into *dst. Elements go to a
// slab that is only appended to until Begin, so the rows' slices stay valid
// (a slab that grows leaves the earlier slices on its old array, unchanged).
func (r *RowReader[T]) fillList(c *colCursor, dst *[]string) error {
	if err := c.slot(); err != nil {
		return err
	}
	if c.rep() != 0 {
		return errors.New("a row starts with repetition level > 0")
	}
	d := c.def()
	start := len(r.sl.strs)
	for {
		if c.def() == c.maxDef {
			s, err := c.str()
			if err != nil {
				return err
			}
			r.sl.strs = append(r.sl.strs, *s)
		} else if c.def() >= c.elemDef[1] {
			r.sl.strs = append(r.sl.strs, "") // a NULL element
		}
		more, err := c.next()
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	c.row++
	switch {
	case d < c.listDef[1]:
		*dst = nil
	case len(r.sl.strs) == start:
		*dst = []string{} // an empty list, which is not NULL
	default:
		*dst = r.sl.strs[start:len(r.sl.strs):len(r.sl.strs)]
	}
	return nil
}

// fillStructs reads one row of a leaf of a list of structs of E into *dst:
// the creator leaf makes the row's elements in slab (appended to until
// Begin) and sets *dst; the other leaves of the list set their field in
// the elements *dst holds.
func fillStructs[E any](c *colCursor, sp *readLeaf, creator bool, dst *[]E, slab *[]E, sl *readSlab) error {
	if err := c.slot(); err != nil {
		return err
	}
	if c.rep() != 0 {
		return errors.New("a row starts with repetition level > 0")
	}
	d0 := c.def()
	start := len(*slab)
	k := -1
	lstart := 0 // the current element's labels in sl.strs (nested)
	elem := func() (unsafe.Pointer, error) {
		if creator {
			return unsafe.Pointer(&(*slab)[start+k]), nil
		}
		if k >= len(*dst) {
			return nil, fmt.Errorf("%s: more elements than the list's first column has", sp.path)
		}
		return unsafe.Pointer(&(*dst)[k]), nil
	}
	endLabels := func() error {
		if !sp.nested || k < 0 {
			return nil
		}
		e, err := elem()
		if err != nil {
			return err
		}
		if len(sl.strs) > lstart {
			*(*[]string)(unsafe.Add(e, sp.elemOff)) = sl.strs[lstart:len(sl.strs):len(sl.strs)]
		} else {
			*(*[]string)(unsafe.Add(e, sp.elemOff)) = nil
		}
		return nil
	}
	for {
		d, rp := c.def(), c.rep()
		if rp <= 1 && d >= c.elemDef[1] { // an element starts
			if err := endLabels(); err != nil {
				return err
			}
			k++
			if creator {
				var zero E
				*slab = append(*slab, zero)
			}
			lstart = len(sl.strs)
		}
		if d == c.maxDef {
			e, err := elem()
			if err != nil {
				return err
			}
			switch {
			case sp.nested:
				s, err := c.str()
				if err != nil {
					return err
				}
				sl.strs = append(sl.strs, *s)
			case sp.val == valStr:
				s, err := c.str()
				if err != nil {
					return err
				}
				*(*string)(unsafe.Add(e, sp.elemOff)) = *s
			case sp.val == valU64:
				v, err := c.i64()
				if err != nil {
					return err
				}
				*(*uint64)(unsafe.Add(e, sp.elemOff)) = uint64(v)
			}
		}
		more, err := c.next()
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	if err := endLabels(); err != nil {
		return err
	}
	c.row++
	if !creator {
		return nil
	}
	switch {
	case d0 < c.listDef[1]:
		*dst = nil
	case k < 0:
		*dst = []E{} // an empty list, which is not NULL
	default:
		*dst = (*slab)[start:len(*slab):len(*slab)]
	}
	return nil
}
