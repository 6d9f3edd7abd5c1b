package chaos_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// diskFullScript mounts a tmpfs of $SIZE on $MNT (in the mount namespace
// unshare made: no root needed where unprivileged user namespaces are
// allowed), runs the daemon with its archive there, forwards SIGTERM to
// it, and once it has exited copies the archive out (the tmpfs goes with
// the namespace).
const diskFullScript = `set -e
mount -t tmpfs -o size="$SIZE" tmpfs "$MNT"
"$@" &
pid=$!
trap 'kill -TERM $pid' TERM
set +e
wait $pid; rc=$?
if [ $rc -gt 128 ]; then wait $pid; rc=$?; fi
cp -a "$MNT/archive" "$OUT" || rc=99
exit $rc`

// TestDiskFull: the archive lives on a 64 MiB tmpfs of its own, which the
// scenario fills (a file through /proc/PID/root, so from outside the
// daemon) while gen writes: the daemon stops committing, says so
// (flowaudit_daemon_degraded 1, write errors by kind, disk_free_bytes near
// 0), is not ready; the file is deleted, the daemon resumes from its last
// committed checkpoint; every flow is archived exactly once and verify is
// clean. Skipped where user and mount namespaces cannot be made.
func TestDiskFull(t *testing.T) {
	bin, rng, seed := setup(t)
	if out, err := exec.Command("unshare", "--user", "--map-root-user", "--mount", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a user and mount namespace for a tmpfs of a given size (unshare -rm: %v %s)", err, out)
	}
	dir := t.TempDir()
	events := filepath.Join(dir, "hubble", "events.log")
	mnt := filepath.Join(dir, "mnt")
	out := filepath.Join(dir, "archive")
	record := filepath.Join(dir, "written.txt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	fills := scale(2, 10)
	seconds := 12 + 12*fills
	r := rate(1000, 3000)
	// Every backup kept: what the daemon cannot read while the disk is full
	// waits for it.
	genDone := startGen(t, bin, "--realtime", "--rate", strconv.Itoa(r), "--nodes", "1", "--duration", strconv.Itoa(seconds)+"s",
		"--out", events, "--max-size-mb", "10", "--max-backups", "0", "--compress", "--seed", strconv.FormatUint(seed%1e6, 10), "--record", record)
	d := newDaemon(t, bin, "--source", "file:"+events, "--archive", filepath.Join(mnt, "archive"), "--node", "prod-kr1/node-01",
		"--stats-interval", "1s", "--max-file-age", "1s", "--verify-interval", "0", "--log-level", "warn")
	d.wrap = func(bin string, args []string) *exec.Cmd {
		c := exec.Command("unshare", append([]string{"--user", "--map-root-user", "--mount", "sh", "-c", diskFullScript, "sh", bin}, args...)...)
		c.Env = append(os.Environ(), "SIZE=64m", "MNT="+mnt, "OUT="+out)
		return c
	}
	d.start()
	if !d.ready(time.Minute) {
		t.Fatal("not ready")
	}
	// The daemon's view of the tmpfs, from outside its mount namespace.
	inside := filepath.Join("/proc", strconv.Itoa(d.cmd.Process.Pid), "root", mnt)
	waitFor := func(what string, within time.Duration, ok func(m map[string]float64) bool) map[string]float64 {
		t.Helper()
		deadline := time.Now().Add(within)
		for time.Now().Before(deadline) {
			if m := d.metrics(); m != nil && ok(m) {
				return m
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s: not within %v; metrics %v", what, within, d.metrics())
		return nil
	}
	for i := 0; i < fills; i++ {
		time.Sleep(time.Duration(3000+rng.IntN(4000)) * time.Millisecond)
		filler := filepath.Join(inside, "filler")
		f, err := os.Create(filler)
		if err != nil {
			t.Fatalf("the tmpfs through /proc: %v", err)
		}
		buf := make([]byte, 1<<20)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
		f.Close()
		m := waitFor("degraded after the disk filled", time.Minute, func(m map[string]float64) bool {
			return m["flowaudit_daemon_degraded"] == 1
		})
		if d.ready(0) {
			t.Error("ready while the disk is full")
		}
		var kinds []string
		for k, v := range m {
			if strings.HasPrefix(k, "flowaudit_archive_write_errors_total{") && v > 0 {
				kinds = append(kinds, k)
			}
		}
		if len(kinds) == 0 {
			t.Errorf("no archive write error counted: %v", m)
		} else if !slices.ContainsFunc(kinds, func(k string) bool { return strings.Contains(k, `kind="no_space"`) }) {
			t.Errorf("a full disk's write errors not counted as kind=\"no_space\": %v", kinds)
		}
		t.Logf("fill %d: degraded; %v; disk free %v bytes", i+1, kinds, m["flowaudit_archive_disk_free_bytes"])
		time.Sleep(time.Duration(1000+rng.IntN(4000)) * time.Millisecond)
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		waitFor("recovered after space was freed", 2*time.Minute, func(m map[string]float64) bool {
			return m["flowaudit_daemon_degraded"] == 0
		})
		if !d.ready(2 * time.Minute) {
			t.Fatal("not ready after space was freed")
		}
	}
	waitGen(t, genDone, 2*time.Minute)
	d.caughtUp(3 * time.Minute)
	m := d.metrics()
	d.stop()
	e, _ := checkEvidence(t, out, record)
	wantExact(t, e)
	t.Logf("verify: %s", verifyClean(t, bin, out))
	t.Logf("figures: seed %d rate %d/s: %d disk-full recoveries (archive sessions failed: %v), %d flows checked, 0 lost, 0 duplicated",
		seed, r, fills, m["flowaudit_daemon_archive_sessions_failed_total"], e.written)
}
