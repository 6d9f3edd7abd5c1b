package archive

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// randomRows fills every field of FlowRow through reflection: NULLs, empty
// and long lists, values from small pools (dictionaries) and unique ones,
// extremes of every integer type, strings past the statistics bound.
// With long, some strings are past maxStatBytes (and are the maximum).
func randomRows(seed uint64, n int, long bool) []FlowRow {
	f := filler{rand.New(rand.NewPCG(seed, 1)), long}
	rows := make([]FlowRow, n)
	for i := range rows {
		f.fill(reflect.ValueOf(&rows[i]).Elem(), i)
	}
	return rows
}

type filler struct {
	r    *rand.Rand
	long bool
}

func (f filler) fill(v reflect.Value, i int) {
	r, fill := f.r, func(_ *rand.Rand, v reflect.Value, i int) { f.fill(v, i) }
	switch v.Kind() {
	case reflect.Struct:
		for k := 0; k < v.NumField(); k++ {
			fill(r, v.Field(k), i)
		}
	case reflect.Pointer:
		if r.IntN(3) == 0 {
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(r, p.Elem(), i)
		v.Set(p)
	case reflect.Slice:
		switch r.IntN(6) {
		case 0, 1:
			return // nil
		case 2:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return
		}
		k := 1 + r.IntN(5)
		s := reflect.MakeSlice(v.Type(), k, k)
		for k := 0; k < s.Len(); k++ {
			fill(r, s.Index(k), i)
		}
		v.Set(s)
	case reflect.String:
		switch r.IntN(100) {
		case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11:
			v.SetString(fmt.Sprintf("unique-%d-%d", i, r.Uint32()))
		case 12, 13, 14, 15:
			v.SetString("")
		case 16:
			if !f.long {
				v.SetString("zz")
				return
			}
			v.SetString(strings.Repeat("~", 1000+r.IntN(100))) // past maxStatBytes, sometimes
		default:
			v.SetString([]string{"a", "bb", "zz", "k8s:app=api", "10.0.0.1", "ünï"}[r.IntN(6)])
		}
	case reflect.Int64, reflect.Int32:
		x := []int64{0, 1, -1, math.MinInt32, math.MaxInt32, int64(r.Int32())}
		if v.Kind() == reflect.Int64 {
			x = append(x, math.MinInt64, math.MaxInt64, r.Int64())
		}
		v.SetInt(x[r.IntN(len(x))])
	case reflect.Uint32, reflect.Uint64:
		x := []uint64{0, 1, math.MaxUint32, uint64(r.Uint32())}
		if v.Kind() == reflect.Uint64 {
			x = append(x, math.MaxUint64, 1<<63, r.Uint64())
		}
		v.SetUint(x[r.IntN(len(x))])
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	default:
		panic("fill: " + v.Kind().String())
	}
}

// readRows reads every row of a file with parquet-go, levels included.
func readRows(t *testing.T, b []byte) ([]parquet.Row, *parquet.File) {
	t.Helper()
	pf, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var out []parquet.Row
	for _, rg := range pf.RowGroups() {
		rr := rg.Rows()
		buf := make([]parquet.Row, 100)
		for {
			n, err := rr.ReadRows(buf)
			for _, row := range buf[:n] {
				out = append(out, row.Clone())
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		rr.Close()
	}
	return out, pf
}

// TestFlowWriterMatchesParquetGo writes the same rows with flowWriter and
// with parquet-go's GenericWriter and compares what parquet-go reads back
// from both, value by value with repetition and definition levels, and the
// column chunks' statistics.
func TestFlowWriterMatchesParquetGo(t *testing.T) {
	for _, tc := range []struct {
		rows, rgRows int
		seed         uint64
		long         bool
	}{{1, 10, 1, false}, {37, 10, 2, true}, {9_000, 4_000, 3, true}, {17_000, 1 << 17, 4, false}} {
		t.Run(fmt.Sprint(tc.rows, "/", tc.rgRows), func(t *testing.T) {
			rows := randomRows(tc.seed, tc.rows, tc.long)
			var ours, theirs bytes.Buffer
			fw, err := newFlowWriter(&ours, tc.rgRows, pagesBetter, fileMetadata(partKey{table: "flows", date: "2026-01-01", node: "n"}, "v", "h"))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(rows); i += 4096 {
				if err := fw.Write(rows[i:min(i+4096, len(rows))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := fw.Close(); err != nil {
				t.Fatal(err)
			}
			pw := parquet.NewGenericWriter[FlowRow](&theirs, parquet.MaxRowsPerRowGroup(int64(tc.rgRows)))
			if _, err := pw.Write(rows); err != nil {
				t.Fatal(err)
			}
			if err := pw.Close(); err != nil {
				t.Fatal(err)
			}
			got, gf := readRows(t, ours.Bytes())
			want, wf := readRows(t, theirs.Bytes())
			if len(got) != len(want) || len(got) != len(rows) {
				t.Fatalf("rows: ours %d, parquet-go %d, written %d", len(got), len(want), len(rows))
			}
			for i := range got {
				if !got[i].Equal(want[i]) {
					t.Fatalf("row %d differs:\nours      %v\nparquet-go %v", i, got[i], want[i])
				}
			}
			back := make([]FlowRow, len(rows))
			gr := parquet.NewGenericReader[FlowRow](bytes.NewReader(ours.Bytes()))
			if n, err := gr.Read(back); n != len(rows) || (err != nil && err != io.EOF) {
				t.Fatalf("read %d rows: %v", n, err)
			}
			for i := range rows {
				if !reflect.DeepEqual(norm(rows[i]), norm(back[i])) {
					t.Fatalf("row %d read back as a FlowRow differs:\n%+v\n%+v", i, rows[i], back[i])
				}
			}
			if g, w := gf.Metadata().KeyValueMetadata, wf.Metadata().KeyValueMetadata; len(g) != 5 || len(w) != 0 {
				t.Fatalf("key-value metadata: %v", g)
			}
			if !reflect.DeepEqual(gf.Metadata().Schema, wf.Metadata().Schema) {
				t.Fatal("schemas differ")
			}
			for c, cc := range gf.Metadata().RowGroups[0].Columns {
				if g, w := pageEncodings(cc.MetaData), pageEncodings(wf.Metadata().RowGroups[0].Columns[c].MetaData); g != w {
					t.Errorf("%s: page encodings %s, parquet-go's %s", shredPaths[c], g, w)
				}
			}
			checkPageTypes(t, ours.Bytes(), gf)
			checkStats(t, rows, ours.Bytes(), gf, tc.rgRows)
		})
	}
}

// pageEncodings lists a column chunk's page encodings (parquet-go writes v2
// data pages, flowWriter v1: page types are checked by checkPageTypes).
func pageEncodings(md format.ColumnMetaData) string {
	var b strings.Builder
	for _, e := range md.EncodingStats {
		fmt.Fprintf(&b, "%s ", e.Encoding)
	}
	return b.String()
}

// checkPageTypes decodes the header of every page the offset index and the
// dictionary offset point at, and compares its type and encoding with the
// chunk's encoding statistics.
func checkPageTypes(t *testing.T, file []byte, pf *parquet.File) {
	t.Helper()
	header := func(off int64) format.PageHeader {
		var h format.PageHeader
		var proto thrift.CompactProtocol
		if err := thrift.NewDecoder(proto.NewReader(bytes.NewReader(file[off:]))).Decode(&h); err != nil {
			t.Fatalf("page header at %d: %v", off, err)
		}
		return h
	}
	for g, rg := range pf.Metadata().RowGroups {
		for c, cc := range rg.Columns {
			md := cc.MetaData
			seen := map[string]int32{}
			if md.DictionaryPageOffset != 0 {
				h := header(md.DictionaryPageOffset)
				seen[fmt.Sprint(h.Type, h.DictionaryPageHeader.V.Encoding)]++
			}
			for _, loc := range pf.OffsetIndexes()[g*len(rg.Columns)+c].PageLocations {
				h := header(loc.Offset)
				seen[fmt.Sprint(h.Type, h.DataPageHeader.V.Encoding)]++
			}
			want := map[string]int32{}
			for _, e := range md.EncodingStats {
				want[fmt.Sprint(e.PageType, e.Encoding)] += e.Count
			}
			if !reflect.DeepEqual(seen, want) {
				t.Fatalf("rg %d %s: pages in the file %v, encoding statistics %v", g, shredPaths[c], seen, want)
			}
		}
	}
}

// norm makes empty lists nil: a NULL list and an empty one read back the
// same way through parquet-go's row reader.
func norm(r FlowRow) FlowRow {
	v := reflect.ValueOf(&r).Elem()
	for k := 0; k < v.NumField(); k++ {
		f := v.Field(k)
		if f.Kind() == reflect.Slice && f.Len() == 0 {
			f.Set(reflect.Zero(f.Type()))
		}
		if f.Kind() == reflect.Slice {
			for j := 0; j < f.Len(); j++ {
				if e := f.Index(j); e.Kind() == reflect.Struct {
					for q := 0; q < e.NumField(); q++ {
						if g := e.Field(q); g.Kind() == reflect.Slice && g.Len() == 0 {
							g.Set(reflect.Zero(g.Type()))
						}
					}
				}
			}
		}
	}
	return r
}

// checkStats compares each column chunk's min, max and null count with the
// ones computed here from the rows, in the order the column's logical type
// defines (unsigned for UINT columns).
func checkStats(t *testing.T, rows []FlowRow, file []byte, pf *parquet.File, rgRows int) {
	t.Helper()
	lay, err := flowSchema()
	if err != nil {
		t.Fatal(err)
	}
	for g, rg := range pf.Metadata().RowGroups {
		part := rows[g*rgRows : min((g+1)*rgRows, len(rows))]
		if rg.NumRows != int64(len(part)) {
			t.Fatalf("row group %d: %d rows, want %d", g, rg.NumRows, len(part))
		}
		for c, cc := range rg.Columns {
			sp := lay.leaves[c]
			var vals []parquet.Value
			nulls := int64(0)
			type pageStat struct {
				vals  []parquet.Value
				nulls int64
			}
			var perPage []pageStat
			col := pf.RowGroups()[g].ColumnChunks()[c]
			pages := col.Pages()
			for {
				p, err := pages.ReadPage()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", shredPaths[c], err)
				}
				vs := make([]parquet.Value, p.NumValues())
				n, _ := p.Values().ReadValues(vs)
				var ps pageStat
				for _, v := range vs[:n] {
					if v.IsNull() {
						nulls++
						ps.nulls++
					} else {
						vals = append(vals, v.Clone())
						ps.vals = append(ps.vals, v.Clone())
					}
				}
				perPage = append(perPage, ps)
			}
			pages.Close()
			cmpV := func(a, b parquet.Value) int {
				switch sp.kind {
				case leafUint64:
					return cmp.Compare(a.Uint64(), b.Uint64())
				case leafInt32:
					if sp.u32 {
						return cmp.Compare(uint64(a.Uint32()), uint64(b.Uint32()))
					}
					return cmp.Compare(int64(a.Int32()), int64(b.Int32()))
				case leafInt64:
					return cmp.Compare(a.Int64(), b.Int64())
				case leafBool:
					return cmp.Compare(b2i(a.Boolean()), b2i(b.Boolean()))
				}
				return bytes.Compare(a.ByteArray(), b.ByteArray())
			}
			bounds := func(vals []parquet.Value) (lo, hi parquet.Value) {
				lo, hi = vals[0], vals[0]
				for _, v := range vals[1:] {
					if cmpV(v, lo) < 0 {
						lo = v
					}
					if cmpV(v, hi) > 0 {
						hi = v
					}
				}
				return lo, hi
			}
			checkColumnIndex(t, fmt.Sprintf("rg %d %s", g, shredPaths[c]), file, cc, len(perPage), func(i int) (lo, hi []byte, nulls int64, ok bool) {
				ps := perPage[i]
				if len(ps.vals) == 0 {
					return nil, nil, ps.nulls, true
				}
				l, h := bounds(ps.vals)
				if sp.typ == format.ByteArray && (len(l.ByteArray()) > maxStatBytes || len(h.ByteArray()) > maxStatBytes) {
					return nil, nil, 0, false
				}
				return l.Bytes(), h.Bytes(), ps.nulls, true
			}, func(a, b []byte) int {
				switch sp.kind {
				case leafUint64:
					return cmp.Compare(binary.LittleEndian.Uint64(a), binary.LittleEndian.Uint64(b))
				case leafInt64:
					return cmp.Compare(int64(binary.LittleEndian.Uint64(a)), int64(binary.LittleEndian.Uint64(b)))
				case leafInt32:
					if sp.u32 {
						return cmp.Compare(binary.LittleEndian.Uint32(a), binary.LittleEndian.Uint32(b))
					}
					return cmp.Compare(int32(binary.LittleEndian.Uint32(a)), int32(binary.LittleEndian.Uint32(b)))
				}
				return bytes.Compare(a, b)
			})
			if cc.ColumnIndexLength > 0 {
				// As a reader sees it.
				idx, err := col.ColumnIndex()
				if err != nil || idx.NumPages() != len(perPage) {
					t.Errorf("rg %d %s: parquet-go reads the column index: %v", g, shredPaths[c], err)
				} else {
					for i, ps := range perPage {
						if idx.NullCount(i) != ps.nulls || idx.NullPage(i) != (len(ps.vals) == 0) {
							t.Errorf("rg %d %s page %d: parquet-go reads %d nulls", g, shredPaths[c], i, idx.NullCount(i))
						}
					}
				}
			}
			st := cc.MetaData.Statistics
			if st.NullCount != nulls {
				t.Errorf("rg %d %s: null count %d, want %d", g, shredPaths[c], st.NullCount, nulls)
			}
			if len(vals) == 0 {
				if st.MinValue != nil || st.MaxValue != nil {
					t.Errorf("rg %d %s: min/max without values", g, shredPaths[c])
				}
				continue
			}
			lo, hi := bounds(vals)
			if sp.typ == format.ByteArray && (len(lo.ByteArray()) > maxStatBytes || len(hi.ByteArray()) > maxStatBytes) {
				if st.MinValue != nil {
					t.Errorf("rg %d %s: a min/max past %d bytes was written", g, shredPaths[c], maxStatBytes)
				}
				continue
			}
			if !bytes.Equal(st.MinValue, lo.Bytes()) || !bytes.Equal(st.MaxValue, hi.Bytes()) {
				t.Errorf("rg %d %s: min/max %x/%x, want %x/%x", g, shredPaths[c], st.MinValue, st.MaxValue, lo.Bytes(), hi.Bytes())
			}
		}
	}
}

// checkColumnIndex reads a chunk's column index from the file and compares
// it with the pages' bounds and null counts (want: ok false when a bound is
// too long for the statistics, and then no column index may be written),
// and its boundary order with the order of those bounds (cmp compares two
// encoded values of the column).
func checkColumnIndex(t *testing.T, what string, file []byte, cc format.ColumnChunk, pages int, want func(int) (lo, hi []byte, nulls int64, ok bool), cmp func(a, b []byte) int) {
	t.Helper()
	omit := false
	for i := range pages {
		if _, _, _, ok := want(i); !ok {
			omit = true
		}
	}
	if omit || pages == 0 {
		if cc.ColumnIndexOffset != 0 || cc.ColumnIndexLength != 0 {
			t.Errorf("%s: a column index with a bound past %d bytes", what, maxStatBytes)
		}
		return
	}
	if cc.ColumnIndexLength <= 0 {
		t.Errorf("%s: no column index", what)
		return
	}
	var ci format.ColumnIndex
	var proto thrift.CompactProtocol
	if err := thrift.Unmarshal(&proto, file[cc.ColumnIndexOffset:cc.ColumnIndexOffset+int64(cc.ColumnIndexLength)], &ci); err != nil {
		t.Fatalf("%s: column index: %v", what, err)
	}
	if len(ci.NullPages) != pages || len(ci.MinValues) != pages || len(ci.MaxValues) != pages || len(ci.NullCounts) != pages {
		t.Fatalf("%s: column index of %d/%d/%d/%d pages, want %d", what, len(ci.NullPages), len(ci.MinValues), len(ci.MaxValues), len(ci.NullCounts), pages)
	}
	asc, dsc := true, true
	prev := -1
	for i := range pages {
		lo, hi, nulls, _ := want(i)
		if ci.NullCounts[i] != nulls {
			t.Errorf("%s page %d: null count %d, want %d", what, i, ci.NullCounts[i], nulls)
		}
		if ci.NullPages[i] != (lo == nil) {
			t.Errorf("%s page %d: null page %v, want %v", what, i, ci.NullPages[i], lo == nil)
		}
		if lo == nil {
			if len(ci.MinValues[i]) != 0 || len(ci.MaxValues[i]) != 0 {
				t.Errorf("%s page %d: bounds of a null page", what, i)
			}
			continue
		}
		if !bytes.Equal(ci.MinValues[i], lo) || !bytes.Equal(ci.MaxValues[i], hi) {
			t.Errorf("%s page %d: bounds %x/%x, want %x/%x", what, i, ci.MinValues[i], ci.MaxValues[i], lo, hi)
		}
		if prev >= 0 {
			plo, phi, _, _ := want(prev)
			asc = asc && cmp(plo, lo) <= 0 && cmp(phi, hi) <= 0
			dsc = dsc && cmp(plo, lo) >= 0 && cmp(phi, hi) >= 0
		}
		prev = i
	}
	order := format.Unordered
	if asc {
		order = format.Ascending
	} else if dsc {
		order = format.Descending
	}
	if ci.BoundaryOrder != order {
		t.Errorf("%s: boundary order %v, want %v", what, ci.BoundaryOrder, order)
	}
}

// TestColumnIndexBoundaryOrder cuts pages of chosen values directly and
// checks each chunk's boundary order and bounds: pages of nulls do not
// count, equal bounds are ascending, a page below or above its predecessor
// on either bound makes the order descending or unordered; and the chunk's
// statistics, the least and greatest of all pages.
func TestColumnIndexBoundaryOrder(t *testing.T) {
	type page []int64 // nil: a page of one null
	for _, tc := range []struct {
		name  string
		pages []page
		want  format.BoundaryOrder
	}{
		{"one page", []page{{3, 1, 2}}, format.Ascending},
		{"ascending", []page{{1, 2}, {2, 5}, nil, {5, 9}}, format.Ascending},
		{"equal", []page{{4}, {4}, {4}}, format.Ascending},
		{"descending", []page{{9, 7}, nil, {7, 6}, {-3, 1}}, format.Descending},
		{"unordered min", []page{{1, 9}, {0, 9}, {2, 9}}, format.Unordered},
		{"unordered max", []page{{1, 5}, {1, 9}, {1, 2}}, format.Unordered},
		{"nested", []page{{1, 9}, {2, 8}}, format.Unordered},
	} {
		for _, kind := range []leafKind{leafInt64, leafDict, leafDeltaBytes} {
			t.Run(fmt.Sprint(tc.name, "/", kind), func(t *testing.T) {
				sp := leafSpec{kind: kind, typ: format.Int64, maxDef: 1}
				if kind != leafInt64 {
					sp.typ = format.ByteArray
				}
				var l leaf
				l.init(&sp)
				var scratch pageScratch
				enc := func(v int64) []byte {
					if kind == leafInt64 {
						return binary.LittleEndian.AppendUint64(nil, uint64(v))
					}
					return fmt.Appendf(nil, "%03d", v+100) // sorts as the numbers do
				}
				for _, p := range tc.pages {
					if p == nil {
						l.nones(1)
					}
					for _, v := range p {
						l.opt()
						if kind == leafInt64 {
							l.i64(v)
						} else {
							l.str(string(enc(v)))
						}
					}
					if err := l.cutPage(&scratch); err != nil {
						t.Fatal(err)
					}
				}
				// The chunk's statistics come from the same page bounds.
				var all []int64
				nulls := int64(0)
				for _, p := range tc.pages {
					all = append(all, p...)
					if p == nil {
						nulls++
					}
				}
				if st := l.statistics(); st.NullCount != nulls || !bytes.Equal(st.MinValue, enc(slices.Min(all))) || !bytes.Equal(st.MaxValue, enc(slices.Max(all))) {
					t.Errorf("chunk statistics %d nulls, %x/%x; want %d, %x/%x", st.NullCount, st.MinValue, st.MaxValue, nulls, enc(slices.Min(all)), enc(slices.Max(all)))
				}
				ci := l.columnIndex()
				if ci == nil {
					t.Fatal("no column index")
				}
				if ci.BoundaryOrder != tc.want {
					t.Errorf("boundary order %v, want %v", ci.BoundaryOrder, tc.want)
				}
				for i, p := range tc.pages {
					if p == nil {
						if !ci.NullPages[i] || ci.NullCounts[i] != 1 {
							t.Errorf("page %d: null page %v, %d nulls", i, ci.NullPages[i], ci.NullCounts[i])
						}
						continue
					}
					lo, hi := slices.Min(p), slices.Max(p)
					if ci.NullPages[i] || !bytes.Equal(ci.MinValues[i], enc(lo)) || !bytes.Equal(ci.MaxValues[i], enc(hi)) {
						t.Errorf("page %d: %v %x %x, want %x %x", i, ci.NullPages[i], ci.MinValues[i], ci.MaxValues[i], enc(lo), enc(hi))
					}
				}
			})
		}
	}
}

// TestLabelPagesReservedOnce: a label list's page buffers are sized for a
// whole page at its first value and are not moved while it fills.
func TestLabelPagesReservedOnce(t *testing.T) {
	l := &leaf{leafSpec: leafSpec{kind: leafDict, maxDef: 2, maxRep: 1, long: true}}
	l.init(&l.leafSpec)
	l.lvl(2, 0)
	l.str("k8s:app=a")
	if min(cap(l.idx), cap(l.defs), cap(l.reps)) < flowPageBytes/6 {
		t.Fatalf("after the first value: capacities %d, %d, %d", cap(l.idx), cap(l.defs), cap(l.reps))
	}
	idx, defs, reps := &l.idx[0], &l.defs[0], &l.reps[0]
	for i := 1; l.pageBytes() < flowPageBytes; i++ {
		l.lvl(2, uint8(min(i%12, 1)))
		l.str(fmt.Sprintf("k8s:app=%d", i%40))
	}
	if &l.idx[0] != idx || &l.defs[0] != defs || &l.reps[0] != reps {
		t.Fatalf("a page of %d values moved its buffers", len(l.idx))
	}
	if l.valueCount() != len(l.defs) || l.valueCount() < flowPageBytes/6 {
		t.Fatalf("%d values, %d levels", l.valueCount(), len(l.defs))
	}
}

// TestGrowDoubles: grow leaves a slice with room alone and at least doubles
// one without.
func TestGrowDoubles(t *testing.T) {
	s := make([]byte, 100, 150)
	if g := grow(s, 50); &g[0] != &s[0] || cap(g) != 150 {
		t.Fatalf("with room: cap %d, moved %v", cap(g), &g[0] != &s[0])
	}
	g := grow(s, 51)
	if cap(g) < 300 || len(g) != 100 {
		t.Fatalf("without room: len %d cap %d, want cap >= 300", len(g), cap(g))
	}
	if g = grow(make([]byte, 10), 1000); cap(g) < 1010 {
		t.Fatalf("a larger need: cap %d", cap(g))
	}
}

// TestStrListAppendsAsPerElement: strList leaves a leaf exactly as
// appending the list's elements one by one does, whether its hint finds the
// same list, another list (a collision, a changed list, a longer or shorter
// one) or a list of a previous chunk's dictionary.
func TestStrListAppendsAsPerElement(t *testing.T) {
	spec := leafSpec{kind: leafDict, maxDef: 2, maxRep: 1, long: true}
	a, b := &leaf{}, &leaf{}
	a.init(&spec)
	b.init(&spec)
	r := rand.New(rand.NewPCG(1, 2))
	lists := [][]string{
		{"k8s:app=a", "k8s:io.kubernetes.pod.namespace=ns"},
		{"k8s:app=b", "k8s:io.kubernetes.pod.namespace=ns"},
		{"k8s:app=a", "k8s:io.kubernetes.pod.namespace=ns", "k8s:tier=web"},
		{"k8s:app=a"},
		{"reserved:world"},
		{"k8s:io.kubernetes.pod.namespace=ns", "k8s:app=a"},
	}
	check := func(step int) {
		t.Helper()
		if !slices.Equal(a.defs, b.defs) || !slices.Equal(a.reps, b.reps) || !slices.Equal(a.idx, b.idx) ||
			!slices.Equal(a.dictVals, b.dictVals) || a.rows != b.rows {
			t.Fatalf("step %d: strList leaf differs: defs %v / %v, reps %v / %v, idx %v / %v, dict %q / %q, rows %d / %d",
				step, a.defs, b.defs, a.reps, b.reps, a.idx, b.idx, a.dictVals, b.dictVals, a.rows, b.rows)
		}
	}
	hits := 0
	for step := range 5000 {
		v := lists[r.IntN(len(lists))]
		hint := uint32(r.IntN(4)) // few hints: every list meets others under the same one
		if step%7 == 0 {
			hint = uint32(r.Uint32()) // and some rare ones
		}
		before := len(a.lists) > 0 && a.lists[listSlot(hint)].gen == a.gen
		a.strList(v, hint)
		for j, e := range v {
			b.lvl(2, rep(j, 0, 1))
			b.str(e)
		}
		if before {
			hits++
		}
		check(step)
		if step%1000 == 999 { // a new chunk: a new dictionary
			a.resetPage()
			a.resetChunk()
			b.resetPage()
			b.resetChunk()
		}
	}
	if hits < 1000 {
		t.Fatalf("%d appends found a remembered list: the memo was not exercised", hits)
	}
}

// TestPageLevelsReadTheSame: a file compressed at pagesDefault holds the rows
// that pagesBetter's does, in other bytes.
func TestPageLevelsReadTheSame(t *testing.T) {
	rows := randomRows(11, 6_000, true)
	var files [2][]byte
	for i, level := range []pageLevel{pagesBetter, pagesDefault} {
		var b bytes.Buffer
		fw, err := newFlowWriter(&b, 4_000, level, copyKV)
		if err != nil {
			t.Fatal(err)
		}
		writeFlows(t, fw, rows)
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
		files[i] = b.Bytes()
	}
	if bytes.Equal(files[0], files[1]) {
		t.Fatal("the levels wrote the same bytes")
	}
	better, _ := readRows(t, files[0])
	def, _ := readRows(t, files[1])
	if len(better) != len(rows) || len(def) != len(rows) {
		t.Fatalf("%d and %d rows read, %d written", len(better), len(def), len(rows))
	}
	for i := range better {
		if !better[i].Equal(def[i]) {
			t.Fatalf("row %d differs:\n%v\n%v", i, better[i], def[i])
		}
	}
}

// TestDictSlots: a leaf's cache of dictionary lookups never gives a value
// another's index: values that share a slot, values seen again after the
// slot went to another one, and values of the previous chunk (whose indexes
// a new chunk's dictionary gives to other values) all get their own.
func TestDictSlots(t *testing.T) {
	// Two values in one slot, and a third in another.
	a := "frontend-7d9f8b6c5d-x7k2p"
	var b string
	for i := 0; b == ""; i++ {
		if c := fmt.Sprintf("10.0.%d.%d", i/256, i%256); strSlot(c) == strSlot(a) {
			b = c
		}
	}
	c := "kube-system"
	var l leaf
	l.init(&leafSpec{kind: leafDict})
	l.dslots = new([dictSlots]int32) // made at once, not after dictSlotsAfter lookups
	check := func(vals []string) {
		t.Helper()
		for _, v := range vals {
			l.str(v)
		}
		got := make([]string, len(l.idx))
		for i, id := range l.idx {
			got[i] = l.dictVals[id]
		}
		if !slices.Equal(got, vals) {
			t.Fatalf("values %q, read back through the dictionary %q", vals, got)
		}
		if len(l.dict) != len(l.dictVals) {
			t.Fatalf("dictionary of %d values, %d listed", len(l.dict), len(l.dictVals))
		}
	}
	check([]string{a, b, a, c, b, b, a, c, c, a})
	if len(l.dictVals) != 3 {
		t.Fatalf("dictionary %q, want 3 values", l.dictVals)
	}
	// A new chunk: its dictionary starts empty, in another order.
	l.resetPage()
	l.resetChunk()
	check([]string{c, b, a, b, c, a})
	if !slices.Equal(l.dictVals, []string{c, b, a}) {
		t.Fatalf("new chunk's dictionary %q", l.dictVals)
	}
}

// TestDictSlotsMadeAfterLookups: a leaf holds no cache of dictionary
// lookups until it has looked up dictSlotsAfter values (the leaves of the
// small files of an import of many nodes never make one), and the values
// read back the same before and after.
func TestDictSlotsMadeAfterLookups(t *testing.T) {
	var l leaf
	l.init(&leafSpec{kind: leafDict})
	vals := []string{"a-pod-1", "a-pod-2", "10.0.0.1", "10.0.0.2"}
	n := 0
	for ; n < dictSlotsAfter-1; n++ {
		l.str(vals[n%len(vals)])
	}
	if l.dslots != nil {
		t.Fatalf("cache made after %d lookups", n)
	}
	for ; n < dictSlotsAfter+100; n++ {
		l.str(vals[n%len(vals)])
	}
	if l.dslots == nil {
		t.Fatalf("no cache after %d lookups", n)
	}
	for i, id := range l.idx {
		if got := l.dictVals[id]; got != vals[i%len(vals)] {
			t.Fatalf("value %d reads back %q, want %q", i, got, vals[i%len(vals)])
		}
	}
	if len(l.dictVals) != len(vals) {
		t.Fatalf("dictionary %q", l.dictVals)
	}
}
