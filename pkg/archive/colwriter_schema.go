package archive

import (
	"bytes"
	"fmt"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// leafKind is how a leaf column's values are typed and encoded.
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
