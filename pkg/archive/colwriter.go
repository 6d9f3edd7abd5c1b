package archive

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

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
