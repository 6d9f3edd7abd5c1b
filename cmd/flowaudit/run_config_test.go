package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrintConfig: --print-config prints the effective configuration (file,
// then FLOWAUDIT_* environment, then flags) and exits; with problems in it
// it prints it and lists every problem; when an environment variable cannot
// be parsed there is no configuration to show, only the error.
func TestPrintConfig(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := newRootCmd()
		cmd.SetArgs(append([]string{"run", "--print-config"}, args...))
		cmd.SetOut(&out)
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		return out.String(), err
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive")

	t.Setenv("FLOWAUDIT_NODE", "node-env")
	out, err := run("--source", "synthetic", "--archive", archive, "--node", "node-flag", "--max-file-rows", "5000", "--maintenance-interval", "5s")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{archive, "node-flag", "5000", "maintenanceInterval: 5s"} {
		if !strings.Contains(out, want) {
			t.Errorf("effective configuration lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "node-env") {
		t.Errorf("the flag did not override FLOWAUDIT_NODE:\n%s", out)
	}

	// Invalid values: the configuration is shown with every problem.
	out, err = run("--source", "synthetic", "--archive", archive, "--max-file-age", "0s", "--stats-interval", "2h", "--maintenance-interval", "0s")
	if err == nil || !strings.Contains(err.Error(), "archive.maxFileAge") || !strings.Contains(err.Error(), "archive.statsInterval") ||
		!strings.Contains(err.Error(), "archive.maintenanceInterval") {
		t.Fatalf("want the three problems reported, got %v", err)
	}
	if !strings.Contains(out, archive) {
		t.Errorf("the invalid configuration was not shown:\n%s", out)
	}

	// An environment variable that does not parse: no configuration exists.
	t.Setenv("FLOWAUDIT_MAX_FILE_ROWS", "many")
	out, err = run("--source", "synthetic", "--archive", archive)
	if err == nil || !strings.Contains(err.Error(), "FLOWAUDIT_MAX_FILE_ROWS") {
		t.Fatalf("want the environment variable named, got %v", err)
	}
	if out != "" {
		t.Errorf("printed a configuration that does not exist:\n%s", out)
	}
}

// TestPushDownFlag: --push-down sets pushDown on the gRPC sources only, and
// without one is refused.
func TestPushDownFlag(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := newRootCmd()
		cmd.SetArgs(append([]string{"run", "--print-config", "--node", "n", "--archive", filepath.Join(t.TempDir(), "a")}, args...))
		cmd.SetOut(&out)
		cmd.SetErr(&bytes.Buffer{})
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("--source", "relay://127.0.0.1:4245", "--source", "synthetic", "--push-down")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Count(out, "pushDown: true") != 1 {
		t.Errorf("want pushDown on the relay source only:\n%s", out)
	}
	if _, err := run("--source", "synthetic", "--push-down"); err == nil || !strings.Contains(err.Error(), "--push-down needs a gRPC --source") {
		t.Errorf("--push-down without a gRPC source: %v", err)
	}
}

// TestRowLogFlag: the row log is on by default, with the limits that let a
// node close one flows file per partition every 5 minutes, and
// --row-log=false (or FLOWAUDIT_ROW_LOG=false) turns it off.
func TestRowLogFlag(t *testing.T) {
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := newRootCmd()
		cmd.SetArgs(append([]string{"run", "--print-config", "--source", "synthetic", "--archive", t.TempDir()}, args...))
		cmd.SetOut(&out)
		cmd.SetErr(&bytes.Buffer{})
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		return out.String()
	}
	for _, want := range []string{"rowLog: true", "maxFileRows: 16777216", "maxFileBytes: 1Gi"} {
		if out := run(); !strings.Contains(out, want) {
			t.Errorf("default configuration lacks %q:\n%s", want, out)
		}
	}
	if out := run("--row-log=false"); !strings.Contains(out, "rowLog: false") {
		t.Errorf("--row-log=false did not turn the row log off:\n%s", out)
	}
	t.Setenv("FLOWAUDIT_ROW_LOG", "false")
	if out := run(); !strings.Contains(out, "rowLog: false") {
		t.Errorf("FLOWAUDIT_ROW_LOG=false did not turn the row log off:\n%s", out)
	}
}
