package chaos_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/internal/s3test"
)

// TestObjectStoreCrashLoop: the daemon ships its archive to an S3 server
// (versitygw, internal/s3test) every 2s while gen writes, and both are
// stopped at random moments: the daemon by SIGKILL, the object store
// killed and restarted after a pause. In the end the bucket, read by
// DuckDB straight from the server's disk, holds every flow gen wrote
// exactly once, as does the local archive, and `flowaudit verify` of the
// bucket (through the S3 API) is clean.
func TestObjectStoreCrashLoop(t *testing.T) {
	bin, rng, seed := setup(t)
	srv := s3test.Start(t) // sets AWS_* for the processes the test starts
	srv.Bucket(t, "audit", false)
	dir := t.TempDir()
	events := filepath.Join(dir, "hubble", "events.log")
	arch := filepath.Join(dir, "archive")
	record := filepath.Join(dir, "written.txt")
	cfg := filepath.Join(dir, "config.yaml")
	const bucket = "s3://audit/prod-kr1/node-01"
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`node: prod-kr1/node-01
archive: {dir: %s, maxFileAge: 1s, statsInterval: 1s, upload: {to: %q, every: 2s, maxBacklog: 1h}}
verify: {interval: 0}
log: {level: warn}
sources:
- name: static
  file: %s
`, arch, bucket, events)), 0o644); err != nil {
		t.Fatal(err)
	}
	seconds := scale(40, 600)
	faults := scale(10, 200)
	r := rate(1000, 1500)
	genDone := startGen(t, bin, "--realtime", "--rate", strconv.Itoa(r), "--nodes", "1", "--duration", strconv.Itoa(seconds)+"s",
		"--out", events, "--max-size-mb", "10", "--max-backups", "5", "--compress", "--seed", strconv.FormatUint(seed%1e6, 10), "--record", record)
	d := newDaemon(t, bin, "--config", cfg)
	d.start()
	if !d.ready(time.Minute) {
		t.Fatal("not ready")
	}
	mean := time.Duration(seconds) * time.Second * 8 / 10 / time.Duration(faults)
	var actions []string
	kills, outages := 0, 0
	for i := 0; i < faults; i++ {
		time.Sleep(mean/2 + time.Duration(rng.Int64N(int64(mean))))
		if rng.IntN(2) == 0 {
			d.kill()
			d.start()
			kills++
			actions = append(actions, "kill")
			if !d.ready(time.Minute) {
				t.Fatal("not ready a minute after a restart")
			}
			continue
		}
		pause := time.Duration(500+rng.IntN(4000)) * time.Millisecond
		srv.Stop()
		time.Sleep(pause)
		srv.Resume(t)
		outages++
		actions = append(actions, fmt.Sprintf("s3-down+%v", pause))
	}
	t.Logf("%d daemon kills, %d object store outages: %s", kills, outages, strings.Join(actions, " "))
	waitGen(t, genDone, 5*time.Minute)
	d.caughtUp(3 * time.Minute)
	// Shipping catches up: nothing left to upload, twice in a row 3s apart.
	deadline := time.Now().Add(3 * time.Minute)
	for quiet := 0; quiet < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("shipping did not catch up: %v", d.metrics())
		}
		time.Sleep(3 * time.Second)
		if m := d.metrics(); m != nil && m["flowaudit_ship_backlog_manifests"] == 0 && m["flowaudit_ship_backlog_manifest_bytes"] == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	m := d.metrics()
	d.stop()

	e, _ := checkEvidence(t, arch, record)
	wantExact(t, e)
	t.Logf("verify (directory): %s", verifyClean(t, bin, arch))
	// The bucket, read from the server's disk by DuckDB.
	remote := filepath.Join(srv.Data, "audit", "prod-kr1", "node-01")
	eb, _ := checkEvidence(t, remote, record)
	wantExact(t, eb)
	t.Logf("verify (bucket): %s", verifyClean(t, bin, bucket))
	t.Logf("figures: seed %d rate %d/s: %d daemon kills, %d object store outages, %v shipping errors retried by the last daemon, %d flows checked in the directory and in the bucket, 0 lost, 0 duplicated",
		seed, r, kills, outages, m["flowaudit_ship_errors_total"], eb.written)
}
