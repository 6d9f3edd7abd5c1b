package archive

import (
	"bytes"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// CannotHold reports whether the footer statistics of the row group being
// read show that no row has the string column name (a column of T of one
// optional string a row, e.g. "source_namespace") equal to one of values:
// each value is outside the column's [min, max], or the column is NULL in
// every row (or not in the file). False when the statistics cannot tell:
// none written, or a file of another writer, whose bounds may be cut short.
func (r *RowReader[T]) CannotHold(name string, values []string) bool {
	cols, err := r.l.columns(name)
	if err != nil || cols.Len() != 1 {
		return false
	}
	var sp *readLeaf
	for i := range r.l.leaves {
		if cols.has(i) {
			sp = &r.l.leaves[i]
		}
	}
	if sp.shape != shapeScalar || sp.val != valStr {
		return false
	}
	leaf, ok := r.schema.Lookup(sp.path)
	if !ok {
		return true // NULL in every row
	}
	cc, ok := r.chunks[leaf.ColumnIndex].(*parquet.FileColumnChunk)
	if !ok || !strings.HasPrefix(cc.File().Metadata().CreatedBy, "flowaudit") {
		return false
	}
	if cc.NullCount() == r.rg.NumRows() {
		return true
	}
	lo, hi, ok := cc.Bounds()
	if !ok {
		return false
	}
	for _, v := range values {
		if bytes.Compare([]byte(v), lo.ByteArray()) >= 0 && bytes.Compare([]byte(v), hi.ByteArray()) <= 0 {
			return false
		}
	}
	return true
}
