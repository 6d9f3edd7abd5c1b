package filter_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/cilium/pkg/hubble/exporter"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/filter"
)

// TestParseFlowLogsLikeCilium compares filter.ParseFlowLogs with Cilium's
// dynamic exporter config parser on the fixture and on edge cases.
func TestParseFlowLogsLikeCilium(t *testing.T) {
	fixture, err := os.ReadFile(filepath.Join(fixtureDir, "dynamic-exporter-valid-flowlogs-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := []string{
		string(fixture),
		"flowLogs: []\n",
		"flowlogs:\n- NAME: a\n  FILEPATH: /a\n  unknown: 1\n",
		"flowLogs:\n- name: a\n  filePath: /a\n- name: a\n  filePath: /b\n",
		"flowLogs:\n- name: a\n  filePath: /a\n- name: b\n  filePath: /a\n",
		"flowLogs:\n- filePath: /a\n",
		"flowLogs:\n- name: a\n",
		"flowLogs:\n- null\n",
		"flowLogs:\n- name: 123\n  filePath: /a\n",
		"flowLogs:\n- name: a\n  filePath: /a\n  includeFilters:\n  - verdict: [2]\n    nope: [1]\n",
		"flowLogs:\n- name: a\n  filePath: /a\n  includeFilters:\n  - verdict: [DROPPED]\n",
		"flowLogs:\n- name: a\n  filePath: /a\n  includeFilters:\n  - sourcePod: [x/]\n",
		"flowLogs:\n- name: a\n  filePath: /a\n  end: notatime\n",
		"flowLogs: {}\n",
		":::\n",
	}
	parser := exporter.NewExporterConfigParser(slog.New(slog.DiscardHandler))
	for _, doc := range docs {
		want, werr := parser.Parse(bytes.NewReader([]byte(doc)))
		got, gerr := filter.ParseFlowLogs([]byte(doc))
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%q: Cilium error %v, ours %v", doc, werr, gerr)
			continue
		}
		if werr != nil {
			continue
		}
		if len(want) != len(got) {
			t.Errorf("%q: Cilium %d configs, ours %d", doc, len(want), len(got))
			continue
		}
		for _, g := range got {
			w, ok := want[g.Name].(*exporter.FlowLogConfig)
			if !ok {
				t.Errorf("%q: Cilium has no config %q", doc, g.Name)
				continue
			}
			if w.FilePath != g.FilePath || len(w.FieldMask) != len(g.FieldMask) || w.FileCompress != g.FileCompress ||
				(w.End == nil) != (g.End == nil) || (w.End != nil && !w.End.Equal(*g.End)) ||
				len(w.IncludeFilters) != len(g.IncludeFilters) || len(w.ExcludeFilters) != len(g.ExcludeFilters) {
				t.Errorf("%q: config %q differs: Cilium %+v, ours %+v", doc, g.Name, w, g)
				continue
			}
			for i := range w.FieldMask {
				if w.FieldMask[i] != g.FieldMask[i] {
					t.Errorf("%q: fieldMask differs", doc)
				}
			}
			for i := range w.IncludeFilters {
				if !proto.Equal(w.IncludeFilters[i], g.IncludeFilters[i]) {
					t.Errorf("%q: includeFilters[%d] differs", doc, i)
				}
			}
			for i := range w.ExcludeFilters {
				if !proto.Equal(w.ExcludeFilters[i], g.ExcludeFilters[i]) {
					t.Errorf("%q: excludeFilters[%d] differs", doc, i)
				}
			}
			wantSize, wantBackups := w.FileMaxSizeMB, w.FileMaxBackups
			if wantSize == 0 {
				wantSize = exporter.DefaultFileMaxSizeMB
			}
			if wantBackups == 0 {
				wantBackups = exporter.DefaultFileMaxBackups
			}
			if g.FileMaxSizeMB != wantSize || g.FileMaxBackups != wantBackups {
				t.Errorf("%q: sizes %d/%d, want %d/%d", doc, g.FileMaxSizeMB, g.FileMaxBackups, wantSize, wantBackups)
			}
		}
	}
}
