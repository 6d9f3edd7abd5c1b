package daemon

import (
	"os"
	"path/filepath"
	"strings"
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

// TestMaskWithoutTimeOrNodeNameIsRefused: a field mask without time or
// node_name is refused at configuration whether it comes from the config
// file, cilium-config's hubble-export-fieldmask (Cilium's exporter then
// writes lines without them, which the archive could only place at 1970
// with no node) or a flowlogs entry, naming where it came from and what
// the archive needs; with both fields it is accepted.
func TestMaskWithoutTimeOrNodeNameIsRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(path, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const need = "the archive places every flow by its time and node_name"
	check := func(what string, srcs []SourceConfig, want ...string) {
		t.Helper()
		cfg := Default()
		cfg.Node, cfg.Archive.Dir, cfg.Sources = "n", filepath.Join(dir, "archive"), srcs
		err := cfg.Validate()
		if len(want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
			return
		}
		for _, w := range append(want, need) {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want %q", what, err, w)
			}
		}
	}

	write(filepath.Join(dir, "config.yaml"), "sources:\n- file: /var/run/cilium/hubble/events.log\n  fieldmask: verdict,source\n")
	cfg, err := Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	check("config file", cfg.Sources, "sources[0]: fieldmask", "keeps no time or node_name")

	cilium := filepath.Join(dir, "cilium-config")
	write(filepath.Join(cilium, "hubble-export-file-path"), "/var/run/cilium/hubble/events.log")
	write(filepath.Join(cilium, "hubble-export-fieldmask"), "time source verdict")
	write(filepath.Join(dir, "flowlogs.yaml"), "flowLogs:\n- name: audit\n  filePath: /var/run/cilium/hubble/audit.log\n  fieldMask: [node_name, verdict]\n")
	write(filepath.Join(cilium, "hubble-flowlogs-config-path"), filepath.Join(dir, "flowlogs.yaml"))
	srcs, _, err := CiliumSources(cilium)
	if err != nil {
		t.Fatal(err)
	}
	check("cilium-config", srcs,
		"(cilium-config hubble-export-file-path): fieldmask", "keeps no node_name", `flowLogs "audit"): fieldmask`, "keeps no time:")

	write(filepath.Join(cilium, "hubble-export-fieldmask"), "time source verdict node_name")
	write(filepath.Join(dir, "flowlogs.yaml"), "flowLogs:\n- name: audit\n  filePath: /var/run/cilium/hubble/audit.log\n  fieldMask: [node_name, verdict, time]\n")
	if srcs, _, err = CiliumSources(cilium); err != nil {
		t.Fatal(err)
	}
	check("cilium-config with time and node_name", srcs)
}

// TestCiliumSourcesFallBackToTheSocket: with Hubble on and its exporter off,
// the agent's socket is the source; with both off, an error says there is
// nothing to read.
func TestCiliumSourcesFallBackToTheSocket(t *testing.T) {
	dir := t.TempDir()
	write := func(k, v string) {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := CiliumSources(dir); err == nil || !strings.Contains(err.Error(), "there are no flows to read") {
		t.Fatalf("Hubble off: %v", err)
	}
	write("enable-hubble", "true")
	srcs, _, err := CiliumSources(dir)
	if err != nil || len(srcs) != 1 || srcs[0].Address != "unix:///var/run/cilium/hubble.sock" || srcs[0].File != "" {
		t.Fatalf("exporter off: %+v, %v", srcs, err)
	}
	write("hubble-socket-path", "/run/cilium/h.sock")
	if srcs, _, err := CiliumSources(dir); err != nil || srcs[0].Address != "unix:///run/cilium/h.sock" {
		t.Fatalf("hubble-socket-path: %+v, %v", srcs, err)
	}
	write("hubble-export-file-path", "/var/run/cilium/hubble/events.log")
	if srcs, _, err := CiliumSources(dir); err != nil || len(srcs) != 1 || srcs[0].File == "" {
		t.Fatalf("exporter on: %+v, %v", srcs, err)
	}
}
