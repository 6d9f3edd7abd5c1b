package daemon

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestWatchConfigSeesEveryInput: a change of the config file, of a key of
// the mounted cilium-config directory, or of the flowlogs file that
// directory names triggers one reload each; rewriting the same content
// (truncated, then written: a poll may see it empty), or an input missing
// for a while, triggers none.
func TestWatchConfigSeesEveryInput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	cilium := filepath.Join(dir, "cilium-config")
	flowlogs := filepath.Join(dir, "flowlogs.yaml")
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(cilium, 0o755); err != nil {
		t.Fatal(err)
	}
	write(file, "node: n\n")
	write(filepath.Join(cilium, "hubble-export-allowlist"), `{"verdict":["DROPPED"]}`)
	write(filepath.Join(cilium, "hubble-flowlogs-config-path"), flowlogs)
	write(flowlogs, "flowLogs: []\n")

	var reloads atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sum := configSum(file, cilium)
	go func() {
		defer close(done)
		watchConfig(ctx, file, cilium, sum, 5*time.Millisecond, func() error { reloads.Add(1); return nil }, zap.NewNop())
	}()
	defer func() { cancel(); <-done }()
	wait := func(what string, want int64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); reloads.Load() < want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d reloads, want %d", what, reloads.Load(), want)
			}
		}
	}
	write(file, "node: n\n") // same content
	time.Sleep(50 * time.Millisecond)
	if n := reloads.Load(); n != 0 {
		t.Fatalf("%d reloads after rewriting the same content", n)
	}
	write(file, "node: m\n")
	wait("config file", 1)
	write(filepath.Join(cilium, "hubble-export-allowlist"), `{"verdict":["DROPPED","ERROR"]}`)
	wait("cilium-config key", 2)
	write(flowlogs, "flowLogs:\n- name: a\n  filePath: /x.log\n")
	wait("flowlogs file", 3)
	// A file being replaced (gone for a moment) is no change: a reload
	// would only fail. Back with new content, it is one.
	if err := os.Remove(flowlogs); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := reloads.Load(); n != 3 {
		t.Fatalf("%d reloads while the flowlogs file was missing, want 3", n)
	}
	write(flowlogs, "flowLogs: []\n")
	wait("flowlogs file back", 4)
	time.Sleep(50 * time.Millisecond)
	if n := reloads.Load(); n != 4 {
		t.Fatalf("%d reloads for 4 changes", n)
	}
}
