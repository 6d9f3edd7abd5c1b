package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

//go:generate go run ./internal/shredgen -o shred_gen.go

// flowWriter writes the flows table's Parquet files column by column.
//
// parquet-go's GenericWriter shreds rows through reflection-compiled
// functions that make an indirect call per row for every optional and every
// list column, and keeps each column's state in growing buffers; it was most
// of the daemon's and of import's CPU (bench/README.md). Here shredRows
// (generated from FlowRow by internal/shredgen) appends each row's levels and
// values to typed per-column slices with direct calls; a column's page is
// encoded and compressed when it holds pageRows rows (or flowPageBytes
// bytes), and its compressed pages wait in memory until the row group ends.
//
// The file is what parquet-go wrote for the same rows: the same schema (taken
// from parquet-go's schema of FlowRow), encodings (dictionary where the
// struct tag says dict, PLAIN where it says plain, DELTA_LENGTH_BYTE_ARRAY
// for other strings, PLAIN numbers), zstd, and column chunk statistics (min,
// max, null count) by which readers prune row groups, and the page index:
// the offset index (page locations) and the column index (each page's
// bounds and null count, by which Trino, Spark and Arrow skip pages).
// Unlike parquet-go it writes v1 data pages, whose levels are compressed
// with the values.
type flowWriter struct {
	out       io.Writer
	off       int64
	layout    *flowLayout
	bufs      *fileBufs          // from spareBufs, given back by Close
	leaves    *[shredLeaves]leaf // &bufs.leaves
	rgRows    int                // rows per row group
	rows      int                // rows in the current row group
	total     int64
	rowGroups []format.RowGroup
	offsets   [][]format.OffsetIndex  // per row group, per column
	colIdx    [][]*format.ColumnIndex // per row group, per column (nil: none)
	kv        []format.KeyValue
	scratch   pageScratch
	err       error // sticky: a failed write leaves the file unusable
}

// pageScratch is reused by every page a writer encodes.
type pageScratch struct {
	level                        pageLevel
	vals, comp, reps, defs, page []byte
	hdr                          bytes.Buffer
	proto                        thrift.CompactProtocol
}

type leafKind uint8

const (
	leafDict       leafKind = iota // BYTE_ARRAY, RLE_DICTIONARY
	leafPlainBytes                 // BYTE_ARRAY, PLAIN
	leafDeltaBytes                 // BYTE_ARRAY, DELTA_LENGTH_BYTE_ARRAY
	leafInt32                      // INT32 (signed or unsigned: both fit an int64 in order)
	leafInt64                      // INT64, signed
	leafUint64                     // INT64, unsigned
	leafBool                       // BOOLEAN
)

// leafSpec is what the schema says of one leaf column.
type leafSpec struct {
	kind           leafKind
	typ            format.Type
	maxDef, maxRep uint8
	path           []string
	// u32: a leafInt32 of an unsigned Go field (its INT32 holds a uint32).
	u32 bool
	// long: pages cut by size only while they hold values. The label
	// lists are a dozen dictionary indexes per row, which zstd compresses
	// better the more rows a page holds, and they are a large part of a
	// file (bench/README.md, "Archive", has the sizes). A page of theirs
	// without a label (masked away) is cut at pageRows like any other.
	long bool
}

// flowLayout is the flows table's Parquet schema as parquet-go writes it.
type flowLayout struct {
	schema []format.SchemaElement
	orders []format.ColumnOrder
	leaves [shredLeaves]leafSpec
}

var flowSchema = sync.OnceValues(func() (*flowLayout, error) {
	var buf bytes.Buffer
	pw := parquet.NewGenericWriter[FlowRow](&buf)
	if err := pw.Close(); err != nil {
		return nil, err
	}
	pf, err := parquet.OpenFile(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return nil, err
	}
	lay := &flowLayout{schema: pf.Metadata().Schema, orders: pf.Metadata().ColumnOrders}
	s := parquet.SchemaOf(FlowRow{}) // with the encodings of the struct tags (a file's schema has none)
	cols := s.Columns()
	if len(cols) != shredLeaves {
		return nil, fmt.Errorf("%d leaf columns in the schema, %d in shred_gen.go (run go generate ./pkg/archive)", len(cols), shredLeaves)
	}
	var elems []*format.SchemaElement // the leaves', in the same depth-first order
	for i := range lay.schema {
		if lay.schema[i].Type.Valid {
			elems = append(elems, &lay.schema[i])
		}
	}
	if len(elems) != len(cols) {
		return nil, fmt.Errorf("%d leaf schema elements for %d columns", len(elems), len(cols))
	}
	for i, path := range cols {
		if p := strings.Join(path, "."); p != shredPaths[i] {
			return nil, fmt.Errorf("leaf %d is %s in the schema, %s in shred_gen.go (run go generate ./pkg/archive)", i, p, shredPaths[i])
		}
		lc, _ := s.Lookup(path...)
		sp := leafSpec{maxDef: uint8(lc.MaxDefinitionLevel), maxRep: uint8(lc.MaxRepetitionLevel), path: path, long: path[0] == "source_labels" || path[0] == "destination_labels"}
		el := elems[i]
		if el.Name != path[len(path)-1] {
			return nil, fmt.Errorf("leaf %d: schema element %s for column %s", i, el.Name, shredPaths[i])
		}
		sp.typ = el.Type.V
		switch sp.typ {
		case format.ByteArray:
			sp.kind = leafDeltaBytes
			if e := lc.Node.Encoding(); e != nil {
				switch e.Encoding() {
				case format.RLEDictionary, format.PlainDictionary:
					sp.kind = leafDict
				case format.Plain:
					sp.kind = leafPlainBytes
				}
			}
		case format.Int32:
			sp.kind = leafInt32
			if it, ok := el.LogicalType.Value.(*format.IntType); ok && !it.IsSigned {
				sp.u32 = true
			}
		case format.Int64:
			sp.kind = leafInt64
			if it, ok := el.LogicalType.Value.(*format.IntType); ok && !it.IsSigned {
				sp.kind = leafUint64
			}
		case format.Boolean:
			sp.kind = leafBool
		default:
			return nil, fmt.Errorf("leaf %s: unsupported type %s", shredPaths[i], sp.typ)
		}
		lay.leaves[i] = sp
	}
	return lay, nil
})

var parquetMagic = []byte("PAR1")

// pageRows bounds the rows a column's page holds before it is encoded and
// compressed: whatever the mask, a row group's uncompressed state is a few
// MiB (a mostly NULL column costs a definition level per row until its page
// is cut; heap profiles in bench/README.md).
const pageRows = 16 << 10

// flowPageBytes also cuts a page: at this many bytes before encoding.
const flowPageBytes = 4 << 20

// shredPart is the number of rows shredRows takes column by column: a few
// hundred KiB of FlowRows, which stay in the CPU's cache across the columns.
const shredPart = 256

// newFlowWriter starts a flows file on out whose pages are compressed at
// level.
func newFlowWriter(out io.Writer, rowGroupRows int, level pageLevel, kv [5][2]string) (*flowWriter, error) {
	if rowGroupRows <= 0 {
		return nil, fmt.Errorf("archive: %d rows per row group", rowGroupRows)
	}
	lay, err := flowSchema()
	if err != nil {
		return nil, fmt.Errorf("archive: flows schema: %w", err)
	}
	bufs := spareBufs.get()
	w := &flowWriter{out: out, layout: lay, rgRows: rowGroupRows, bufs: bufs, leaves: &bufs.leaves, scratch: pageScratch{level: level}}
	for _, p := range kv {
		w.kv = append(w.kv, format.KeyValue{Key: p[0], Value: p[1]})
	}
	for i := range w.leaves {
		w.leaves[i].init(&lay.leaves[i])
	}
	if _, err := out.Write(parquetMagic); err != nil {
		return nil, err
	}
	w.off = int64(len(parquetMagic))
	return w, nil
}

// next appends a zero row to the rows held before they are written
// (writePending) and returns it.
func (w *flowWriter) next() *FlowRow {
	w.bufs.rows = append(w.bufs.rows, FlowRow{})
	return &w.bufs.rows[len(w.bufs.rows)-1]
}

// pending is the number of rows next appended and not yet written.
func (w *flowWriter) pending() int { return len(w.bufs.rows) }

// writePending writes the rows next appended; they are cleared once written.
func (w *flowWriter) writePending() error {
	if len(w.bufs.rows) == 0 {
		return nil
	}
	if err := w.Write(w.bufs.rows); err != nil {
		return err
	}
	clear(w.bufs.rows)
	w.bufs.rows = w.bufs.rows[:0]
	return nil
}

// Write appends rows to the file.
func (w *flowWriter) Write(rows []FlowRow) error {
	return w.add(len(rows), func(k int) error {
		shredRows(w.leaves, rows[:k])
		rows = rows[k:]
		return nil
	})
}

// add appends n rows, fill appending the next k of them to every leaf:
// row groups end at rgRows, and pages that are full are cut after each
// fill (Write's batch, or compaction's). A failure is sticky.
func (w *flowWriter) add(n int, fill func(k int) error) error {
	if w.err != nil {
		return w.err
	}
	for n > 0 {
		k := min(n, w.rgRows-w.rows)
		if w.err = fill(k); w.err != nil {
			return w.err
		}
		n -= k
		w.rows += k
		w.total += int64(k)
		if w.rows >= w.rgRows {
			if w.err = w.flushRowGroup(); w.err != nil {
				return w.err
			}
			continue
		}
		for i := range w.leaves {
			l := &w.leaves[i]
			if l.pageFull() {
				if w.err = l.cutPage(&w.scratch); w.err != nil {
					return w.err
				}
			}
		}
	}
	return nil
}

// Close ends the last row group and writes the footer.
func (w *flowWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.rows > 0 {
		if w.err = w.flushRowGroup(); w.err != nil {
			return w.err
		}
	}
	// The page index after the row groups, as the format specifies: every
	// chunk's column index, then every chunk's offset index.
	if err := w.writeIndexes("column index", func(g, c int) any {
		if ci := w.colIdx[g][c]; ci != nil {
			return ci
		}
		return nil
	}, func(cc *format.ColumnChunk, off int64, n int32) { cc.ColumnIndexOffset, cc.ColumnIndexLength = off, n }); err != nil {
		return err
	}
	if err := w.writeIndexes("offset index", func(g, c int) any { return &w.offsets[g][c] },
		func(cc *format.ColumnChunk, off int64, n int32) { cc.OffsetIndexOffset, cc.OffsetIndexLength = off, n }); err != nil {
		return err
	}
	md := format.FileMetaData{
		Version:          2,
		Schema:           w.layout.schema,
		NumRows:          w.total,
		RowGroups:        w.rowGroups,
		KeyValueMetadata: w.kv,
		CreatedBy:        "flowaudit (schema " + SchemaVersion + ")",
		ColumnOrders:     w.layout.orders,
	}
	footer, err := thrift.Marshal(&w.scratch.proto, &md)
	if err != nil {
		w.err = fmt.Errorf("footer: %w", err)
		return w.err
	}
	footer = binary.LittleEndian.AppendUint32(footer, uint32(len(footer)))
	footer = append(footer, parquetMagic...)
	if _, err := w.out.Write(footer); err != nil {
		w.err = err
		return err
	}
	w.err = errWriterClosed
	clear(w.bufs.rows) // none, unless a failed write left them
	w.bufs.rows = w.bufs.rows[:0]
	spareBufs.put(w.bufs)
	w.bufs, w.leaves = nil, nil
	return nil
}

// writeIndexes writes, for every column chunk, the index that index returns
// (nil: none) and records its place with set.
func (w *flowWriter) writeIndexes(what string, index func(g, c int) any, set func(cc *format.ColumnChunk, off int64, n int32)) error {
	for g := range w.rowGroups {
		for c := range w.rowGroups[g].Columns {
			v := index(g, c)
			if v == nil {
				continue
			}
			b, err := thrift.Marshal(&w.scratch.proto, v)
			if err != nil {
				w.err = fmt.Errorf("%s: %w", what, err)
				return w.err
			}
			if _, err := w.out.Write(b); err != nil {
				w.err = err
				return err
			}
			set(&w.rowGroups[g].Columns[c], w.off, int32(len(b)))
			w.off += int64(len(b))
		}
	}
	return nil
}

// fileBufs are a flows file's buffers: its column buffers and the rows it
// holds before shredding them (up to the writer's rowBufRows of ~1 KB each).
type fileBufs struct {
	leaves [shredLeaves]leaf
	rows   []FlowRow
}

// spareBufs keeps the buffers of closed files for the next ones: grown anew
// for every file, the column buffers would be most of an import's
// allocations, and the rows a large part of the CPU of a daemon committing
// every ~8k rows (BenchmarkProcessAndCommit; bench/README.md).
var spareBufs bufPool

type bufPool struct {
	mu    sync.Mutex
	free  []*fileBufs
	limit int // the buffers kept: at least maxSpareBufs (see keep)
}

// maxSpareBufs is the least number of buffers kept: as many as files a
// writer has open at once in the usual case (one node; an import of a few).
const maxSpareBufs = 3

// keep is told, before a commit closes them, how many flows files a writer
// has open: that many buffers are kept (at least maxSpareBufs), since the
// next files of the same partitions take them again. A stream of many
// nodes' flows (an import of a cluster's logs, a Relay) would otherwise
// grow a file's buffers anew for all but three of its partitions at every
// commit (bench/README.md, "Archive", has the import this costs). A commit
// of fewer files lets the extra buffers go.
func (p *bufPool) keep(files int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = max(files, maxSpareBufs)
	if len(p.free) > p.limit {
		clear(p.free[p.limit:])
		p.free = p.free[:p.limit]
	}
}

func (p *bufPool) get() *fileBufs {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		l := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return l
	}
	return new(fileBufs)
}

func (p *bufPool) put(l *fileBufs) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < max(p.limit, maxSpareBufs) {
		p.free = append(p.free, l)
	}
}

var errWriterClosed = fmt.Errorf("flows file already closed")

func (w *flowWriter) flushRowGroup() error {
	rg := format.RowGroup{NumRows: int64(w.rows), FileOffset: w.off, Ordinal: int16(len(w.rowGroups))}
	rg.Columns = make([]format.ColumnChunk, len(w.leaves))
	oi := make([]format.OffsetIndex, len(w.leaves))
	ci := make([]*format.ColumnIndex, len(w.leaves))
	for i := range w.leaves {
		l := &w.leaves[i]
		if err := l.cutPage(&w.scratch); err != nil {
			return err
		}
		ci[i] = l.columnIndex()
		cc, locs, err := l.writeChunk(w.out, w.off, &w.scratch)
		if err != nil {
			return err
		}
		rg.Columns[i], oi[i].PageLocations = cc, locs
		w.off += cc.MetaData.TotalCompressedSize
		rg.TotalByteSize += cc.MetaData.TotalUncompressedSize
		rg.TotalCompressedSize += cc.MetaData.TotalCompressedSize
	}
	w.rowGroups = append(w.rowGroups, rg)
	w.offsets = append(w.offsets, oi)
	w.colIdx = append(w.colIdx, ci)
	w.rows = 0
	return nil
}

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

func (l *leaf) str(s string) {
	if l.kind != leafDict {
		l.bytes = append(grow(l.bytes, len(s)), s...)
		l.offs = append(l.offs, uint32(len(l.bytes)))
		return
	}
	if len(l.idx) == cap(l.idx) && l.long {
		l.reserveLong()
	}
	id := l.lastIdx
	if id < 0 || l.dictVals[id] != s {
		var slot *int32
		if l.dslots != nil {
			slot = &l.dslots[strSlot(s)]
			id = *slot - 1
		} else if l.misses++; l.misses >= dictSlotsAfter {
			l.dslots = new([dictSlots]int32)
		}
		if slot == nil || id < 0 || l.dictVals[id] != s {
			var ok bool
			if id, ok = l.dict[s]; !ok {
				c := strings.Clone(s)
				id = int32(len(l.dictVals))
				l.dict[c] = id
				l.dictVals = append(l.dictVals, c)
			}
			if slot != nil {
				*slot = id + 1
			}
		}
		l.lastIdx = id
	}
	l.idx = append(l.idx, id)
}

// dictSlots is the size of a leaf's cache of dictionary lookups, made
// after dictSlotsAfter lookups.
const (
	dictSlotBits   = 10
	dictSlots      = 1 << dictSlotBits
	dictSlotsAfter = 4096
)

// strSlot is s's slot in a leaf's cache of dictionary lookups: a hash of
// its length and its first and last eight bytes (the whole of most IPs;
// a pod name's deployment and its hash suffix).
func strSlot(s string) uint32 {
	n := len(s)
	var x uint64
	if n >= 8 {
		x = le64(s[:8]) ^ bits.RotateLeft64(le64(s[n-8:]), 31)
	} else {
		for i := 0; i < n; i++ {
			x = x<<8 | uint64(s[i])
		}
	}
	x = (x ^ uint64(n)) * 0x9E3779B97F4A7C15
	return uint32(x >> (64 - dictSlotBits))
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// listSlots is the number of lists a strList leaf remembers (1<<listBits).
const (
	listBits  = 9
	listSlots = 1 << listBits
)

// listSlot is the slot of hint: a multiplicative hash, so that identities
// allocated in sequence spread.
func listSlot(hint uint32) int { return int((hint * 0x9E3779B1) >> (32 - listBits)) }

// listMemo is a list of strings a leaf appended: its values' indexes in the
// dictionary of chunk gen.
type listMemo struct {
	gen uint64
	ids []int32
}

// listHint is the strList hint of an optional uint32 field (0 for NULL).
func listHint(v *uint32) uint32 {
	if v == nil {
		return 0
	}
	return *v
}

// strList appends a non-empty list of strings (definition level 2, the
// first element at repetition level 0). A flow's label lists are those of
// its endpoints' identities and of its node, the same few lists over and
// over: the leaf remembers, by hint, the dictionary indexes of the last
// list it appended, and a list whose strings equal them (compared, so that
// a hint only chooses what to compare with) takes them without a
// dictionary lookup per label, the largest part of shredding a flow's
// labels (BenchmarkShredRows; bench/README.md).
// The leaf is a dictionary leaf (shredgen emits strList for those only).
func (l *leaf) strList(v []string, hint uint32) {
	if l.lists == nil {
		l.lists = make([]listMemo, listSlots)
	}
	m := &l.lists[listSlot(hint)]
	if m.gen == l.gen && len(m.ids) == len(v) && l.sameStrs(m.ids, v) {
		if len(l.idx)+len(v) > cap(l.idx) && l.long {
			l.reserveLong()
		}
		l.idx = append(l.idx, m.ids...)
		l.defs = append(l.defs, 2)
		l.reps = append(l.reps, 0)
		for range len(v) - 1 {
			l.defs = append(l.defs, 2)
			l.reps = append(l.reps, 1)
		}
		l.rows++
		l.lastIdx = m.ids[len(m.ids)-1]
		return
	}
	m.gen, m.ids = l.gen, m.ids[:0]
	for j, e := range v {
		l.lvl(2, rep(j, 0, 1))
		l.str(e)
		m.ids = append(m.ids, l.idx[len(l.idx)-1])
	}
}

// sameStrs reports whether v's strings are the dictionary values ids.
func (l *leaf) sameStrs(ids []int32, v []string) bool {
	for j, id := range ids {
		if l.dictVals[id] != v[j] {
			return false
		}
	}
	return true
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

// intern returns b's index in the chunk's dictionary, adding it if new.
func (l *leaf) intern(b []byte) int32 {
	if id, ok := l.dict[string(b)]; ok {
		return id
	}
	c := string(b)
	id := int32(len(l.dictVals))
	l.dict[c] = id
	l.dictVals = append(l.dictVals, c)
	return id
}

func (l *leaf) i64(v int64)    { l.ints = append(l.ints, v) }
func (l *leaf) boolean(v bool) { l.bools = append(l.bools, v) }

// pageBytes is the page's size before encoding, roughly.
func (l *leaf) pageBytes() int {
	n := len(l.defs) + len(l.reps) + 4*len(l.idx) + 8*len(l.ints) + len(l.bytes) + len(l.bools)
	if l.kind == leafPlainBytes {
		n += 4 * (len(l.offs) - 1) // the length prefixes
	}
	return n
}

// valueCount is the number of non-NULL values in the page.
func (l *leaf) valueCount() int {
	switch l.kind {
	case leafDict:
		return len(l.idx)
	case leafPlainBytes, leafDeltaBytes:
		return len(l.offs) - 1
	case leafBool:
		return len(l.bools)
	}
	return len(l.ints)
}

// rowsInPage is the number of rows in the page.
func (l *leaf) rowsInPage() int {
	switch {
	case l.maxRep > 0:
		return l.rows
	case l.maxDef > 0:
		return len(l.defs)
	}
	return l.valueCount()
}

func (l *leaf) pageFull() bool {
	if l.pageBytes() >= flowPageBytes {
		return true
	}
	if l.rowsInPage() < pageRows {
		return false
	}
	return !l.long || l.valueCount() == 0
}

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

// cutPage encodes, compresses and appends the page being built to the
// chunk's pages.
func (l *leaf) cutPage(s *pageScratch) error {
	n := len(l.defs) // level entries
	if l.maxDef == 0 {
		n = l.valueCount()
	}
	if n == 0 {
		return nil
	}
	rows := l.rowsInPage()
	nulls := n - l.valueCount()
	l.pageBounds(nulls)
	enc := format.Plain
	vals := s.vals[:0]
	switch l.kind {
	case leafDict:
		enc = format.RLEDictionary
		var de rle.DictionaryEncoding
		var err error
		if vals, err = de.EncodeInt32(vals, l.idx); err != nil {
			return err
		}
	case leafPlainBytes:
		for i := 0; i+1 < len(l.offs); i++ {
			v := l.bytes[l.offs[i]:l.offs[i+1]]
			vals = binary.LittleEndian.AppendUint32(vals, uint32(len(v)))
			vals = append(vals, v...)
		}
	case leafDeltaBytes:
		enc = format.DeltaLengthByteArray
		var de delta.LengthByteArrayEncoding
		var err error
		if vals, err = de.EncodeByteArray(vals, l.bytes, l.offs); err != nil {
			return err
		}
	case leafInt32:
		for _, v := range l.ints {
			vals = binary.LittleEndian.AppendUint32(vals, uint32(v))
		}
	case leafInt64, leafUint64:
		for _, v := range l.ints {
			vals = binary.LittleEndian.AppendUint64(vals, uint64(v))
		}
	case leafBool:
		var b byte
		for i, v := range l.bools {
			if v {
				b |= 1 << (i & 7)
			}
			if i&7 == 7 {
				vals = append(vals, b)
				b = 0
			}
		}
		if len(l.bools)&7 != 0 {
			vals = append(vals, b)
		}
	}
	var err error
	s.reps = s.reps[:0]
	if l.maxRep > 0 {
		e := rle.Encoding{BitWidth: bits.Len8(l.maxRep)}
		if s.reps, err = e.EncodeLevels(s.reps, l.reps); err != nil {
			return err
		}
	}
	s.defs = s.defs[:0]
	if l.maxDef > 0 {
		e := rle.Encoding{BitWidth: bits.Len8(l.maxDef)}
		if s.defs, err = e.EncodeLevels(s.defs, l.defs); err != nil {
			return err
		}
	}
	// A v1 page: the levels (each after its 4-byte length) and the values,
	// compressed together. (v2 pages leave the levels uncompressed, where
	// the label lists' alternating repetition levels cost several bytes a
	// flow: bench/README.md, "Archive".)
	body := s.page[:0]
	if l.maxRep > 0 {
		body = binary.LittleEndian.AppendUint32(body, uint32(len(s.reps)))
		body = append(body, s.reps...)
	}
	if l.maxDef > 0 {
		body = binary.LittleEndian.AppendUint32(body, uint32(len(s.defs)))
		body = append(body, s.defs...)
	}
	body = append(body, vals...)
	s.vals, s.page = vals, body
	s.comp = s.level.encode(s.comp, body)
	h := format.PageHeader{
		Type:                 format.DataPage,
		UncompressedPageSize: int32(len(body)),
		CompressedPageSize:   int32(len(s.comp)),
		DataPageHeader: thrift.New(format.DataPageHeader{
			NumValues:               int32(n),
			Encoding:                enc,
			DefinitionLevelEncoding: format.RLE,
			RepetitionLevelEncoding: format.RLE,
		}),
	}
	hdr, err := s.header(&h)
	if err != nil {
		return err
	}
	l.locs = append(l.locs, format.PageLocation{
		Offset:             int64(len(l.pages)),
		CompressedPageSize: int32(len(hdr)) + h.CompressedPageSize,
		FirstRowIndex:      l.chunkRow,
	})
	l.chunkRow += int64(rows)
	l.pages = grow(l.pages, len(hdr)+len(s.comp))
	l.pages = append(l.pages, hdr...)
	l.pages = append(l.pages, s.comp...)
	l.rawSize += int64(len(hdr)) + int64(h.UncompressedPageSize)
	l.nPages++
	l.values += int64(n)
	l.resetPage()
	return nil
}

func (s *pageScratch) header(h *format.PageHeader) ([]byte, error) {
	s.hdr.Reset()
	if err := thrift.NewEncoder(s.proto.NewWriter(&s.hdr)).Encode(h); err != nil {
		return nil, fmt.Errorf("page header: %w", err)
	}
	return s.hdr.Bytes(), nil
}

// writeChunk writes the column chunk (its dictionary page first) at offset
// off of out, and resets the chunk's state for the next row group.
func (l *leaf) writeChunk(out io.Writer, off int64, s *pageScratch) (format.ColumnChunk, []format.PageLocation, error) {
	md := format.ColumnMetaData{
		Type:         l.typ,
		PathInSchema: l.path,
		Codec:        format.Zstd,
		NumValues:    l.values,
	}
	var size, raw int64
	switch l.kind {
	case leafDict:
		md.Encoding = []format.Encoding{format.Plain, format.RLE, format.RLEDictionary}
		md.EncodingStats = []format.PageEncodingStats{
			{PageType: format.DictionaryPage, Encoding: format.Plain, Count: 1},
			{PageType: format.DataPage, Encoding: format.RLEDictionary, Count: int32(l.nPages)},
		}
		vals := s.vals[:0]
		for _, v := range l.dictVals {
			vals = binary.LittleEndian.AppendUint32(vals, uint32(len(v)))
			vals = append(vals, v...)
		}
		s.vals = vals
		s.comp = s.level.encode(s.comp, vals)
		h := format.PageHeader{
			Type:                 format.DictionaryPage,
			UncompressedPageSize: int32(len(vals)),
			CompressedPageSize:   int32(len(s.comp)),
			DictionaryPageHeader: thrift.New(format.DictionaryPageHeader{NumValues: int32(len(l.dictVals)), Encoding: format.Plain}),
		}
		hdr, err := s.header(&h)
		if err != nil {
			return format.ColumnChunk{}, nil, err
		}
		if _, err := out.Write(hdr); err != nil {
			return format.ColumnChunk{}, nil, err
		}
		if _, err := out.Write(s.comp); err != nil {
			return format.ColumnChunk{}, nil, err
		}
		md.DictionaryPageOffset = off
		size = int64(len(hdr) + len(s.comp))
		raw = int64(len(hdr) + len(vals))
	case leafDeltaBytes:
		md.Encoding = []format.Encoding{format.RLE, format.DeltaLengthByteArray}
		md.EncodingStats = []format.PageEncodingStats{{PageType: format.DataPage, Encoding: format.DeltaLengthByteArray, Count: int32(l.nPages)}}
	default:
		md.Encoding = []format.Encoding{format.RLE, format.Plain}
		md.EncodingStats = []format.PageEncodingStats{{PageType: format.DataPage, Encoding: format.Plain, Count: int32(l.nPages)}}
	}
	md.DataPageOffset = off + size
	if _, err := out.Write(l.pages); err != nil {
		return format.ColumnChunk{}, nil, err
	}
	md.TotalCompressedSize = size + int64(len(l.pages))
	md.TotalUncompressedSize = raw + l.rawSize
	md.Statistics = l.statistics()

	locs := make([]format.PageLocation, len(l.locs))
	for i, loc := range l.locs {
		loc.Offset += md.DataPageOffset
		locs[i] = loc
	}
	l.resetChunk()
	return format.ColumnChunk{MetaData: md}, locs, nil
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
