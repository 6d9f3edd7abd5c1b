package daemon

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/pipeline"
)

// TestPushDown: the filters go as they are; the mask sent keeps the
// archive's fields, uuid and, whole, each top-level field the filter
// reads; no mask when the user keeps everything, when the filter reads
// everything, or when the mask would cross a oneof's members.
func TestPushDown(t *testing.T) {
	for _, tc := range []struct {
		allow, deny, mask string
		want              string // the mask sent, "" for none
	}{
		{``, ``, ``, ``},
		{`{"verdict":["DROPPED"]}`, ``, ``, ``},
		{``, ``, `time,node_name,verdict`, `node_name,time,uuid,verdict`},
		{`{"source_pod":["kube-system/"]}`, `{"destination_port":["53"]}`, `time,node_name,verdict,source.pod_name`,
			`l4,node_name,source,time,uuid,verdict`},
		{``, `{"experimental":{"cel_expression":["_flow.verdict == 2"]}}`, `time,node_name,verdict`, ``},
		{``, ``, `time,node_name,l4.TCP.destination_port,l4.UDP`, ``},
	} {
		allow, deny, mask, err := pushDown(pipeline.Spec{Allowlist: tc.allow, Denylist: tc.deny, FieldMask: fieldmask.ParsePaths(tc.mask)})
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if (tc.allow != "") != (len(allow) == 1) || (tc.deny != "") != (len(deny) == 1) {
			t.Errorf("%+v: whitelist %v, blacklist %v", tc, allow, deny)
		}
		slices.Sort(mask)
		want := fieldmask.ParsePaths(tc.want)
		slices.Sort(want)
		if !slices.Equal(mask, want) {
			t.Errorf("%+v: mask %v, want %v", tc, mask, want)
		}
	}
	if _, _, _, err := pushDown(pipeline.Spec{Allowlist: `{"no_such_field":1}`}); err == nil {
		t.Errorf("a bad allowlist accepted")
	}
}

// TestReloadOfPushedDownFilterNeedsRestart: the server filters with what
// the stream was opened with, so a changed filter of a source that pushes
// it down is not swapped: it needs a restart, and is reported so.
func TestReloadOfPushedDownFilterNeedsRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir, "")
	cfg.Sources = []SourceConfig{{Name: "agent", Address: "unix://" + filepath.Join(dir, "hubble.sock"), PushDown: true}}
	next := cfg
	load := func() (Config, error) { return next, next.Validate() }
	r := start(t, cfg, Options{Load: load})
	defer r.shutdown(t)
	next.Sources = []SourceConfig{{Name: "agent", Address: cfg.Sources[0].Address, PushDown: true, Denylist: `{}`}}
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	reg := r.d.Registry()
	if v := metricValue(t, reg, "flowaudit_config_restart_required", nil); v != 1 {
		t.Errorf("restart_required = %v, want 1", v)
	}
	if h := r.d.sources[0].compiled.Load().Spec.Denylist; h != "" {
		t.Errorf("the denylist was swapped to %q", h)
	}
	bad := cfg
	bad.Sources = []SourceConfig{{Name: "f", File: filepath.Join(dir, "events.log"), PushDown: true}}
	if err := bad.Validate(); err == nil {
		t.Errorf("pushDown on a file source accepted")
	}
}
