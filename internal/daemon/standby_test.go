package daemon

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStandbyTakesOverWhenTheHolderStops: a daemon started on an archive
// another daemon has open (an upgrade with maxSurge) waits as a standby:
// /readyz says why it is not ready, /readyz?standby counts it as ready, the
// waiting gauge is 1, nothing is read. When the first stops it takes over
// from the first's last checkpoint: every flow archived once. A standby
// stopped while waiting returns cleanly.
func TestStandbyTakesOverWhenTheHolderStops(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	lines := genLines(t, 7, 3000)
	appendLines(t, events, lines[:1000])
	cfg := testConfig(dir, events)
	first := start(t, cfg, Options{})
	defer first.shutdown(t)
	waitFor(t, "1000 flows kept by the first", func() bool { return first.kept(t) == 1000 })

	cfg2 := cfg
	cfg2.Listen = "127.0.0.1:0"
	second := start(t, cfg2, Options{})
	defer second.shutdown(t)
	waitFor(t, "the standby's listener", func() bool { return second.d.Addr() != nil })
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	get := func(path string) (int, string) {
		resp, err := client.Get("http://" + second.d.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "the standby waiting", func() bool {
		return metricValue(t, second.d.Registry(), "flowaudit_archive_writer_lock_waiting", nil) == 1
	})
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "waiting for the archive's writer lock, held by pid ") || strings.Contains(body, "not running") {
		t.Fatalf("/readyz of a standby: %d %q", code, body)
	}
	if code, body := get("/readyz?standby"); code != 200 || !strings.HasPrefix(body, "ready (standby: waiting for the archive's writer lock") {
		t.Fatalf("/readyz?standby of a standby: %d %q", code, body)
	}
	appendLines(t, events, lines[1000:2000])
	waitFor(t, "2000 flows kept by the first", func() bool { return first.kept(t) == 2000 })
	if n := second.kept(t); n != 0 {
		t.Fatalf("the standby kept %v flows", n)
	}

	first.shutdown(t)
	waitFor(t, "the standby taking over", func() bool {
		return metricValue(t, second.d.Registry(), "flowaudit_archive_writer_lock_waiting", nil) == 0
	})
	appendLines(t, events, lines[2000:])
	waitFor(t, "1000 flows kept by the second", func() bool { return second.kept(t) == 1000 })
	waitFor(t, "the second ready", func() bool { code, _ := get("/readyz"); return code == 200 })

	// A third, waiting behind the second, stopped before it gets the lock.
	third := start(t, cfg, Options{})
	waitFor(t, "the third waiting", func() bool {
		return metricValue(t, third.d.Registry(), "flowaudit_archive_writer_lock_waiting", nil) == 1
	})
	third.shutdown(t) // fails the test unless Run returns nil
	if n := third.kept(t); n != 0 {
		t.Fatalf("the stopped standby kept %v flows", n)
	}

	second.shutdown(t)
	got := archivedUUIDs(t, cfg.Archive.Dir)
	for _, l := range lines {
		if n := got[uuidOf(t, l)]; n != 1 {
			t.Fatalf("flow %s archived %d times, want once", uuidOf(t, l), n)
		}
	}
	if len(got) != len(lines) {
		t.Fatalf("archived %d flows, want %d", len(got), len(lines))
	}
}
