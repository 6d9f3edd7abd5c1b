package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/internal/s3test"
)

// TestDaemonShipsAndCatchesUp: with archive.upload, the daemon's closed
// files and manifests reach the bucket; with the object store down the
// backlog grows and the daemon stops being ready after maxBacklog; when it
// is back, the backlog drains and the bucket holds the archive's files byte
// for byte.
func TestDaemonShipsAndCatchesUp(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "audit", false)
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	lines := genLines(t, 1, 3000)
	appendLines(t, events, lines[:1000])
	cfg := testConfig(dir, events)
	cfg.Archive.MaxFileAge = Duration(200 * time.Millisecond)
	cfg.Archive.Upload = UploadConfig{To: "s3://audit/node-a", Every: Duration(time.Second), MaxBacklog: Duration(2 * time.Second)}
	r := start(t, cfg, Options{})
	defer r.shutdown(t)
	shipped := func() float64 {
		return metricValue(t, r.d.Registry(), "flowaudit_ship_objects_total", map[string]string{"table": "manifest"})
	}
	waitFor(t, "the first files shipped", func() bool { return shipped() > 0 })

	srv.Stop()
	appendLines(t, events, lines[1000:2000])
	waitFor(t, "a backlog while the store is down", func() bool {
		return metricValue(t, r.d.Registry(), "flowaudit_ship_backlog_manifests", nil) > 0
	})
	waitFor(t, "not ready while the store is down", func() bool {
		for _, p := range r.d.notReady(false) {
			if strings.Contains(p, "object store: not caught up") {
				return true
			}
		}
		return false
	})
	srv.Resume(t)
	appendLines(t, events, lines[2000:])
	waitFor(t, "the backlog drained", func() bool {
		return metricValue(t, r.d.Registry(), "flowaudit_ship_backlog_manifests", nil) == 0 && r.kept(t) >= 3000 && len(r.d.notReady(false)) == 0
	})
	r.shutdown(t)
	// The shutdown's last commit is shipped by the next run; compare what
	// the bucket holds with the manifests it holds.
	base := filepath.Join(srv.Data, "audit", "node-a")
	n := 0
	filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		local, err := os.ReadFile(filepath.Join(cfg.Archive.Dir, rel))
		if err != nil {
			t.Errorf("%s in the bucket: %v", rel, err)
			return nil
		}
		remote, _ := os.ReadFile(p)
		if strings.HasPrefix(rel, "manifests/") {
			if !bytes.HasPrefix(local, remote) {
				t.Errorf("%s in the bucket is not a prefix of the local manifest", rel)
			}
		} else if !bytes.Equal(local, remote) {
			t.Errorf("%s differs", rel)
		}
		n++
		return nil
	})
	if n < 4 {
		t.Fatalf("%d objects in the bucket", n)
	}
}

// TestStandbyIsNotBehindOnShipping: a standby ships nothing (the daemon it
// replaces does), so waiting on the archive longer than maxBacklog does not
// make it unready; once it holds the archive its backlog counts from then.
func TestStandbyIsNotBehindOnShipping(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "audit", false)
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	lines := genLines(t, 3, 2000)
	appendLines(t, events, lines[:1000])
	cfg := testConfig(dir, events)
	cfg.Archive.MaxFileAge = Duration(200 * time.Millisecond)
	cfg.Archive.Upload = UploadConfig{To: "s3://audit/node-a", Every: Duration(time.Second), MaxBacklog: Duration(2 * time.Second)}
	first := start(t, cfg, Options{})
	defer first.shutdown(t)
	waitFor(t, "1000 flows kept by the first", func() bool { return first.kept(t) == 1000 })

	second := start(t, cfg, Options{})
	defer second.shutdown(t)
	waitFor(t, "the standby waiting", func() bool {
		return metricValue(t, second.d.Registry(), "flowaudit_archive_writer_lock_waiting", nil) == 1
	})
	time.Sleep(3 * time.Second) // longer than maxBacklog
	if p := second.d.notReady(true); len(p) != 0 {
		t.Fatalf("a standby waiting longer than maxBacklog: not ready: %q", p)
	}
	first.shutdown(t)
	appendLines(t, events, lines[1000:])
	waitFor(t, "1000 flows kept by the second", func() bool { return second.kept(t) == 1000 })
	waitFor(t, "the second ready, its files shipped", func() bool {
		return len(second.d.notReady(false)) == 0 &&
			metricValue(t, second.d.Registry(), "flowaudit_ship_objects_total", map[string]string{"table": "manifest"}) > 0
	})
}
