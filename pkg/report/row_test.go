package report

import (
	"reflect"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// TestFlowRowIsAProjection: every field of the report's row is the archive
// row's field of the same name, type and parquet tags, so it reads the same
// column (a tag that drifted would read NULLs, not fail).
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
		if p.Type != f.Type || p.Tag != f.Tag {
			t.Errorf("%s: %s `%s`, archive.FlowRow has %s `%s`", p.Name, p.Type, p.Tag, f.Type, f.Tag)
		}
	}
}
