package archive

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/parquet-go/parquet-go/format"
)

// pageBounds records the page's NULL count and bounds (pageNulls and the
// rest).
func (l *leaf) pageBounds(nulls int) {
	l.pageNulls = append(l.pageNulls, int64(nulls))
	null := l.valueCount() == 0
	l.pageNull = append(l.pageNull, null)
	if !l.isString() {
		var lo, hi int64
		if !null {
			lo, hi = l.intBounds()
		}
		l.pageLo, l.pageHi = append(l.pageLo, lo), append(l.pageHi, hi)
		return
	}
	switch {
	case null:
		l.boundOffs = append(l.boundOffs, uint32(len(l.bounds)))
	case l.kind == leafDict:
		lo, hi := l.dictBounds()
		l.bounds = append(l.bounds, lo...)
		l.boundOffs = append(l.boundOffs, uint32(len(l.bounds)))
		l.bounds = append(l.bounds, hi...)
	default:
		lo, hi := l.bytesBounds()
		l.bounds = append(l.bounds, lo...)
		l.boundOffs = append(l.boundOffs, uint32(len(l.bounds)))
		l.bounds = append(l.bounds, hi...)
	}
	l.boundOffs = append(l.boundOffs, uint32(len(l.bounds)))
}

// dictBounds are the page's least and greatest dictionary value, each
// distinct value compared once.
func (l *leaf) dictBounds() (lo, hi string) {
	if len(l.stamp) < len(l.dictVals) {
		l.stamp = append(l.stamp, make([]uint32, len(l.dictVals)-len(l.stamp))...)
	}
	if l.pageNo++; l.pageNo == 0 {
		clear(l.stamp)
		l.pageNo = 1
	}
	lo, hi = l.dictVals[l.idx[0]], l.dictVals[l.idx[0]]
	for _, id := range l.idx {
		if l.stamp[id] == l.pageNo {
			continue
		}
		l.stamp[id] = l.pageNo
		if v := l.dictVals[id]; v < lo {
			lo = v
		} else if v > hi {
			hi = v
		}
	}
	return lo, hi
}

// bytesBounds are the page's least and greatest string.
func (l *leaf) bytesBounds() (lo, hi []byte) {
	lo = l.bytes[l.offs[0]:l.offs[1]]
	hi = lo
	for i := 1; i+1 < len(l.offs); i++ {
		if v := l.bytes[l.offs[i]:l.offs[i+1]]; bytes.Compare(v, lo) < 0 {
			lo = v
		} else if bytes.Compare(v, hi) > 0 {
			hi = v
		}
	}
	return lo, hi
}

// intBounds are the page's least and greatest number in the column's order.
func (l *leaf) intBounds() (lo, hi int64) {
	if l.kind == leafBool {
		lo, hi = 1, 0
		for _, v := range l.bools {
			b := b2i(v)
			lo, hi = min(lo, b), max(hi, b)
		}
		return lo, hi
	}
	unsigned := l.kind == leafUint64
	lo, hi = l.ints[0], l.ints[0]
	for _, v := range l.ints[1:] {
		if less(v, lo, unsigned) {
			lo = v
		} else if less(hi, v, unsigned) {
			hi = v
		}
	}
	return lo, hi
}

// isString reports whether the leaf's bounds are strings (bounds) rather
// than numbers (pageLo, pageHi).
func (l *leaf) isString() bool {
	return l.kind == leafDict || l.kind == leafPlainBytes || l.kind == leafDeltaBytes
}

// pageBound returns page i's minimum (hi false) or maximum, encoded as the
// column's physical type.
func (l *leaf) pageBound(dst []byte, i int, hi bool) []byte {
	if l.isString() {
		return append(dst, l.stringBound(i, hi)...)
	}
	v := l.pageLo[i]
	if hi {
		v = l.pageHi[i]
	}
	switch l.kind {
	case leafInt32:
		return binary.LittleEndian.AppendUint32(dst, uint32(v))
	case leafBool:
		return append(dst, byte(v))
	}
	return binary.LittleEndian.AppendUint64(dst, uint64(v))
}

// stringBound is page i's minimum (hi false) or maximum in bounds.
func (l *leaf) stringBound(i int, hi bool) []byte {
	j := 2 * i
	if hi {
		j++
	}
	return l.bounds[l.boundOffs[j]:l.boundOffs[j+1]]
}

// comparePages compares page a's bound with page b's (both with values):
// their minimums, or with hi their maximums.
func (l *leaf) comparePages(a, b int, hi bool) int {
	if l.isString() {
		return bytes.Compare(l.stringBound(a, hi), l.stringBound(b, hi))
	}
	x, y := l.pageLo[a], l.pageLo[b]
	if hi {
		x, y = l.pageHi[a], l.pageHi[b]
	}
	switch unsigned := l.kind == leafUint64; {
	case less(x, y, unsigned):
		return -1
	case less(y, x, unsigned):
		return 1
	}
	return 0
}

// tooLong reports whether page i has a string bound past maxStatBytes.
func (l *leaf) tooLong(i int) bool {
	return l.isString() && (len(l.stringBound(i, false)) > maxStatBytes || len(l.stringBound(i, true)) > maxStatBytes)
}

// columnIndex is the chunk's column index (nil: none, when a page has a
// string bound past maxStatBytes), made before writeChunk resets the chunk.
func (l *leaf) columnIndex() *format.ColumnIndex {
	n := len(l.pageNull)
	if n == 0 {
		return nil
	}
	ci := &format.ColumnIndex{
		NullPages:  slices.Clone(l.pageNull),
		MinValues:  make([][]byte, n),
		MaxValues:  make([][]byte, n),
		NullCounts: slices.Clone(l.pageNulls),
	}
	asc, dsc, prev := true, true, -1
	for i, null := range l.pageNull {
		if null { // empty bounds, as the format asks
			ci.MinValues[i], ci.MaxValues[i] = []byte{}, []byte{}
			continue
		}
		if l.tooLong(i) {
			return nil
		}
		if prev >= 0 {
			lo, hi := l.comparePages(prev, i, false), l.comparePages(prev, i, true)
			asc = asc && lo <= 0 && hi <= 0
			dsc = dsc && lo >= 0 && hi >= 0
		}
		prev = i
		ci.MinValues[i], ci.MaxValues[i] = l.pageBound(nil, i, false), l.pageBound(nil, i, true)
	}
	switch {
	case asc:
		ci.BoundaryOrder = format.Ascending
	case dsc:
		ci.BoundaryOrder = format.Descending
	}
	return ci
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// less orders int64s, or their bits as uint64s.
func less(a, b int64, unsigned bool) bool {
	if unsigned {
		return uint64(a) < uint64(b)
	}
	return a < b
}

// maxStatBytes bounds a string statistic: a longer minimum or maximum (a URL,
// an extension's JSON) is left out rather than truncated.
const maxStatBytes = 1 << 10

// statistics are the chunk's NULL count and bounds: its pages' least
// minimum and greatest maximum (a string bound past maxStatBytes left out).
func (l *leaf) statistics() format.Statistics {
	var st format.Statistics
	lo, hi := -1, -1 // the pages that hold them
	for i, null := range l.pageNull {
		st.NullCount += l.pageNulls[i]
		if null {
			continue
		}
		if lo < 0 || l.comparePages(i, lo, false) < 0 {
			lo = i
		}
		if hi < 0 || l.comparePages(i, hi, true) > 0 {
			hi = i
		}
	}
	if lo < 0 {
		return st
	}
	st.MinValue, st.MaxValue = l.pageBound(nil, lo, false), l.pageBound(nil, hi, true)
	if len(st.MinValue) > maxStatBytes || len(st.MaxValue) > maxStatBytes {
		st.MinValue, st.MaxValue = nil, nil
	}
	return st
}
