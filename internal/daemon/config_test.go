package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadReportsEveryProblem: a config file's unknown keys and bad values
// are all reported at once, each with its key path; a good file loads with
// keys matched as encoding/json matches them.
func TestLoadReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, err := Load(write("bad.yaml", `
archvie:
  dir: /x
archive:
  dir: /var/lib/flowaudit/archive
  maxFileAge: 5 minutes
  maxFileRows: many
  maxFileAgee: 5m
log:
  level: 3
sources:
- name: a
  fiel: /var/run/cilium/hubble/events.log
- name: b
  file: /var/run/cilium/hubble/b.log
  maxBackups: lots
`))
	if err == nil {
		t.Fatal("a file with six problems loaded")
	}
	for _, want := range []string{
		"archvie: unknown key",
		`archive.maxFileAge: "5 minutes"`,
		`archive.maxFileRows: "many": want an integer`,
		"archive.maxFileAgee: unknown key",
		"log.level: 3: want a string",
		"sources[0].fiel: unknown key",
		`sources[1].maxBackups: "lots"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	cfg, err := Load(write("good.yaml", `
node: n1
archive:
  dir: /a
  MaxFileAge: 90s
sources:
- name: s
  file: /e.log
  synthetic: null
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node != "n1" || cfg.Archive.Dir != "/a" || time.Duration(cfg.Archive.MaxFileAge) != 90*time.Second || len(cfg.Sources) != 1 || cfg.Sources[0].File != "/e.log" {
		t.Fatalf("loaded %+v", cfg)
	}
}

// FuzzParseConfig: any file loads or fails with an error, never a panic
// (the key and value check walks arbitrary YAML against the config types).
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"node: n\narchive:\n  dir: /a\n  maxFileAge: 5m\n",
		"sources:\n- name: a\n  file: /e.log\n  maxBackups: 5\n",
		"archvie: 1\nlog: {level: 3}\n",
		"sources: {a: 1}\n",
		"archive: [1, 2]\n",
		"- 1\n- 2\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseConfig(Default(), "fuzz.yaml", data)
	})
}

// TestDebugListenLoopbackOnly: the profiler's address must be loopback (it
// shows the daemon's memory, which holds flows).
func TestDebugListenLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:6060": true, "[::1]:6060": true, "localhost:6060": true, "127.0.0.2:0": true,
		":6060": false, "0.0.0.0:6060": false, "10.0.0.1:6060": false, "[::]:6060": false, "node:6060": false, "6060": false,
	} {
		cfg := Default()
		cfg.Node, cfg.Archive.Dir = "n", "/a"
		cfg.Sources = []SourceConfig{{Name: "s", File: "/e.log"}}
		cfg.DebugListen = addr
		err := cfg.Validate()
		if ok && err != nil {
			t.Errorf("%s: %v", addr, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "debugListen")) {
			t.Errorf("%s: err %v, want debugListen refused", addr, err)
		}
	}
}
