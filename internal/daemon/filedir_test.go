package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestFileSourceThatCannotBeAFileIsRefused: a file source naming a
// directory, or a path under a regular file, is refused at validation
// (it used to pass and then fail at every open, blamed on the archive); a
// path that does not exist yet, in a directory that does not either, is
// accepted: the exporter creates both.
func TestFileSourceThatCannotBeAFileIsRefused(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "events.log")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file, want string
	}{
		{dir, "is a directory: want the exporter's file in it"},
		{dir + "/", "is a directory"},
		{filepath.Join(regular, "events.log"), "a parent of it is a file"},
		{regular, ""},
		{filepath.Join(dir, "later.log"), ""},
		{filepath.Join(dir, "no", "such", "dir", "events.log"), ""},
	} {
		cfg := testConfig(dir, tc.file)
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.file, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "sources[0].file") || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.file, err, tc.want)
		}
	}
}

// TestMissingDirectoryIsSaidNotFatal: a file source whose directory does
// not exist makes the daemon warn (at start and again while it lasts),
// not ready, flowaudit_source_up 0 and
// flowaudit_source_file_directory_missing 1; the daemon keeps waiting,
// and once the exporter creates the directory and writes, it reads,
// archives, and is up and ready again.
func TestMissingDirectoryIsSaidNotFatal(t *testing.T) {
	defer func(c, w time.Duration) { dirCheckEvery, dirWarnEvery = c, w }(dirCheckEvery, dirWarnEvery)
	dirCheckEvery, dirWarnEvery = 20*time.Millisecond, 100*time.Millisecond
	dir := t.TempDir()
	events := filepath.Join(dir, "hubble", "events.log")
	core, logs := observer.New(zapcore.InfoLevel)
	r := start(t, testConfig(dir, events), Options{Log: zap.New(core)})
	defer r.shutdown(t)
	src := map[string]string{"source": "file:" + events}
	missing := func() bool {
		return metricValue(t, r.d.Registry(), "flowaudit_source_file_directory_missing", src) == 1
	}
	notReadyFor := func(what string) bool {
		for _, p := range r.d.notReady(false) {
			if strings.Contains(p, what) {
				return true
			}
		}
		return false
	}
	warnings := func() int {
		return logs.FilterMessageSnippet("directory of the exporter's file does not exist").FilterField(zap.String("directory", filepath.Dir(events))).Len()
	}
	waitFor(t, "the source running", func() bool { return r.d.sources[0].up.Load() })
	if !missing() {
		t.Error("flowaudit_source_file_directory_missing is not 1")
	}
	if up := metricValue(t, r.d.Registry(), "flowaudit_source_up", src); up != 0 {
		t.Errorf("flowaudit_source_up %v while the directory is missing", up)
	}
	if !notReadyFor("directory " + filepath.Dir(events) + " does not exist") {
		t.Errorf("ready while the directory is missing: %q", r.d.notReady(false))
	}
	waitFor(t, "the warning repeated", func() bool { return warnings() >= 2 })

	if err := os.MkdirAll(filepath.Dir(events), 0o755); err != nil {
		t.Fatal(err)
	}
	appendLines(t, events, genLines(t, 9, 50))
	waitFor(t, "50 flows kept", func() bool { return r.kept(t) == 50 })
	waitFor(t, "the directory seen", func() bool { return !missing() })
	waitFor(t, "up", func() bool { return metricValue(t, r.d.Registry(), "flowaudit_source_up", src) == 1 })
	if notReadyFor("does not exist") {
		t.Errorf("still not ready for the directory: %q", r.d.notReady(false))
	}
	if logs.FilterMessageSnippet("exists now").Len() != 1 {
		t.Error("no log line when the directory appeared")
	}
	select {
	case err := <-r.done:
		t.Fatalf("Run returned: %v", err)
	default:
	}
}
