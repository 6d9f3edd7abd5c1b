//go:build unix

package archive

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// openWaitAsync runs OpenWait in a goroutine; waiting receives the holder
// OpenWait reported when it started to wait.
func openWaitAsync(ctx context.Context, root string, reg prometheus.Registerer) (waiting <-chan *LockedError, done <-chan openResult) {
	wc, dc := make(chan *LockedError, 1), make(chan openResult, 1)
	go func() {
		w, err := OpenWait(ctx, Config{Root: root}, nil, reg, func(e *LockedError) { wc <- e })
		dc <- openResult{w, err}
	}()
	return wc, dc
}

type openResult struct {
	w   *Writer
	err error
}

// TestOpenWaitTakesOverOnRelease: OpenWait on a root another writer holds
// waits (saying who holds it, the waiting gauge at 1), takes the root when
// the first writer closes, and resumes from what it committed.
func TestOpenWaitTakesOverOnRelease(t *testing.T) {
	root := t.TempDir()
	w1, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	commitFlows(t, w1, compactDay, 0, 10)
	reg := prometheus.NewRegistry()
	waiting, done := openWaitAsync(context.Background(), root, reg)
	e := <-waiting
	if e.Root != root || !strings.HasPrefix(e.Holder, "pid "+strconv.Itoa(os.Getpid())+" on ") {
		t.Fatalf("waiting for %+v, want this process as the holder", e)
	}
	if got := gaugeValue(t, reg, "flowaudit_archive_writer_lock_waiting"); got != 1 {
		t.Fatalf("writer_lock_waiting %v while waiting, want 1", got)
	}
	select {
	case r := <-done:
		t.Fatalf("OpenWait returned while the lock was held: %v", r.err)
	default:
	}
	commitFlows(t, w1, compactDay, 10, 20) // the first writer commits on
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if cp := r.w.Checkpoints()["t"]; cp.Position != "20" {
		t.Fatalf("took over at checkpoint %+v, want the first writer's last (20)", cp)
	}
	if got := gaugeValue(t, reg, "flowaudit_archive_writer_lock_waiting"); got != 0 {
		t.Fatalf("writer_lock_waiting %v after taking the lock, want 0", got)
	}
	if n := testutil.CollectAndCount(reg, "flowaudit_archive_writer_lock_wait_seconds"); n != 1 {
		t.Fatalf("writer_lock_wait_seconds: %d series", n)
	}
	commitFlows(t, r.w, compactDay, 20, 30)
	if err := r.w.Close(); err != nil {
		t.Fatal(err)
	}
	got := scanUUIDs(t, root)
	for i := 0; i < 30; i++ {
		if got[strconv.Itoa(i)] != 1 {
			t.Fatalf("flow %d archived %d times", i, got[strconv.Itoa(i)])
		}
	}
	verifyClean(t, root)
}

// TestOpenWaitCancelled: a wait cancelled (SIGTERM to a standby) returns
// ctx's error without a writer, and leaves the holder's lock alone.
func TestOpenWaitCancelled(t *testing.T) {
	root := t.TempDir()
	w1, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waiting, done := openWaitAsync(ctx, root, nil)
	<-waiting
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) || r.w != nil {
		t.Fatalf("cancelled wait: %v, %v; want context.Canceled and no writer", r.w, r.err)
	}
	var locked *LockedError
	if _, err := Open(Config{Root: root}, nil, nil); !errors.As(err, &locked) {
		t.Fatalf("the first writer's lock after a cancelled wait: %v, want still held", err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenWaitAfterSIGKILL: a writer process killed with SIGKILL leaves no
// stale lock (flock(2) is released with the process's last descriptor):
// OpenWait, waiting for it, takes the root at once.
func TestOpenWaitAfterSIGKILL(t *testing.T) {
	if os.Getenv("FLOWAUDIT_LOCK_CHILD") != "" {
		return
	}
	root := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestLockHolderChild$")
	child.Env = append(os.Environ(), "FLOWAUDIT_LOCK_CHILD="+root)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "locked" {
	}
	waiting, done := openWaitAsync(context.Background(), root, nil)
	if e := <-waiting; !strings.HasPrefix(e.Holder, "pid "+strconv.Itoa(child.Process.Pid)+" on ") {
		t.Fatalf("waiting for %q, want the child (pid %d)", e.Holder, child.Process.Pid)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if err := r.w.Close(); err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the killed writer's lock is still held")
	}
}

// TestLockHolderChild is the child of TestOpenWaitAfterSIGKILL: it opens
// the root, says so, and waits to be killed.
func TestLockHolderChild(t *testing.T) {
	root := os.Getenv("FLOWAUDIT_LOCK_CHILD")
	if root == "" {
		t.Skip("child process of TestOpenWaitAfterSIGKILL")
	}
	if _, err := Open(Config{Root: root}, nil, nil); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	select {}
}

// gaugeValue returns the value of the gauge registered as name in reg.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("%s not registered", name)
	return 0
}
