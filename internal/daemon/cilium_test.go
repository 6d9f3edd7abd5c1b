package daemon

import (
	"os"
	"path/filepath"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/flowaudit/flowaudit/pkg/pipeline"
)

// TestCiliumSourcesFlowLogs: an entry of the dynamic exporter's flowlogs
// file becomes a source whose allowlist and denylist are its include and
// exclude filters as compact JSON lines (the same string from every build:
// the configuration hash is taken from it), which compile back to filters
// that decide as the entry's do.
func TestCiliumSourcesFlowLogs(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cilium-config")
	if err := os.Mkdir(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	flowlogs := filepath.Join(dir, "flowlogs.yaml")
	if err := os.WriteFile(flowlogs, []byte(`flowLogs:
- name: audit
  filePath: /var/run/cilium/hubble/audit.log
  fieldMask: [source.namespace, verdict]
  includeFilters:
  - source_pod: ["kube-system/", "bank/"]
    verdict: [DROPPED]
  - event_type: [{type: 1}]
  excludeFilters:
  - destination_port: ["53"]
  fileMaxSizeMb: 20
  fileMaxBackups: 4
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "hubble-flowlogs-config-path"), []byte(flowlogs), 0o644); err != nil {
		t.Fatal(err)
	}
	srcs, rot, err := CiliumSources(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 {
		t.Fatalf("sources %+v", srcs)
	}
	s := srcs[0]
	wantAllow := `{"source_pod":["kube-system/","bank/"],"verdict":["DROPPED"]}` + "\n" + `{"event_type":[{"type":1}]}` + "\n"
	wantDeny := `{"destination_port":["53"]}` + "\n"
	if s.Name != "flowlogs:audit" || s.File != "/var/run/cilium/hubble/audit.log" || s.Allowlist != wantAllow || s.Denylist != wantDeny || s.FieldMask != "source.namespace,verdict" {
		t.Fatalf("source %+v\nallowlist %q\ndenylist %q", s, s.Allowlist, s.Denylist)
	}
	if r := rot[s.File]; r.MaxSizeMB != 20 || r.MaxBackups != 4 {
		t.Fatalf("rotation %+v", r)
	}
	c, err := pipeline.Compile(pipeline.Spec{Allowlist: s.Allowlist, Denylist: s.Denylist})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    *flowpb.Flow
		keep bool
	}{
		{&flowpb.Flow{Verdict: flowpb.Verdict_DROPPED, Source: &flowpb.Endpoint{Namespace: "bank", PodName: "p"}}, true},
		{&flowpb.Flow{Verdict: flowpb.Verdict_FORWARDED, Source: &flowpb.Endpoint{Namespace: "bank", PodName: "p"}}, false},
		{&flowpb.Flow{EventType: &flowpb.CiliumEventType{Type: 1}}, true},
		{&flowpb.Flow{EventType: &flowpb.CiliumEventType{Type: 1}, L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{DestinationPort: 53}}}}, false},
	} {
		if got := c.Program.MatchFlow(tc.f); got != tc.keep {
			t.Errorf("%v: kept %v, want %v", tc.f, got, tc.keep)
		}
	}
}
