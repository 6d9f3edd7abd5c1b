package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"
	"github.com/parquet-go/parquet-go/format"
)

// Compaction copies a flows file into its output column by column: each
// leaf's levels and values are read from the input's pages as arrays and
// appended to the output's leaf, and a dictionary value is looked up in the
// output's dictionary once per input dictionary, not once per row. Going
// through FlowRows instead (parquet-go's reflective row reader, then
// shredding again) allocates per value and costs several times as much per
// row: on a busy node the daemon's hourly compaction would need a large
// part of a core all day (BenchmarkCompactMerge runs both paths;
// bench/README.md). The rows, their order, and the output's pages, row
// groups and bytes are those of the row path (TestCopyColumnsMatchesRows);
// only files whose schema is exactly the writer's are copied so, others
// (an older collector's) go through rows, which maps columns by name.

// errNotCopyable is returned by copyFlowFile for a file of another schema.
var errNotCopyable = errors.New("schema differs from the writer's")

// copyBatch is the rows a copy appends between page checks: the batch the
// row path reads (mergeRun), so that both cut pages at the same rows.
const copyBatch = 4096

// copier reads one input file's leaf columns. Its buffers are kept from
// file to file.
type copier struct {
	cols [shredLeaves]colStream
}

// colStream is one leaf column of the input file: its chunk in each row
// group, read page after page.
type colStream struct {
	chunks []parquet.ColumnChunk
	next   int // the next chunk to read
	pages  parquet.Pages
	page   parquet.Page

	defs, reps []byte // the page's levels (nil when the column has none)
	i, n       int    // the next slot of the page, and its slot count
	vi         int    // the next value of the page

	// The page's values: idx indexes the dictionary's (plain pages: nil).
	idx    []int32
	nvals  int // values in the arrays below (the dictionary's, with idx)
	bytes  []byte
	offs   []uint32
	i32s   []int32
	i64s   []int64
	bits   []byte
	dict   parquet.Dictionary
	xlat   []int32 // dictionary index -> output dictionary index + 1 (0: not looked up)
	xgen   uint64  // the output chunk xlat is for (leaf.gen)
	nPages int
}

// copyFlowFile appends every row of the flows file at path to w and returns
// how many. It returns errNotCopyable, having appended nothing, for a file
// whose schema is not exactly the writer's.
func (w *flowWriter) copyFlowFile(ctx context.Context, path string, cp *copier) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	f, pf, err := openParquet(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if !slices.EqualFunc(pf.Metadata().Schema, w.layout.schema, func(a, b format.SchemaElement) bool { return reflect.DeepEqual(a, b) }) {
		return 0, errNotCopyable
	}
	groups := pf.RowGroups()
	var rows int64
	for c := range cp.cols {
		s := &cp.cols[c]
		s.reset()
		for _, rg := range groups {
			s.chunks = append(s.chunks, rg.ColumnChunks()[c])
		}
	}
	defer func() {
		for c := range cp.cols {
			cp.cols[c].reset()
		}
	}()
	for _, rg := range groups {
		rows += rg.NumRows()
	}
	// From here on a failure leaves w with part of the file: it is sticky.
	if err := w.copyRows(ctx, cp, rows); err != nil {
		w.err = err
		return 0, err
	}
	for c := range cp.cols {
		if err := cp.cols[c].atEnd(); err != nil {
			w.err = fmt.Errorf("column %s: %w", shredPaths[c], err)
			return 0, w.err
		}
	}
	return rows, nil
}

// copyRows appends the next rows rows of cp's columns in the batches the
// row path writes (copyBatch), so that both cut pages at the same rows.
func (w *flowWriter) copyRows(ctx context.Context, cp *copier, rows int64) error {
	for rows > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(copyBatch, rows))
		rows -= int64(n)
		err := w.add(n, func(k int) error {
			for c := range w.leaves {
				if err := cp.cols[c].copyRows(&w.leaves[c], k); err != nil {
					return fmt.Errorf("column %s: %w", shredPaths[c], err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *colStream) reset() {
	s.release()
	if s.pages != nil {
		_ = s.pages.Close()
		s.pages = nil
	}
	clear(s.chunks)
	s.chunks, s.next = s.chunks[:0], 0
	s.i, s.n, s.vi, s.nPages = 0, 0, 0, 0
	s.dict = nil
}

func (s *colStream) release() {
	if s.page != nil {
		parquet.Release(s.page)
		s.page = nil
	}
}

// nextPage loads the column's next page with slots; false at its end.
func (s *colStream) nextPage() (bool, error) {
	for {
		if s.pages == nil {
			if s.next == len(s.chunks) {
				return false, nil
			}
			s.pages = s.chunks[s.next].Pages()
			s.next++
		}
		p, err := s.pages.ReadPage()
		if errors.Is(err, io.EOF) {
			_ = s.pages.Close()
			s.pages = nil
			continue
		}
		if err != nil {
			return false, err
		}
		s.release()
		s.page = p
		s.nPages++
		if err := s.load(p); err != nil {
			return false, fmt.Errorf("page %d: %w", s.nPages, err)
		}
		if s.n > 0 {
			return true, nil
		}
	}
}

// load makes p the current page.
func (s *colStream) load(p parquet.Page) error {
	s.defs, s.reps = p.DefinitionLevels(), p.RepetitionLevels()
	s.i, s.n, s.vi = 0, int(p.NumValues()), 0
	if s.defs != nil && len(s.defs) != s.n || s.reps != nil && len(s.reps) != s.n {
		return fmt.Errorf("%d values with %d definition and %d repetition levels", s.n, len(s.defs), len(s.reps))
	}
	vals := p.Data()
	s.idx = nil
	if d := p.Dictionary(); d != nil {
		s.idx = vals.Int32()
		if d != s.dict {
			s.dict = d
			s.xlat = slices.Grow(s.xlat[:0], d.Len())[:d.Len()]
			clear(s.xlat)
		}
		vals = d.Page().Data()
	}
	s.bytes, s.offs, s.i32s, s.i64s, s.bits = nil, nil, nil, nil, nil
	switch vals.Kind() {
	case encoding.ByteArray:
		s.bytes, s.offs = vals.ByteArray()
		s.nvals = max(len(s.offs)-1, 0)
	case encoding.Int32:
		s.i32s = vals.Int32()
		s.nvals = len(s.i32s)
	case encoding.Int64:
		s.i64s = vals.Int64()
		s.nvals = len(s.i64s)
	case encoding.Boolean:
		s.bits = vals.Boolean()
		s.nvals = len(s.bits) * 8
	default:
		return fmt.Errorf("values of kind %v", vals.Kind())
	}
	return nil
}

// copyRows appends the next rows rows of the column to l.
func (s *colStream) copyRows(l *leaf, rows int) error {
	if s.xgen != l.gen { // the output began a chunk: a new dictionary
		clear(s.xlat)
		s.xgen = l.gen
	}
	if l.maxRep == 0 {
		for rows > 0 {
			if s.i == s.n {
				ok, err := s.nextPage()
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("%d rows fewer than the footer says", rows)
				}
			}
			k := min(rows, s.n-s.i)
			if err := s.take(l, k); err != nil {
				return err
			}
			rows -= k
		}
		return nil
	}
	// A repeated column: a row is the slots from one at repetition level 0
	// to the next such slot; a row may continue on the next page.
	for {
		if s.i == s.n {
			ok, err := s.nextPage()
			if err != nil {
				return err
			}
			if !ok {
				if rows == 0 {
					return nil
				}
				return fmt.Errorf("%d rows fewer than the footer says", rows)
			}
			if s.reps == nil {
				return errors.New("repeated column without repetition levels")
			}
		}
		j := s.i
		for ; j < s.n; j++ {
			if s.reps[j] == 0 {
				if rows == 0 {
					break
				}
				rows--
			}
		}
		if err := s.take(l, j-s.i); err != nil {
			return err
		}
		if j < s.n {
			return nil
		}
	}
}

// take appends the page's next k slots to l.
func (s *colStream) take(l *leaf, k int) error {
	a, b := s.i, s.i+k
	m := k // values: the slots at the column's maximum definition level
	if l.maxDef > 0 {
		if s.defs == nil { // a page without levels: every slot defined
			for range k {
				l.defs = append(l.defs, l.maxDef)
			}
		} else {
			d := s.defs[a:b]
			l.defs = append(l.defs, d...)
			m = bytes.Count(d, []byte{l.maxDef})
		}
	}
	if l.maxRep > 0 {
		r := s.reps[a:b]
		l.reps = append(l.reps, r...)
		l.rows += bytes.Count(r, []byte{0})
	}
	s.i = b
	if m == 0 {
		return nil
	}
	v := s.vi
	if s.idx != nil {
		if v+m > len(s.idx) {
			return fmt.Errorf("page of %d dictionary indexes, %d values wanted", len(s.idx), v+m)
		}
		for _, j := range s.idx[v : v+m] {
			if uint(j) >= uint(s.nvals) {
				return fmt.Errorf("dictionary index %d of %d", j, s.nvals)
			}
		}
	} else if v+m > s.nvals {
		return fmt.Errorf("page of %d values, %d wanted", s.nvals, v+m)
	}
	s.vi += m
	switch l.kind {
	case leafDict:
		if s.offs == nil {
			return errors.New("not a byte array column")
		}
		if s.idx == nil {
			for j := v; j < v+m; j++ {
				l.idx = append(l.idx, l.intern(s.bytes[s.offs[j]:s.offs[j+1]]))
			}
			break
		}
		for _, j := range s.idx[v : v+m] {
			id := s.xlat[j] - 1
			if id < 0 {
				id = l.intern(s.bytes[s.offs[j]:s.offs[j+1]])
				s.xlat[j] = id + 1
			}
			l.idx = append(l.idx, id)
		}
		l.lastIdx = l.idx[len(l.idx)-1]
	case leafPlainBytes, leafDeltaBytes:
		if s.offs == nil {
			return errors.New("not a byte array column")
		}
		if s.idx == nil { // a run of values, contiguous in the page
			base := uint32(len(l.bytes)) - s.offs[v]
			l.bytes = append(l.bytes, s.bytes[s.offs[v]:s.offs[v+m]]...)
			for _, o := range s.offs[v+1 : v+m+1] {
				l.offs = append(l.offs, o+base)
			}
			break
		}
		for _, j := range s.idx[v : v+m] {
			l.bytes = append(l.bytes, s.bytes[s.offs[j]:s.offs[j+1]]...)
			l.offs = append(l.offs, uint32(len(l.bytes)))
		}
	case leafInt32:
		if s.i32s == nil {
			return errors.New("not an INT32 column")
		}
		for j := v; j < v+m; j++ {
			x := s.i32s[s.at(j)]
			if l.u32 {
				l.ints = append(l.ints, int64(uint32(x)))
			} else {
				l.ints = append(l.ints, int64(x))
			}
		}
	case leafInt64, leafUint64:
		if s.i64s == nil {
			return errors.New("not an INT64 column")
		}
		if s.idx == nil {
			l.ints = append(l.ints, s.i64s[v:v+m]...)
			break
		}
		for j := v; j < v+m; j++ {
			l.ints = append(l.ints, s.i64s[s.at(j)])
		}
	case leafBool:
		if s.bits == nil {
			return errors.New("not a BOOLEAN column")
		}
		for j := v; j < v+m; j++ {
			x := s.at(j)
			l.bools = append(l.bools, s.bits[x>>3]&(1<<(x&7)) != 0)
		}
	}
	return nil
}

// at is the position of the page's value j in the value arrays (take has
// checked the dictionary indexes).
func (s *colStream) at(j int) int {
	if s.idx == nil {
		return j
	}
	return int(s.idx[j])
}

// atEnd checks that the column has no slot left after the footer's rows.
func (s *colStream) atEnd() error {
	if s.i < s.n {
		return fmt.Errorf("%d values past the footer's rows", s.n-s.i)
	}
	ok, err := s.nextPage()
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("%d values past the footer's rows", s.n)
	}
	return nil
}
