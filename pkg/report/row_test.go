package report

import (
	"reflect"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// TestFlowRowIsAProjection: every field of the report's row is the archive
// row's field of the same name, type and parquet tags, so it reads the same
// column (a tag that drifted would read NULLs, not fail). The archive's
// other tags (shred: how the writer appends a column) are not the reader's.
func TestFlowRowIsAProjection(t *testing.T) {
	full := reflect.TypeOf(archive.FlowRow{})
	proj := reflect.TypeOf(flowRow{})
	for i := 0; i < proj.NumField(); i++ {
		p := proj.Field(i)
		f, ok := full.FieldByName(p.Name)
		if !ok {
			t.Errorf("%s: not a field of archive.FlowRow", p.Name)
			continue
		}
		if p.Type != f.Type || parquetTags(p.Tag) != parquetTags(f.Tag) {
			t.Errorf("%s: %s `%s`, archive.FlowRow has %s `%s`", p.Name, p.Type, p.Tag, f.Type, f.Tag)
		}
	}
}

// parquetTags are a field's tags that parquet-go reads.
func parquetTags(t reflect.StructTag) [2]string {
	return [2]string{t.Get("parquet"), t.Get("parquet-element")}
}
