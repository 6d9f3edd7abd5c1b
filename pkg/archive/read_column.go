package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
)

// colCursor reads one column chunk, page after page, a row at a time: a
// row is the slots from one repetition level 0 to the next; a slot is one
// definition (and repetition) level, and the value of the slots whose level
// is maxDef. Pages are read column-wise: their levels, and their values as
// dictionary indexes or plain arrays, never as parquet.Value. A cursor only
// moves forward; seeking back reopens the chunk, and seeking forward past
// the current page jumps by the offset index without reading the pages in
// between.
type colCursor struct {
	cc     parquet.ColumnChunk
	pages  parquet.Pages
	page   parquet.Page
	oi     parquet.OffsetIndex // nil: the chunk has none (pages are read one by one)
	pageNo int                 // the current page's index in oi
	defs   []byte              // the page's levels (nil: every slot maxDef, or rep 0)
	reps   []byte
	i, n   int   // the next slot of the page, and its slot count
	vi     int   // the next non-NULL value of the page
	row    int64 // the row the next slot starts (the cursor is between rows)
	eof    bool
	opened bool

	maxDef, maxRep int
	// listDef[k] and elemDef[k] are, for the k-th repeated level (1 or 2),
	// the definition levels at which the list is there (maybe empty) and
	// at which an element of it is.
	listDef, elemDef [3]int

	// The page's values: idx indexes the dictionary's (plain pages: nil).
	idx   []int32
	bytes []byte // byte arrays: bytes[offs[j]:offs[j+1]]
	offs  []uint32
	u32s  []uint32
	i64s  []int64
	bits  []byte // booleans, LSB first

	// Strings are interned: a dictionary entry once per row group (dict:
	// the dictionary dictStr caches), a plain page's value through strs.
	// Interned strings never change, so a reader may keep them.
	dict    parquet.Dictionary
	dictStr []*string
	strs    map[string]*string
	// transient, when set, holds a plain page's strings instead of strs,
	// until the reader's next Begin.
	transient *readSlab
	// With transient, the dictionary's strings: their bytes copied into
	// dictBuf once per dictionary, their headers in dictVals.
	dictBuf  []byte
	dictVals []string
}

// open makes the cursor read cc (a leaf of schema at path) from row 0.
func (c *colCursor) open(cc parquet.ColumnChunk, schema *parquet.Schema, path []string) error {
	c.close()
	leaf, ok := schema.Lookup(path...)
	if !ok {
		return fmt.Errorf("no column %s", joinPath(path))
	}
	c.cc, c.maxDef, c.maxRep = cc, leaf.MaxDefinitionLevel, leaf.MaxRepetitionLevel
	if c.maxRep > 2 {
		return fmt.Errorf("column %s: %d repetition levels", joinPath(path), c.maxRep)
	}
	// The levels of the path's nodes: each optional or repeated node adds
	// a definition level; a repeated one starts a list level.
	var node parquet.Node = schema
	d, r := 0, 0
	for _, name := range path {
		node = fieldOf(node, name)
		if node == nil {
			return fmt.Errorf("no column %s", joinPath(path))
		}
		if node.Repeated() {
			r++
			c.listDef[r], c.elemDef[r] = d, d+1
		}
		if node.Optional() || node.Repeated() {
			d++
		}
	}
	c.oi = nil
	if oi, err := cc.OffsetIndex(); err == nil && oi.NumPages() > 0 {
		c.oi = oi
	}
	if c.strs == nil {
		c.strs = map[string]*string{}
	}
	// Interned per row group (whose dictionaries bound the distinct
	// values): over a month the table would hold every IP and name seen.
	clear(c.strs)
	c.dict = nil
	c.rewind()
	c.opened = true
	return nil
}

func fieldOf(n parquet.Node, name string) parquet.Node {
	for _, f := range n.Fields() {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

func joinPath(p []string) string { return fmt.Sprint(p) }

// rewind places the cursor before row 0.
func (c *colCursor) rewind() {
	c.release()
	c.pages = c.cc.Pages()
	c.pageNo, c.i, c.n, c.vi, c.row, c.eof = -1, 0, 0, 0, 0, false
	c.defs, c.reps = nil, nil
}

func (c *colCursor) release() {
	if c.page != nil {
		parquet.Release(c.page)
		c.page = nil
	}
	if c.pages != nil {
		_ = c.pages.Close()
		c.pages = nil
	}
}

func (c *colCursor) close() {
	c.release()
	c.cc, c.oi, c.opened = nil, nil, false
}

// more makes c.i a slot of the current page; false at the end of the chunk.
func (c *colCursor) more() (bool, error) {
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
		c.pageNo++
		if err := c.load(p); err != nil {
			return false, err
		}
	}
	return true, nil
}

// slot is more for a column that must have another slot.
func (c *colCursor) slot() error {
	ok, err := c.more()
	if err == nil && !ok {
		err = errors.New("fewer values than rows")
	}
	return err
}

// load makes p the current page.
func (c *colCursor) load(p parquet.Page) error {
	c.defs, c.reps = p.DefinitionLevels(), p.RepetitionLevels()
	c.i, c.n, c.vi = 0, int(p.NumValues()), 0
	if c.defs != nil && len(c.defs) != c.n || c.reps != nil && len(c.reps) != c.n {
		return fmt.Errorf("page of %d values with %d definition and %d repetition levels", c.n, len(c.defs), len(c.reps))
	}
	if c.maxRep > 0 && c.n > 0 && c.reps != nil && c.reps[0] != 0 {
		return errors.New("a page that does not start a row")
	}
	vals := p.Data()
	c.idx = nil
	if d := p.Dictionary(); d != nil {
		c.idx = vals.Int32()
		if d != c.dict {
			c.dict = d
			c.dictStr = slices.Grow(c.dictStr[:0], d.Len())[:d.Len()]
			clear(c.dictStr)
			c.dictVals = c.dictVals[:0]
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

func (c *colCursor) def() int {
	if c.defs == nil {
		return c.maxDef
	}
	return int(c.defs[c.i])
}

func (c *colCursor) rep() int {
	if c.reps == nil {
		return 0
	}
	return int(c.reps[c.i])
}

// seek places the cursor before row.
func (c *colCursor) seek(row int64) error {
	if row < c.row {
		c.rewind()
	}
	if row == c.row {
		return nil
	}
	// Past the current page: jump to the page that holds row, if the
	// offset index says which.
	if c.oi != nil {
		target := c.pageNo
		for target+1 < c.oi.NumPages() && c.oi.FirstRowIndex(target+1) <= row {
			target++
		}
		if target > c.pageNo {
			first := c.oi.FirstRowIndex(target)
			if err := c.pages.SeekToRow(first); err != nil {
				return err
			}
			if c.page != nil {
				parquet.Release(c.page)
				c.page = nil
			}
			c.pageNo, c.i, c.n, c.vi, c.row, c.eof = target-1, 0, 0, 0, first, false
		}
	}
	return c.skipRows(row - c.row)
}

// skipRows moves past n rows, a page's run at a time.
func (c *colCursor) skipRows(n int64) error {
	if c.maxRep != 0 {
		return c.skipListRows(n)
	}
	for n > 0 {
		if err := c.slot(); err != nil {
			return err
		}
		k := int(min(n, int64(c.n-c.i)))
		if c.defs == nil {
			c.vi += k
		} else {
			for _, d := range c.defs[c.i : c.i+k] {
				if int(d) == c.maxDef {
					c.vi++
				}
			}
		}
		c.i += k
		c.row += int64(k)
		n -= int64(k)
	}
	return nil
}

// skipListRows moves past n rows of a repeated column: a row ends where
// the next slot of repetition level 0 starts another (a page starts a row,
// so rows end with their page at the latest), and the values skipped are
// the slots of level maxDef.
func (c *colCursor) skipListRows(n int64) error {
	for n > 0 {
		if err := c.slot(); err != nil {
			return err
		}
		j := c.i
		for ; n > 0 && j < c.n; n-- {
			if c.reps == nil {
				j++
			} else if k := bytes.IndexByte(c.reps[j+1:c.n], 0); k < 0 {
				j = c.n
			} else {
				j += 1 + k
			}
			c.row++
		}
		if c.defs == nil {
			c.vi += j - c.i
		} else {
			c.vi += bytes.Count(c.defs[c.i:j], []byte{byte(c.maxDef)})
		}
		c.i = j
	}
	return nil
}

// value returns the position of the current slot's value in the page's
// value arrays and moves past it; the slot's level must be maxDef.
func (c *colCursor) value(n int) (int, error) {
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
func (c *colCursor) str() (*string, error) {
	if c.offs == nil {
		return nil, errors.New("not a byte array column")
	}
	if c.idx != nil && c.vi < len(c.idx) {
		if j := c.idx[c.vi]; uint(j) < uint(len(c.dictStr)) {
			if p := c.dictStr[j]; p != nil {
				c.vi++
				return p, nil
			}
		}
	}
	j, err := c.value(len(c.offs) - 1)
	if err != nil {
		return nil, err
	}
	b := c.bytes[c.offs[j]:c.offs[j+1]]
	if c.transient != nil {
		if c.idx == nil {
			return c.transient.text(b), nil
		}
		if len(c.dictVals) != len(c.dictStr) {
			c.loadDictText()
		}
		c.dictStr[j] = &c.dictVals[j]
		return c.dictStr[j], nil
	}
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

// loadDictText copies the current dictionary's values into dictBuf, and
// makes dictVals their strings.
func (c *colCursor) loadDictText() {
	n := len(c.dictStr)
	c.dictBuf = append(c.dictBuf[:0], c.bytes[c.offs[0]:c.offs[n]]...)
	c.dictVals = slices.Grow(c.dictVals[:0], n)[:n]
	for j := range n {
		a, b := c.offs[j]-c.offs[0], c.offs[j+1]-c.offs[0]
		if a == b {
			c.dictVals[j] = ""
		} else {
			c.dictVals[j] = unsafe.String(&c.dictBuf[a], b-a)
		}
	}
}

func (c *colCursor) u32() (uint32, error) {
	if c.u32s == nil {
		return 0, errors.New("not an int32 column")
	}
	j, err := c.value(len(c.u32s))
	if err != nil {
		return 0, err
	}
	return c.u32s[j], nil
}

func (c *colCursor) i64() (int64, error) {
	if c.i64s == nil {
		return 0, errors.New("not an int64 column")
	}
	j, err := c.value(len(c.i64s))
	if err != nil {
		return 0, err
	}
	return c.i64s[j], nil
}

func (c *colCursor) boolean() (bool, error) {
	if c.bits == nil {
		return false, errors.New("not a boolean column")
	}
	j, err := c.value(len(c.bits) * 8)
	if err != nil {
		return false, err
	}
	return c.bits[j>>3]&(1<<(j&7)) != 0, nil
}
