package archive

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"github.com/parquet-go/parquet-go/encoding/delta"
	"github.com/parquet-go/parquet-go/encoding/rle"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

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
