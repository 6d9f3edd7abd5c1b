package archive

import (
	"slices"

	"github.com/parquet-go/parquet-go/format"
)

// leaf is one leaf column: the page being built and the column chunk's
// dictionary, statistics and compressed pages.
type leaf struct {
	leafSpec

	// The page being built.
	defs, reps []uint8
	rows       int      // rows of a repeated column (entries at repetition level 0)
	idx        []int32  // leafDict
	ints       []int64  // leafInt32, leafInt64, leafUint64 (its bits)
	bytes      []byte   // leafPlainBytes, leafDeltaBytes: the values, concatenated
	offs       []uint32 // value i is bytes[offs[i]:offs[i+1]]
	bools      []bool

	// The column chunk.
	dict     map[string]int32
	dictVals []string
	lastIdx  int32 // the last value's dictionary index, or -1
	// dslots caches str's dictionary lookups by strSlot: the index + 1 of
	// the value last looked up in each slot (0: none), checked against
	// dictVals, so that a value seen recently costs a string compare
	// instead of the map's hash. Made once the leaf has looked up
	// dictSlotsAfter values (misses counts them), so that the leaves of
	// small files (an import of many nodes holds one file per node) do
	// not each hold 4 KiB for it.
	dslots   *[dictSlots]int32
	misses   int
	lists    []listMemo // strList's lists, by hint (listSlots, made at its first list)
	gen      uint64     // counts the chunks begun: a new one has a new dictionary
	values   int64      // level entries
	pages    []byte     // headers and compressed bodies of the chunk's data pages
	rawSize  int64      // the same, uncompressed
	nPages   int
	chunkRow int64                 // rows of the chunk before the page being built
	locs     []format.PageLocation // offsets relative to the first data page

	// Per page of the chunk: its NULL count, whether it holds only NULLs,
	// and its bounds, from which the chunk's statistics and its column index
	// are made. Numbers (bools as 0 and 1) in pageLo/pageHi; strings in
	// bounds, page i's minimum bounds[boundOffs[2i]:boundOffs[2i+1]] and its
	// maximum up to boundOffs[2i+2] (both empty for a page of NULLs).
	pageNulls      []int64
	pageNull       []bool
	pageLo, pageHi []int64
	bounds         []byte
	boundOffs      []uint32
	// leafDict: the page in which each dictionary value was last taken into
	// a page's bounds (pageNo counts the leaf's pages, never reset).
	stamp  []uint32
	pageNo uint32
}

// init readies a leaf for a new file, keeping the buffers a previous file
// grew.
func (l *leaf) init(sp *leafSpec) {
	l.leafSpec = *sp
	if l.dict == nil {
		l.dict = map[string]int32{}
	}
	l.resetPage()
	l.resetChunk()
}

func (l *leaf) resetPage() {
	l.defs, l.reps, l.idx, l.ints, l.bytes, l.bools = l.defs[:0], l.reps[:0], l.idx[:0], l.ints[:0], l.bytes[:0], l.bools[:0]
	l.offs = append(l.offs[:0], 0)
	l.rows = 0
}

func (l *leaf) resetChunk() {
	l.gen++
	clear(l.dict)
	clear(l.dictVals)
	l.dictVals = l.dictVals[:0]
	l.lastIdx = -1
	if l.dslots != nil {
		clear(l.dslots[:])
	}
	l.values, l.nPages, l.rawSize, l.chunkRow = 0, 0, 0, 0
	l.pages, l.locs = l.pages[:0], l.locs[:0]
	l.pageNulls, l.pageNull, l.pageLo, l.pageHi = l.pageNulls[:0], l.pageNull[:0], l.pageLo[:0], l.pageHi[:0]
	l.bounds, l.boundOffs = l.bounds[:0], append(l.boundOffs[:0], 0)
}

// The generated shredRows appends the levels of an optional top-level
// column per value (opt) or per run of NULLs (nones), those of a list per
// entry (lvl) or per run of NULL lists (nullLists), and each value with its
// type's method. Required top-level columns have no levels.
// Values are only appended here; their bounds are taken once per page
// (pageBounds).

func (l *leaf) opt() { l.defs = append(l.defs, 1) }

// zeroLevels are the levels of up to shredPart NULL rows.
var zeroLevels [shredPart]uint8

// nones appends n NULLs of an optional top-level column (n <= shredPart).
func (l *leaf) nones(n int) { l.defs = append(l.defs, zeroLevels[:n]...) }

// nullLists appends n NULL lists (n <= shredPart).
func (l *leaf) nullLists(n int) {
	l.defs = append(l.defs, zeroLevels[:n]...)
	l.reps = append(l.reps, zeroLevels[:n]...)
	l.rows += n
}

func (l *leaf) lvl(def, rep uint8) {
	l.defs = append(l.defs, def)
	l.reps = append(l.reps, rep)
	if rep == 0 {
		l.rows++
	}
}

// rep is the repetition level of a list's element i: the enclosing level
// for the first, the list's own for the others.
func rep(i int, first, next uint8) uint8 {
	if i == 0 {
		return first
	}
	return next
}

// grow returns s with room for n more elements: when it has not, twice its
// capacity (or what n needs). append grows a large slice by ~1.25x, which
// allocates, clears and copies a buffer ~5 times its final size on its way
// there, where doubling does twice; these buffers (a chunk's compressed
// pages, a page of strings) are kept for the next chunk and page.
func grow[E any](s []E, n int) []E {
	if len(s)+n <= cap(s) {
		return s
	}
	return slices.Grow(s, max(n, cap(s)))
}

// reserveLong sizes a label list's page buffers for a whole page at once
// (flowPageBytes of levels and indexes, and a fill past it): append grows a
// large slice by about a quarter at a time, so the first page of each leaf
// set would be allocated, cleared, faulted in and copied dozens of times on
// its way, several times its final size (bench/README.md, "Archive"). The
// parts of the reservation a page does not use are not touched.
//
//go:noinline
func (l *leaf) reserveLong() {
	const n = flowPageBytes/6 + 64<<10 // a level of each kind and an index per value
	if cap(l.idx) >= n {
		return
	}
	l.idx = append(make([]int32, 0, n), l.idx...)
	l.defs = append(make([]uint8, 0, n), l.defs...)
	l.reps = append(make([]uint8, 0, n), l.reps...)
}

func (l *leaf) i64(v int64)    { l.ints = append(l.ints, v) }
func (l *leaf) boolean(v bool) { l.bools = append(l.bools, v) }
