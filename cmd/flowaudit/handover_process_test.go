package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRunProcessHandsOverOnUpgrade is a DaemonSet rolling update with
// maxSurge 1 and maxUnavailable 0, with the real binary: `flowaudit gen`
// writes events.log through lumberjack; a first `flowaudit run` archives
// it; a second, started beside it on the same archive, waits for the
// archive's writer lock (not ready, and /readyz says why; ready with
// ?standby, as the DaemonSet's probe asks; nothing read), and takes over
// when the first, sent SIGTERM, has committed and released it. A third
// then waits behind the second, which is killed with SIGKILL: its lock is
// not stale, the third takes over from the second's last commit; a fourth,
// stopped while it waits behind the third, exits cleanly. Every
// flow gen wrote is archived exactly once and no gap is recorded. The
// hand-over's timing (from the release to the first read of the next) is
// logged, not asserted: it is a measurement (docs/architecture.md,
// "Upgrades").
func TestRunProcessHandsOverOnUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary for ~30s")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	events := filepath.Join(dir, "hubble", "events.log")
	arch := filepath.Join(dir, "archive")
	const rate, seconds = 3000, 20
	genDone := startGen(t, bin, "--realtime", "--rate", strconv.Itoa(rate), "--nodes", "1", "--duration", strconv.Itoa(seconds)+"s",
		"--out", events, "--max-size-mb", "1", "--max-backups", "0", "--seed", "5")

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	type proc struct {
		cmd  *exec.Cmd
		addr string
		logs *syncBuffer
	}
	startRun := func() *proc {
		t.Helper()
		p := &proc{addr: freeAddr(t), logs: &syncBuffer{}}
		p.cmd = exec.Command(bin, "run", "--source", "file:"+events, "--archive", arch, "--node", "node-01",
			"--listen", p.addr, "--stats-interval", "1s", "--verify-interval", "0", "--log-format", "json")
		p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill() })
		return p
	}
	readyz := func(p *proc, query string) (int, string) {
		resp, err := client.Get("http://" + p.addr + "/readyz" + query)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor := func(what string, p *proc, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; logs:\n%s", what, p.logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady := func(p *proc) {
		t.Helper()
		waitFor("ready", p, func() bool { code, _ := readyz(p, ""); return code == 200 })
	}
	waitStandby := func(p *proc) {
		t.Helper()
		waitFor("a standby", p, func() bool {
			code, body := readyz(p, "")
			return code == 503 && strings.Contains(body, "waiting for the archive's writer lock, held by pid ")
		})
		if code, body := readyz(p, "?standby"); code != 200 || !strings.HasPrefix(body, "ready (standby: ") {
			t.Fatalf("/readyz?standby of a standby: %d %q", code, body)
		}
		m := scrapeMetrics(t, client, p.addr)
		if m["flowaudit_archive_writer_lock_waiting"] != 1 || m["flowaudit_ingest_lines_total"] != 0 {
			t.Fatalf("a standby's metrics: waiting %v, lines read %v", m["flowaudit_archive_writer_lock_waiting"], m["flowaudit_ingest_lines_total"])
		}
	}

	began := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	first := startRun()
	waitReady(first)
	phase("the first is ready")
	time.Sleep(3 * time.Second)
	second := startRun()
	waitStandby(second)
	time.Sleep(2 * time.Second) // the first archives on, the second waits
	waitStandby(second)
	if status, err := os.ReadFile("/proc/" + strconv.Itoa(second.cmd.Process.Pid) + "/status"); err == nil {
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "VmHWM:") {
				t.Logf("the standby's %s", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := first.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: exit %v; logs:\n%s", err, first.logs)
	}
	waitReady(second)
	phase("the second took over and is ready")
	time.Sleep(3 * time.Second)
	third := startRun()
	waitStandby(third)
	if err := second.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = second.cmd.Wait()
	waitReady(third)
	phase("the third took over and is ready")

	select {
	case err := <-genDone:
		if err != nil {
			t.Fatalf("gen: %v", err)
		}
	case <-time.After(seconds*time.Second + 60*time.Second):
		t.Fatal("gen did not finish")
	}
	phase("gen is done")
	written := readAllEvents(t, filepath.Dir(events))
	waitFor("the third to catch up", third, func() bool {
		m := scrapeMetrics(t, client, third.addr)
		return m["flowaudit_ingest_lag_bytes"] == 0 && stable(t, client, third.addr)
	})
	// A standby stopped while it waits (an upgrade rolled back) exits 0
	// at once, having read nothing.
	fourth := startRun()
	waitStandby(fourth)
	if err := fourth.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := fourth.cmd.Wait(); err != nil || !strings.Contains(fourth.logs.String(), "stopped while waiting for the archive's writer lock") {
		t.Fatalf("SIGTERM to a standby: exit %v; logs:\n%s", err, fourth.logs)
	}
	if err := third.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := third.cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM: exit %v; logs:\n%s", err, third.logs)
	}

	phase("the third stopped")
	got := archived(t, arch)
	for i, w := range written {
		if got[w.uuid] != 1 {
			t.Fatalf("flow %d of %d (%s) archived %d times", i, len(written), w.uuid, got[w.uuid])
		}
	}
	if len(got) != len(written) || len(written) < rate*seconds*8/10 {
		t.Fatalf("%d flows archived, %d written (~%d expected)", len(got), len(written), rate*seconds)
	}
	noGapAndVerified(t, arch)

	// The hand-over, from the daemons' logs (one clock: the same machine).
	sigterm := logTime(t, first.logs, "signal received: draining and committing")
	released := logTime(t, first.logs, "released the archive's writer lock")
	took := logTime(t, second.logs, "took the archive's writer lock")
	resumed := logTime(t, second.logs, "source resumed: first lines read")
	t.Logf("SIGTERM hand-over: drain and commit %v (SIGTERM to release); release to the next's lock %v, to its first read %v; reading stopped for %v",
		released.Sub(sigterm), took.Sub(released), resumed.Sub(released), resumed.Sub(sigterm))
	killed := logTime(t, third.logs, "took the archive's writer lock")
	t.Logf("SIGKILL hand-over: the lock taken %v before the first read", logTime(t, third.logs, "source resumed: first lines read").Sub(killed))
}

// logTime returns the time of the first JSON log line with message msg.
func logTime(t *testing.T, logs *syncBuffer, msg string) time.Time {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Time string `json:"time"`
			Msg  string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != msg {
			continue
		}
		ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", l.Time)
		if err != nil {
			t.Fatalf("log time %q: %v", l.Time, err)
		}
		return ts
	}
	t.Fatalf("no log %q in:\n%s", msg, logs)
	return time.Time{}
}

// syncBuffer is a bytes.Buffer a process writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
