package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// lineLen is the length of every test line including its newline, so that
// lost bytes convert exactly to lost lines.
const lineLen = 128

func seqLine(i int) []byte {
	l := fmt.Sprintf(`{"flow":{"uuid":"%010d","pad":"`, i)
	l += strings.Repeat("p", lineLen-len(l)-4) + `"}}` + "\n"
	return []byte(l)
}

func lineSeq(t testing.TB, l []byte) int {
	t.Helper()
	const pfx = `{"flow":{"uuid":"`
	if !bytes.HasPrefix(l, []byte(pfx)) || len(l) != lineLen-1 {
		t.Fatalf("unexpected line %q", l)
	}
	n, err := strconv.Atoi(string(l[len(pfx) : len(pfx)+10]))
	if err != nil {
		t.Fatalf("line %q: %v", l, err)
	}
	return n
}

// ljWriter writes numbered lines through lumberjack, rotating (the same
// rename+create code path as MaxSize) every rotateBytes.
type ljWriter struct {
	lj          *lumberjack.Logger
	rotateBytes int
	written     int
	lastRotate  time.Time
	rotations   int
}

func newLJ(path string, rotateBytes, maxBackups int, compress bool) *ljWriter {
	return &ljWriter{lj: &lumberjack.Logger{Filename: path, MaxSize: 1000, MaxBackups: maxBackups, Compress: compress}, rotateBytes: rotateBytes}
}

func (w *ljWriter) write(t testing.TB, seq int) {
	if _, err := w.lj.Write(seqLine(seq)); err != nil {
		t.Error(err)
		return
	}
	w.written += lineLen
	if w.written >= w.rotateBytes {
		// Backup names have millisecond resolution: two rotations within
		// one millisecond would overwrite a backup (lumberjack's own limit).
		if d := time.Since(w.lastRotate); d < 2*time.Millisecond {
			time.Sleep(2*time.Millisecond - d)
		}
		if err := w.lj.Rotate(); err != nil {
			t.Error(err)
		}
		w.lastRotate = time.Now()
		w.written = 0
		w.rotations++
	}
}

// delivered tracks what a reader delivered, by sequence.
type delivered struct {
	mu     sync.Mutex
	seqs   []int
	losses []flow.Loss
	cps    int
}

func (d *delivered) add(t testing.TB, lb *LineBatch) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range lb.Lines {
		d.seqs = append(d.seqs, lineSeq(t, l))
	}
	d.losses = append(d.losses, lb.Losses...)
	d.cps++
}

func (d *delivered) last() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.seqs) == 0 {
		return -1
	}
	return d.seqs[len(d.seqs)-1]
}

// ljTempDir is a temporary directory that tolerates lumberjack's mill
// goroutine, which can still be compressing after Close.
func ljTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "ingest-lj-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 100; i++ {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("could not remove %s", dir)
	})
	return dir
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func exactly(t *testing.T, seqs []int, n int) {
	t.Helper()
	if len(seqs) != n {
		t.Fatalf("%d lines delivered, want %d", len(seqs), n)
	}
	for i, s := range seqs {
		if s != i {
			t.Fatalf("line %d has sequence %d", i, s)
		}
	}
}

func startSource(t *testing.T, cfg FileConfig, from flow.Checkpoint, emit func(*LineBatch) error) (stop func() error) {
	t.Helper()
	src, err := NewFileSource(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, from, emit) }()
	return func() error {
		cancel()
		err := <-done
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
}

func TestFileFollowRotationExactlyOnce(t *testing.T) {
	dir := ljTempDir(t)
	path := filepath.Join(dir, "events.log")
	const n = 40000
	var d delivered
	stop := startSource(t, FileConfig{Path: path, Follow: true, PollInterval: 10 * time.Millisecond},
		flow.Checkpoint{}, func(lb *LineBatch) error { d.add(t, lb); return nil })
	w := newLJ(path, 100<<10, 0, true)
	for i := 0; i < n; i++ {
		w.write(t, i)
	}
	waitFor(t, "the last line", func() bool { return d.last() == n-1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	w.lj.Close()
	exactly(t, d.seqs, n)
	if len(d.losses) != 0 {
		t.Fatalf("losses %+v", d.losses)
	}
	if w.rotations < 40 {
		t.Fatalf("only %d rotations", w.rotations)
	}
}

// TestFileCoalescesReadsOfABusyFile: the exporter writes every event on its
// own and inotify reports each write; the source reads a growing file at
// most once per coalescing wait, not once per write (each read costs a read, a
// stat and a wake-up).
func TestFileCoalescesReadsOfABusyFile(t *testing.T) {
	dir := ljTempDir(t)
	path := filepath.Join(dir, "events.log")
	const n = 3000
	var d delivered
	stop := startSource(t, FileConfig{Path: path, Follow: true, PollInterval: time.Second},
		flow.Checkpoint{}, func(lb *LineBatch) error { d.add(t, lb); return nil })
	w := newLJ(path, 1<<30, 0, false)
	w.write(t, 0)
	waitFor(t, "the first line", func() bool { return d.last() == 0 })
	d.mu.Lock()
	before := d.cps
	d.mu.Unlock()
	start := time.Now()
	for i := 1; i < n; i++ {
		w.write(t, i)
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // ~300 separate bursts
		}
	}
	waitFor(t, "the last line", func() bool { return d.last() == n-1 })
	elapsed := time.Since(start)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	w.lj.Close()
	exactly(t, d.seqs, n)
	reads := d.cps - before
	// Without coalescing there is a batch per burst (300); with it, about
	// one per 500 ms of the run (a few here). A read that meets a writer still
	// writing may take another batch, so the bound is loose and independent
	// of the machine's speed.
	if most := n / 10 / 3; reads > most {
		t.Fatalf("%d batches for %d bursts in %s: want at most %d (reads coalesced every %s)", reads, n/10, elapsed, most, coalesceMax)
	}
	t.Logf("%d batches for %d bursts in %s", reads, n/10, elapsed)
}

// TestFileRestartFromCommitted stops the reader at random points while the
// writer rotates and compresses, and restarts it from the last checkpoint a
// simulated committer persisted (every k-th batch): what was committed is
// every line exactly once, in order.
func TestFileRestartFromCommitted(t *testing.T) {
	dir := ljTempDir(t)
	path := filepath.Join(dir, "events.log")
	const n = 30000
	rng := rand.New(rand.NewSource(1))
	var (
		committed []int
		cp        flow.Checkpoint
	)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		w := newLJ(path, 64<<10, 0, true)
		defer w.lj.Close()
		for i := 0; i < n; i++ {
			w.write(t, i)
			if i%500 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	restarts := 0
	var src *FileSource
	for len(committed) < n {
		var pending []int
		k := 1 + rng.Intn(4)
		stopAfter := 1 + rng.Intn(40)
		batches := 0
		errStop := errors.New("stop")
		// A new source is a new process; the same one again is a Run
		// restarted in the process (a reload), with the last Run's buffer.
		if src == nil || rng.Intn(2) == 0 {
			var err error
			if src, err = NewFileSource(FileConfig{Path: path, Follow: true, PollInterval: 5 * time.Millisecond, BatchLines: 1 + rng.Intn(300)}, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := src.Run(ctx, cp, func(lb *LineBatch) error {
			for _, l := range lb.Lines {
				pending = append(pending, lineSeq(t, l))
			}
			if len(lb.Losses) != 0 {
				t.Errorf("losses %+v", lb.Losses)
			}
			batches++
			if batches%k == 0 || (len(pending) > 0 && pending[len(pending)-1] == n-1) {
				committed = append(committed, pending...)
				pending = pending[:0]
				cp = lb.Checkpoint
			}
			if batches >= stopAfter || len(committed) >= n {
				return errStop
			}
			return nil
		})
		cancel()
		if !errors.Is(err, errStop) {
			t.Fatalf("run %d: %v (committed %d)", restarts, err, len(committed))
		}
		restarts++
	}
	<-writerDone
	exactly(t, committed, n)
	t.Logf("%d restarts", restarts)
}

// TestFilePausedReaderAccountsForDeletedBackups pauses the reader while the
// writer rotates with MaxBackups=1, so that backups are deleted unread. The
// guarantee: delivered lines are in order and unique, and the lines not
// delivered are exactly the bytes the rotation_gap losses report.
func TestFilePausedReaderAccountsForDeletedBackups(t *testing.T) {
	dir := ljTempDir(t)
	path := filepath.Join(dir, "events.log")
	const n = 20000
	var d delivered
	pause, paused := make(chan struct{}), make(chan struct{})
	var once sync.Once
	stop := startSource(t, FileConfig{Path: path, Follow: true, PollInterval: 20 * time.Millisecond}, flow.Checkpoint{},
		func(lb *LineBatch) error {
			d.add(t, lb)
			if d.last() > 1000 {
				once.Do(func() { close(paused); <-pause })
			}
			return nil
		})
	w := newLJ(path, 64<<10, 1, true)
	for i := 0; i < n; i++ {
		w.write(t, i)
		if i == 0 {
			// A backup created and deleted before the source runs cannot be
			// seen: start once the source is watching.
			waitFor(t, "the first line", func() bool { return d.last() == 0 })
		}
		if i == 2000 {
			<-paused
		}
		if i == 3*n/4 {
			close(pause) // most rotations happen while the reader is paused
		}
	}
	waitFor(t, "the last line", func() bool { return d.last() == n-1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	w.lj.Close()
	got := map[int]bool{}
	prev := -1
	for _, s := range d.seqs {
		if s <= prev {
			t.Fatalf("sequence %d after %d", s, prev)
		}
		prev = s
		got[s] = true
	}
	// Each loss names one deleted backup; its size is known when the source
	// saw the backup (plain size or gzip trailer) before its deletion, else
	// 0. Every backup here holds exactly rotateBytes, so unknown sizes can
	// be checked too.
	const rotateBytes = 64 << 10
	var lostBytes uint64
	unknown := 0
	names := map[string]bool{}
	for _, l := range d.losses {
		if l.Reason != flow.LossRotationGap || !strings.HasPrefix(l.Detail, "events-") || names[l.Detail] {
			t.Fatalf("unexpected loss %+v", l)
		}
		names[l.Detail] = true
		if l.Bytes == 0 {
			unknown++
			continue
		}
		if l.Bytes != rotateBytes {
			t.Fatalf("loss of %d bytes, backups hold %d: %+v", l.Bytes, rotateBytes, l)
		}
		lostBytes += l.Bytes
	}
	missing := n - len(d.seqs)
	if missing == 0 {
		t.Fatalf("no backup was deleted unread (%d rotations): the test did not exercise retention", w.rotations)
	}
	if uint64(missing*lineLen) != lostBytes+uint64(unknown*rotateBytes) {
		for i := 1; i < len(d.seqs); i++ {
			if d.seqs[i] != d.seqs[i-1]+1 {
				t.Logf("missing %d..%d (%d lines)", d.seqs[i-1]+1, d.seqs[i]-1, d.seqs[i]-d.seqs[i-1]-1)
			}
		}
		for _, l := range d.losses {
			t.Logf("loss %s %d", l.Detail, l.Bytes)
		}
		t.Fatalf("%d lines (%d bytes) missing, losses report %d bytes and %d backups of unknown size: %+v", missing, missing*lineLen, lostBytes, unknown, d.losses)
	}
	// How many sizes are known depends on whether the source saw each
	// backup before it was deleted: scheduling, not correctness (a loaded
	// machine sees fewer). The accounting above holds either way.
	t.Logf("%d of %d lines lost in %d gaps (%d of unknown size), all accounted", missing, n, len(d.losses), unknown)
}

func appendFile(t testing.TB, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestFileTruncationPartialLineAndLongLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	var mu sync.Mutex
	var lines []string
	var losses []flow.Loss
	stop := startSource(t, FileConfig{Path: path, Follow: true, PollInterval: 5 * time.Millisecond, MaxLineBytes: 1000}, flow.Checkpoint{},
		func(lb *LineBatch) error {
			mu.Lock()
			defer mu.Unlock()
			for _, l := range lb.Lines {
				lines = append(lines, string(l))
			}
			losses = append(losses, lb.Losses...)
			return nil
		})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(lines) }
	appendFile(t, path, []byte("one\ntw"))
	waitFor(t, "one", func() bool { return count() == 1 })
	time.Sleep(30 * time.Millisecond) // several polls: the half line stays unread
	if count() != 1 {
		t.Fatalf("half a line emitted: %q", lines)
	}
	appendFile(t, path, []byte("o\n"))
	waitFor(t, "two", func() bool { return count() == 2 })
	// An over-long line written in pieces, then a normal one.
	for i := 0; i < 5; i++ {
		appendFile(t, path, bytes.Repeat([]byte("x"), 700))
		time.Sleep(2 * time.Millisecond)
	}
	appendFile(t, path, []byte("\nthree\n"))
	waitFor(t, "three", func() bool { return count() == 3 })
	// Truncate and write less than was read: a truncation loss, then the new lines.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	appendFile(t, path, []byte("four\n"))
	waitFor(t, "four", func() bool { return count() == 4 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(lines, ",") != "one,two,three,four" {
		t.Fatalf("lines %q", lines)
	}
	if len(losses) != 2 || losses[0].Reason != flow.LossLineTooLong || losses[0].Bytes != 3501 || losses[0].Events != 1 ||
		losses[1].Reason != flow.LossTruncated {
		t.Fatalf("losses %+v", losses)
	}
}

func TestFileLazyCreationAndVanishingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hubble")
	path := filepath.Join(dir, "events.log")
	var mu sync.Mutex
	var lines []string
	stop := startSource(t, FileConfig{Path: path, Follow: true, PollInterval: 5 * time.Millisecond}, flow.Checkpoint{},
		func(lb *LineBatch) error {
			mu.Lock()
			defer mu.Unlock()
			for _, l := range lb.Lines {
				lines = append(lines, string(l))
			}
			return nil
		})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(lines) }
	time.Sleep(20 * time.Millisecond)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, []byte("a\nb\n"))
	waitFor(t, "a b", func() bool { return count() == 2 })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, []byte("c\n"))
	waitFor(t, "c", func() bool { return count() == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(lines, ",") != "a,b,c" {
		t.Fatalf("lines %q", lines)
	}
}

func gzBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func oneShot(t *testing.T, path string, from flow.Checkpoint) ([]string, []flow.Loss, flow.Checkpoint) {
	t.Helper()
	src, err := NewFileSource(FileConfig{Path: path}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	var losses []flow.Loss
	last := from
	err = src.Run(context.Background(), from, func(lb *LineBatch) error {
		for _, l := range lb.Lines {
			lines = append(lines, string(l))
		}
		losses = append(losses, lb.Losses...)
		last = lb.Checkpoint
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines, losses, last
}

func TestFileCatchUpBackupsAndGaps(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	b1 := filepath.Join(dir, "events-2026-01-01T00-00-00.000.log")
	b2 := filepath.Join(dir, "events-2026-01-01T00-00-01.000.log")
	b3 := filepath.Join(dir, "events-2026-01-01T00-00-02.000.log")
	os.WriteFile(b1+".gz", gzBytes([]byte("1\n2\n")), 0o644)
	os.WriteFile(b2, []byte("3\n4\n"), 0o644)
	os.WriteFile(b3+".gz", gzBytes([]byte("5\n6\n")), 0o644)
	os.WriteFile(b3+".gz.tmp", []byte("junk"), 0o644) // Cilium's fork: a compression in progress
	os.WriteFile(path, []byte("7\n8"), 0o644)         // the last line is incomplete
	lines, losses, _ := oneShot(t, path, flow.Checkpoint{})
	if strings.Join(lines, ",") != "1,2,3,4,5,6,7" || len(losses) != 0 {
		t.Fatalf("lines %q losses %+v", lines, losses)
	}
	// Stop in the middle of the plain backup, then compress it (its .gz
	// successor) and delete the oldest: resume inside the gzip stream.
	src, _ := NewFileSource(FileConfig{Path: path}, nil, nil)
	var cps []flow.Checkpoint
	src.batch = 1
	src.Run(context.Background(), flow.Checkpoint{}, func(lb *LineBatch) error { cps = append(cps, lb.Checkpoint); return nil })
	if len(cps) != 7 {
		t.Fatalf("%d checkpoints", len(cps))
	}
	os.WriteFile(b2+".gz", gzBytes([]byte("3\n4\n")), 0o644)
	os.Remove(b2)
	os.Remove(b1 + ".gz")
	lines, losses, _ = oneShot(t, path, cps[2]) // after "3"
	if strings.Join(lines, ",") != "4,5,6,7" || len(losses) != 0 {
		t.Fatalf("from gz successor: lines %q losses %+v", lines, losses)
	}
	// The checkpoint's backup deleted: a gap of its unread bytes, then the rest.
	os.Remove(b2 + ".gz")
	lines, losses, last := oneShot(t, path, cps[2])
	if strings.Join(lines, ",") != "5,6,7" || len(losses) != 1 || losses[0].Reason != flow.LossRotationGap || losses[0].Bytes != 2 ||
		!strings.Contains(losses[0].Detail, "events-2026-01-01T00-00-01.000.log") {
		t.Fatalf("after deletion: lines %q losses %+v", lines, losses)
	}
	// The live file is completed and rotated; a new one appears.
	appendFile(t, path, []byte("\n"))
	os.Rename(path, filepath.Join(dir, "events-2026-01-01T00-00-03.000.log"))
	os.WriteFile(path, []byte("9\n"), 0o644)
	lines, losses, _ = oneShot(t, path, last)
	if strings.Join(lines, ",") != "8,9" || len(losses) != 0 {
		t.Fatalf("after rotation: lines %q losses %+v", lines, losses)
	}
}

// FuzzTailChunks appends the line stream in random chunks, rotates (plain or
// compressed backups) at random points, and reads to the current end from the
// last checkpoint after each step: the lines read are exactly the complete
// lines written, in order.
func FuzzTailChunks(f *testing.F) {
	f.Add([]byte{10, 200, 3, 0, 255, 17, 4, 90, 1, 1, 1})
	f.Add([]byte{0, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{127, 31}, 40))
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			ops = ops[:200]
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "events.log")
		var stream []byte
		var want []string
		for i := 0; len(stream) < 64<<10; i++ {
			l := fmt.Sprintf("line-%d-%s", i, strings.Repeat("z", i%97))
			want = append(want, l)
			stream = append(stream, l+"\n"...)
		}
		written, rotations := 0, 0
		var got []string
		var cp flow.Checkpoint
		ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, op := range ops {
			switch {
			case op < 200:
				n := int(op) * 7
				if written+n > len(stream) {
					n = len(stream) - written
				}
				appendFile(t, path, stream[written:written+n])
				written += n
			default:
				rotations++
				ts = ts.Add(time.Second)
				bk := filepath.Join(dir, "events-"+ts.Format(backupTimeFormat)+".log")
				if err := os.Rename(path, bk); err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				if op%2 == 0 {
					if b, err := os.ReadFile(bk); err == nil {
						os.WriteFile(bk+".gz", gzBytes(b), 0o644)
						os.Remove(bk)
					}
				}
			}
			lines, losses, last := oneShot(t, path, cp)
			if len(losses) != 0 {
				t.Fatalf("losses %+v", losses)
			}
			got = append(got, lines...)
			cp = last
		}
		// Complete lines written so far; a backup's last line counts even
		// without its newline (the writer moved on).
		n := bytes.Count(stream[:written], []byte{'\n'})
		if len(got) < n || len(got) > n+rotations {
			t.Fatalf("%d lines read, %d complete written (%d rotations)", len(got), n, rotations)
		}
		// Lines can be split across a rotation only at a chunk boundary: the
		// reader must then deliver the two halves as lines of their own.
		joined := strings.Join(got, "\n")
		if rotations == 0 && joined != strings.Join(want[:n], "\n") {
			t.Fatalf("lines differ")
		}
		var w strings.Builder
		for _, g := range got {
			w.WriteString(g)
		}
		var e strings.Builder
		for _, l := range want[:n] {
			e.WriteString(l)
		}
		if !strings.HasPrefix(w.String(), e.String()) {
			t.Fatalf("content differs")
		}
	})
}

// TestFileCommitEvery: from no checkpoint the first batch asks for a
// commit, then the first batch after every CommitEvery-th finished file
// (backups read to their end, the live file once rotated); resuming from a
// checkpoint does not ask at once.
func TestFileCommitEvery(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	for i, content := range []string{"1\n2\n", "3\n", "4\n5\n", "6\n"} {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("events-2026-01-01T00-00-0%d.000.log", i)), []byte(content), 0o644)
	}
	os.WriteFile(path, []byte("7\n"), 0o644)
	run := func(from flow.Checkpoint, every int) (got []string, last flow.Checkpoint) {
		src, err := NewFileSource(FileConfig{Path: path, CommitEvery: every}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Run(context.Background(), from, func(lb *LineBatch) error {
			s := strings.TrimSpace(string(bytes.Join(lb.Lines, []byte(" "))))
			if lb.Commit {
				s += "!"
			}
			got, last = append(got, s), lb.Checkpoint
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got, last
	}
	got, _ := run(flow.Checkpoint{}, 2)
	if want := "1 2!,3,4 5!,6,7!"; strings.Join(got, ",") != want {
		t.Fatalf("CommitEvery 2: batches %q, want %q", strings.Join(got, ","), want)
	}
	got, _ = run(flow.Checkpoint{}, 0)
	if want := "1 2,3,4 5,6,7"; strings.Join(got, ",") != want {
		t.Fatalf("CommitEvery 0: batches %q, want %q", strings.Join(got, ","), want)
	}
	// The live file rotates and a new one appears: resuming from the last
	// checkpoint, the rotated file is the first finished one.
	_, last := run(flow.Checkpoint{}, 1)
	os.Rename(path, filepath.Join(dir, "events-2026-01-01T00-00-09.000.log"))
	os.WriteFile(path, []byte("8\n"), 0o644)
	got, _ = run(last, 1)
	if want := "8!"; strings.Join(got, ",") != want {
		t.Fatalf("after the rotation: batches %q, want %q", strings.Join(got, ","), want)
	}
}

// TestCoalesceFollowsTheRotationInterval: a growing live file is read at
// most every coalesceMax, but never so rarely that lumberjack could delete
// backups between two reads: with a commit every CommitEvery (k) rotations
// and at the end of every burst that finished a file, the wait is at most
// 1.5k-1 rotation intervals, the interval taken from the names of the
// newest backups as the observer records them.
func TestCoalesceFollowsTheRotationInterval(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		commitEvery int
		poll, gap   time.Duration
		listed      int // backups on disk
		want        time.Duration
	}{
		{commitEvery: 0, gap: 0, want: coalesceMax},                      // backups never deleted
		{commitEvery: 0, gap: 10 * ms, want: coalesceMax},                // idem
		{commitEvery: 2, gap: 0, want: coalesceUnknown},                  // interval not known yet
		{commitEvery: 2, gap: 230 * ms, want: 460 * ms},                  // 20k flows/s, 10 MiB x 5
		{commitEvery: 2, gap: 230 * ms, listed: 5, want: 460 * ms},       // idem, the 5 backups on disk
		{commitEvery: 2, gap: 230 * ms, listed: 1, want: 115 * ms},       // max-backups assumed 5, 1 on disk
		{commitEvery: 2, gap: 230 * ms, listed: 40, want: 460 * ms},      // more on disk than configured
		{commitEvery: 2, gap: 2 * time.Second, want: coalesceMax},        // a quiet node
		{commitEvery: 1, gap: 230 * ms, want: 115 * ms},                  // max-backups 2-3
		{commitEvery: 3, gap: 100 * ms, want: 350 * ms},                  // max-backups 6-7
		{commitEvery: 5, gap: 40 * ms, want: 260 * ms},                   // 125k flows/s, 10 MiB x 10
		{commitEvery: 2, gap: 2 * ms, want: coalesceMin},                 // floor: no wake-up per write
		{commitEvery: 2, poll: 20 * ms, gap: time.Second, want: 40 * ms}, // capped by twice the poll interval
		{commitEvery: 0, poll: 2 * ms, want: 4 * ms},
	} {
		s, err := NewFileSource(FileConfig{Path: filepath.Join(t.TempDir(), "events.log"), CommitEvery: c.commitEvery, PollInterval: c.poll}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := coalesceWait(&s.cfg, c.gap, c.listed); got != c.want {
			t.Errorf("CommitEvery %d, poll %s, rotation every %s, %d backups: wait %s, want %s", c.commitEvery, c.poll, c.gap, c.listed, got, c.want)
		}
	}

	s, err := NewFileSource(FileConfig{Path: filepath.Join(t.TempDir(), "events.log"), CommitEvery: 2}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := &observer{s: s, seen: map[string]seenBackup{}}
	steps := []struct {
		ts   string
		want time.Duration // the wait after recording ts
	}{
		{"2026-12-02T15-34-38.119", coalesceUnknown}, // one backup: no interval yet
		{"2026-12-02T15-34-38.351", 464 * time.Millisecond},
		{"2026-12-02T15-34-38.119", 464 * time.Millisecond}, // seen again (a scan): no change
		{"2026-12-02T15-34-38.200", 464 * time.Millisecond}, // older than the newest: no change
		{"2026-12-02T15-34-38.401", 100 * time.Millisecond}, // the rate went up
		{"not-a-timestamp", 100 * time.Millisecond},
		{"2026-12-02T15-35-38.401", coalesceMax}, // a minute later: quiet
	}
	for _, st := range steps {
		o.record(st.ts, seenBackup{size: 1})
		if got := o.coalesceWait(); got != st.want {
			t.Errorf("after backup %s: wait %s, want %s", st.ts, got, st.want)
		}
	}
}

// TestRotationIntervalAndSlackGauges: the observer reports how often the
// exporter rotates (from the backups' names) and how long a line survives
// its rotation (that interval times the backups on disk plus one).
func TestRotationIntervalAndSlackGauges(t *testing.T) {
	dir := t.TempDir()
	m := NewMetrics(prometheus.NewRegistry())
	s, err := NewFileSource(FileConfig{Path: filepath.Join(dir, "events.log"), CommitEvery: 2}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	gauge := func(g *prometheus.GaugeVec) float64 { return gaugeValue(t, g, s.ID()) }
	o := &observer{s: s, seen: map[string]seenBackup{}}
	backup := func(ts string, gz bool) {
		name := s.plainName(ts)
		if gz {
			name += ".gz"
		}
		if err := os.WriteFile(name, []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	backup("2026-12-02T15-34-38.119", true)
	o.scan()
	if got := gauge(m.rotEvery); got != 0 {
		t.Fatalf("one backup: rotation interval %v, want none", got)
	}
	backup("2026-12-02T15-34-38.351", false)
	o.onName([]byte("events-2026-12-02T15-34-38.351.log")) // inotify: interval known, slack from the last listing (1 backup)
	if got, want := gauge(m.rotEvery), 0.232; math.Abs(got-want) > 1e-9 {
		t.Fatalf("rotation interval %v, want %v", got, want)
	}
	if got, want := gauge(m.slack), 2*0.232; math.Abs(got-want) > 1e-9 {
		t.Fatalf("slack %v, want %v", got, want)
	}
	backup("2026-12-02T15-34-38.583", false)
	o.scan() // three backups, the newest 232 ms after the one before
	if got, want := gauge(m.slack), 4*0.232; math.Abs(got-want) > 1e-9 {
		t.Fatalf("slack %v, want %v (3 backups + the live file, every 232 ms)", got, want)
	}
	// CommitEvery 2 assumes 5 backups; with 3 on disk commits come every
	// file (half of them, rounded down, at least 1) and the wait is half an
	// interval (1.5*1-1).
	if got, want := o.coalesceWait(), 116*time.Millisecond; got != want {
		t.Fatalf("coalescing wait %v, want %v", got, want)
	}
}

// TestFollowReportsRotationInterval: following lumberjack rotating about
// every 40 ms with 3 backups, the source reports an interval of that order
// and a slack of the interval times the backups plus one.
func TestFollowReportsRotationInterval(t *testing.T) {
	dir := ljTempDir(t)
	path := filepath.Join(dir, "events.log")
	m := NewMetrics(prometheus.NewRegistry())
	src, err := NewFileSource(FileConfig{Path: path, Follow: true, PollInterval: 10 * time.Millisecond, CommitEvery: 1}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	var d delivered
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, flow.Checkpoint{}, func(lb *LineBatch) error { d.add(t, lb); return nil })
	}()
	gauge := func(g *prometheus.GaugeVec) float64 { return gaugeValue(t, g, src.ID()) }
	w := newLJ(path, 40*lineLen, 3, false)
	const n = 400 // 10 rotations
	for i := 0; i < n; i++ {
		w.write(t, i)
		if i%40 == 39 {
			time.Sleep(40 * time.Millisecond)
		}
	}
	waitFor(t, "the last line", func() bool { return d.last() == n-1 })
	// lumberjack deletes the oldest backup from a goroutine of its own: a
	// listing may briefly hold a fourth.
	waitFor(t, "the slack of 3 backups", func() bool {
		every := gauge(m.rotEvery)
		return every > 0 && math.Abs(gauge(m.slack)/every-4) < 1e-6
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	w.lj.Close()
	exactly(t, d.seqs, n)
	every, slack := gauge(m.rotEvery), gauge(m.slack)
	if every < 0.040 || every > 5 {
		t.Errorf("rotation interval %vs, want 40 ms or more (and not absurd)", every)
	}
	if k := slack / every; math.Abs(k-4) > 1e-6 {
		t.Errorf("slack %vs = %v intervals, want 4 (3 backups + the live file)", slack, k)
	}
}

// gaugeValue is the value of g's series for source id.
func gaugeValue(t *testing.T, g *prometheus.GaugeVec, id string) float64 {
	t.Helper()
	var out dto.Metric
	if err := g.WithLabelValues(id).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetGauge().GetValue()
}

// commitLog records a source's batches as their lines joined by spaces,
// with "!" when marked Commit, and their checkpoints.
type commitLog struct {
	mu  sync.Mutex
	got []string
	cps []flow.Checkpoint
}

func (c *commitLog) emit(lb *LineBatch) error {
	s := strings.TrimSpace(string(bytes.Join(lb.Lines, []byte(" "))))
	if lb.Commit {
		s += "!"
	}
	c.mu.Lock()
	c.got, c.cps = append(c.got, s), append(c.cps, lb.Checkpoint)
	c.mu.Unlock()
	return nil
}

// String is the batches so far, separated by commas.
func (c *commitLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.got, ",")
}

func (c *commitLog) checkpoints() []flow.Checkpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.cps)
}

// TestFollowCommitsByTheBackupsOnDisk: with fewer backups on disk than
// CommitEvery assumes (2: 5 backups), a follower asks for a commit after
// every half of them (here 1), so that what was read since the last commit
// outlives a restart of an exporter that really keeps 1.
func TestFollowCommitsByTheBackupsOnDisk(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	if err := os.WriteFile(filepath.Join(dir, "events-2026-01-01T00-00-00.000.log"), []byte("1\n2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log commitLog
	stop := startSource(t, FileConfig{Path: path, Follow: true, PollInterval: 10 * time.Millisecond, CommitEvery: 2},
		flow.Checkpoint{}, log.emit)
	batches := log.String
	waitFor(t, "line 3", func() bool { return strings.Contains(batches(), "3") })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if want := "1 2!,3!"; batches() != want {
		t.Fatalf("batches %q, want %q (a commit after each finished file: 1 backup on disk)", batches(), want)
	}
}

// TestFollowCommitsAtTheEndOfABurst: a follower of an exporter that rotates
// faster than the coalescing wait allows for (backups 10 ms apart) ends a
// read burst that finished a file since its last commit with an empty batch
// marked Commit at the reader's position, before it waits; a burst that
// finished none asks for nothing. With backups a second apart commits stay
// every CommitEvery files.
func TestFollowCommitsAtTheEndOfABurst(t *testing.T) {
	for _, c := range []struct {
		name    string
		stamp   func(i int) string // backup i's timestamp
		settles bool
	}{
		{"fast", func(i int) string { return fmt.Sprintf("2026-01-01T00-00-00.%03d", 10*i) }, true},
		{"slow", func(i int) string { return fmt.Sprintf("2026-01-01T00-00-%02d.000", i) }, false},
	} {
		t.Run(c.name, func(t *testing.T) { testFollowCommitsAtTheEndOfABurst(t, c.stamp, c.settles) })
	}
}

func testFollowCommitsAtTheEndOfABurst(t *testing.T, stamp func(int) string, settles bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	// Five backups (CommitEvery 2 holds): a commit after every second one.
	for i, content := range []string{"1\n", "2\n", "3\n", "4\n", "5\n"} {
		if err := os.WriteFile(filepath.Join(dir, "events-"+stamp(i)+".log"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, []byte("6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log commitLog
	stop := startSource(t, FileConfig{Path: path, Follow: true, PollInterval: 10 * time.Millisecond, CommitEvery: 2},
		flow.Checkpoint{}, log.emit)
	batches := log.String
	settled := func(s string) string {
		if settles {
			return s + ",!"
		}
		return s
	}
	// The first batch from no checkpoint, and the first after every second
	// finished file; the burst finished backup 5 after the last commit.
	waitFor(t, "line 6", func() bool { return strings.HasSuffix(batches(), settled("6")) })
	// Line 7: a burst that finishes no file asks for no commit.
	appendFile(t, path, []byte("7\n"))
	waitFor(t, "line 7", func() bool { return strings.HasSuffix(batches(), ",7") })
	if want := settled("1!,2,3!,4,5!,6") + ",7"; batches() != want {
		t.Fatalf("batches %q, want %q", batches(), want)
	}
	if cps := log.checkpoints(); settles && cps[6] != cps[5] {
		t.Errorf("the commit's checkpoint %+v, want the reader's position after line 6 %+v", cps[6], cps[5])
	}
	// The live file rotates (a complete new one replaces it at once): the
	// burst that reads the rotated file to its end and the new one ends with
	// a commit at the new file's position.
	if err := os.Rename(path, filepath.Join(dir, "events-"+stamp(5)+".log")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "next.tmp"), []byte("8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "next.tmp"), path); err != nil {
		t.Fatal(err)
	}
	// Slow: the rotated file is the second finished since "5!", and a burst
	// this young leaves that commit to its end (deferCommit).
	last8 := "8,!"
	for deadline := time.Now().Add(10 * time.Second); !strings.HasSuffix(batches(), last8); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("batches %q, want them to end with %q", batches(), last8)
		}
	}
	time.Sleep(50 * time.Millisecond) // more polls: nothing finished, nothing asked
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if want := settled("1!,2,3!,4,5!,6") + ",7," + last8; batches() != want {
		t.Fatalf("batches %q, want %q", batches(), want)
	}
	if !settles {
		return
	}
	cps := log.checkpoints()
	last, prev := cps[len(cps)-1], cps[len(cps)-2]
	if last != prev {
		t.Errorf("the commit's checkpoint %+v, want the reader's position after line 8 %+v", last, prev)
	}
	p, err := decodePos(last.Position)
	if err != nil || p.Name != path || p.Offset != 2 || p.After != stamp(5) {
		t.Errorf("commit at %+v (%v), want offset 2 of the new live file after backup %s", p, err, stamp(5))
	}
}

// TestSettles: a burst ends with a commit when the files finished since the
// last one, the next wait and a partial interval at each end could exceed
// 1.5*CommitEvery rotations.
func TestSettles(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		commitEvery, listed, f int
		gap                    time.Duration
		want                   bool
	}{
		{commitEvery: 2, f: 1, gap: 0, want: true},                      // interval not known
		{commitEvery: 2, f: 1, gap: 230 * ms, want: true},               // 20k flows/s, 10 MiB x 5: waits of 2 intervals
		{commitEvery: 2, f: 1, gap: 300 * ms, want: true},               // the wait capped at 500 ms: 1.67 intervals
		{commitEvery: 2, f: 1, gap: 600 * ms, want: false},              // 0.83 intervals: 1 + 0.83 + 1 <= 3
		{commitEvery: 2, f: 1, gap: time.Second, want: false},           // a commit every 2 files is enough
		{commitEvery: 2, f: 1, gap: 10 * time.Second, want: false},      // a quiet node
		{commitEvery: 5, f: 4, gap: time.Second, want: false},           // 10 backups: 4 + 0.5 + 1 <= 7.5
		{commitEvery: 5, f: 4, gap: 150 * ms, want: true},               // 4 + 3.3 + 1 > 7.5
		{commitEvery: 2, listed: 2, f: 1, gap: time.Second, want: true}, // 2 backups on disk: k 1, 1 + 0.5 + 1 > 1.5
		{commitEvery: 0, f: 1, gap: 230 * ms, want: false},              // backups never deleted
	} {
		s, err := NewFileSource(FileConfig{Path: filepath.Join(t.TempDir(), "events.log"), CommitEvery: c.commitEvery}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		o := &observer{s: s, seen: map[string]seenBackup{}}
		o.gap.Store(int64(c.gap))
		o.listed.Store(int64(c.listed))
		if got := o.settles(c.f); got != c.want {
			t.Errorf("CommitEvery %d, %d backups, %d files since the commit, rotation every %s (wait %s): settles %v, want %v",
				c.commitEvery, c.listed, c.f, c.gap, o.coalesceWait(), got, c.want)
		}
	}
}

// TestDeferCommit: a follower leaves CommitEvery's commit to the end of a
// burst younger than a rotation interval that will end with one; never in
// its first burst (catching up from a checkpoint), nor once the burst is
// older, nor without a file finished, nor when only reading once.
func TestDeferCommit(t *testing.T) {
	ms := time.Millisecond
	now := time.Now()
	for _, c := range []struct {
		name     string
		follow   bool
		finished int
		gap      time.Duration
		woke     time.Time
		want     bool
	}{
		{"young burst", true, 2, 230 * ms, now.Add(-10 * ms), true},
		{"old burst", true, 2, 230 * ms, now.Add(-300 * ms), false},
		{"first burst", true, 2, 230 * ms, time.Time{}, false},
		{"interval not known", true, 2, 0, now.Add(-10 * ms), false},
		{"nothing finished", true, 0, 230 * ms, now.Add(-10 * ms), false},
		{"no follower", false, 2, 230 * ms, now.Add(-10 * ms), false},
		{"slow exporter, young burst", true, 2, 10 * time.Second, now.Add(-10 * ms), true},
	} {
		s, err := NewFileSource(FileConfig{Path: filepath.Join(t.TempDir(), "events.log"), Follow: c.follow, CommitEvery: 2}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		o := &observer{s: s, seen: map[string]seenBackup{}}
		o.gap.Store(int64(c.gap))
		o.listed.Store(5)
		run := &fileRun{s: s, obs: o, commits: commitState{finished: c.finished}, woke: c.woke}
		if got := run.deferCommit(); got != c.want {
			t.Errorf("%s: deferCommit %v, want %v", c.name, got, c.want)
		}
	}
}

// TestFollowEmitsWhenIdle: a follower with IdleEvery emits, while the file
// stays quiet, an empty batch with no checkpoint and no Commit at that
// interval; lines resume as usual; without IdleEvery a quiet file emits
// nothing.
func TestFollowEmitsWhenIdle(t *testing.T) {
	for _, every := range []time.Duration{20 * time.Millisecond, 0} {
		dir := t.TempDir()
		path := filepath.Join(dir, "events.log")
		if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var log commitLog
		stop := startSource(t, FileConfig{Path: path, Follow: true, PollInterval: 5 * time.Millisecond, CommitEvery: 2, IdleEvery: every},
			flow.Checkpoint{}, log.emit)
		waitFor(t, "line 1", func() bool { return strings.HasPrefix(log.String(), "1!") })
		start := time.Now()
		time.Sleep(150 * time.Millisecond)
		appendFile(t, path, []byte("2\n"))
		waitFor(t, "line 2", func() bool { return strings.Contains(log.String(), "2") })
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		got, cps := strings.Split(log.String(), ","), log.checkpoints()
		idle := 0
		for i, s := range got {
			switch {
			case s == "":
				idle++
				if cps[i] != (flow.Checkpoint{}) {
					t.Errorf("IdleEvery %s: idle batch %d with checkpoint %+v, want none", every, i, cps[i])
				}
			case s == "1!" && i == 0, s == "2":
			default:
				t.Errorf("IdleEvery %s: batch %d %q (all: %q)", every, i, s, got)
			}
		}
		// 150 ms quiet: about 7 at 20 ms; at most one per interval.
		if every > 0 && (idle < 2 || idle > int(elapsed/every)+1) {
			t.Errorf("IdleEvery %s: %d idle batches in %s (%q)", every, idle, elapsed, got)
		}
		if every == 0 && idle != 0 {
			t.Errorf("IdleEvery 0: %d idle batches (%q)", idle, got)
		}
		if cp := cps[len(cps)-1]; cp.Source == "" {
			t.Errorf("IdleEvery %s: the batch of line 2 has no checkpoint", every)
		}
	}
}

// TestGapTravelsWithTheLinesAfterIt checks that a gap found on resume is
// handed over in the same batch as the first lines after it (LossAt 0), so
// that the consumer can end it at the first flow after it and commits it
// with the position past it; and that its amount says what is known.
func TestGapTravelsWithTheLinesAfterIt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	os.WriteFile(path, []byte("1\n2\n3\n"), 0o644)
	src, _ := NewFileSource(FileConfig{Path: path}, nil, nil)
	var cp flow.Checkpoint
	src.Run(context.Background(), flow.Checkpoint{}, func(lb *LineBatch) error { cp = lb.Checkpoint; return nil })
	appendFile(t, path, []byte("4\n"))
	// The live file is rotated and deleted while no source runs: the next
	// backup and the new live file are all that is left.
	os.Rename(path, filepath.Join(dir, "rotated"))
	// Compressed, and its first line longer than the first read of a gzip
	// backup (its fingerprint's bytes): the gap still waits for it.
	long := "7" + strings.Repeat("x", 3000)
	os.WriteFile(filepath.Join(dir, "events-2026-01-01T00-00-05.000.log.gz"), gzBytes([]byte(long+"\n8\n")), 0o644)
	os.WriteFile(path, []byte("9\n"), 0o644)
	os.Remove(filepath.Join(dir, "rotated"))
	var batches []LineBatch
	src.Run(context.Background(), cp, func(lb *LineBatch) error {
		c := LineBatch{Checkpoint: lb.Checkpoint, Losses: slices.Clone(lb.Losses), LossAt: slices.Clone(lb.LossAt)}
		for _, l := range lb.Lines {
			c.Lines = append(c.Lines, bytes.Clone(l))
		}
		batches = append(batches, c)
		return nil
	})
	var first *LineBatch
	for i := range batches {
		if len(batches[i].Losses) > 0 {
			first = &batches[i]
			break
		}
	}
	if first == nil || len(first.Losses) != 1 || len(first.Lines) == 0 || string(first.Lines[0]) != long || first.LossIndex(0) != 0 {
		t.Fatalf("the gap is not handed over before the lines after it: %+v", batches)
	}
	l := first.Losses[0]
	if l.Reason != flow.LossRotationGap || l.Amount != flow.AmountUnknown || l.Bytes != 0 || l.Source != src.ID() {
		t.Errorf("gap %+v: want a rotation gap of unknown amount (the live file's final size is unknown)", l)
	}

	// A checkpoint inside a file whose size was seen: at least the rest of
	// it is gone, and maybe whole backups after it.
	dir = t.TempDir()
	path = filepath.Join(dir, "events.log")
	os.WriteFile(path, []byte("1\n2\n3\n"), 0o644)
	src, _ = NewFileSource(FileConfig{Path: path}, nil, nil)
	src.batch = 1
	var cps []flow.Checkpoint
	src.Run(context.Background(), flow.Checkpoint{}, func(lb *LineBatch) error { cps = append(cps, lb.Checkpoint); return nil })
	// Rotated (to a name no listing matches) and deleted only once the new
	// file exists, so that the new file cannot take its inode.
	os.Rename(path, filepath.Join(dir, "rotated"))
	os.WriteFile(path, []byte("9\n"), 0o644)
	os.Remove(filepath.Join(dir, "rotated"))
	lines, losses, _ := oneShot(t, path, cps[0]) // after "1": "2\n3\n" unread
	if strings.Join(lines, ",") != "9" || len(losses) != 1 || losses[0].Amount != flow.AtLeast || losses[0].Bytes != 4 {
		t.Fatalf("lines %q losses %+v: want at least 4 bytes lost", lines, losses)
	}
}

// TestTruncatedLiveFileIsAGapOfUnknownAmount: lines written after the
// reader's position and before the truncation are gone, and nothing can say
// how many; the gap goes with the lines written after the truncation.
func TestTruncatedLiveFileIsAGapOfUnknownAmount(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	os.WriteFile(path, []byte("1\n2\n"), 0o644)
	src, _ := NewFileSource(FileConfig{Path: path}, nil, nil)
	var cp flow.Checkpoint
	src.Run(context.Background(), flow.Checkpoint{}, func(lb *LineBatch) error { cp = lb.Checkpoint; return nil })
	appendFile(t, path, []byte("3\n4\n5\n"))
	os.WriteFile(path, []byte("6\n"), 0o644) // truncated and rewritten: 3, 4, 5 are lost
	var got []string
	var losses []flow.Loss
	var at []int
	src.Run(context.Background(), cp, func(lb *LineBatch) error {
		for i := range lb.Losses {
			at = append(at, len(got)+lb.LossIndex(i))
		}
		for _, l := range lb.Lines {
			got = append(got, string(l))
		}
		losses = append(losses, lb.Losses...)
		return nil
	})
	if strings.Join(got, ",") != "6" || len(losses) != 1 || losses[0].Reason != flow.LossTruncated || losses[0].Amount != flow.AmountUnknown || at[0] != 0 {
		t.Fatalf("lines %q, losses %+v at %v", got, losses, at)
	}
}

// TestDamagedGzipIsRecordedAndReadingGoesOn: a corrupt compressed backup
// delivers what it could, is a damaged_input loss with its position, and the
// next files are read.
func TestDamagedGzipIsRecordedAndReadingGoesOn(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	gz := gzBytes([]byte("1\n2\n3\n4\n5\n6\n7\n8\n9\n"))
	os.WriteFile(filepath.Join(dir, "events-2026-01-01T00-00-01.000.log.gz"), gz[:len(gz)-10], 0o644) // its trailer cut
	os.WriteFile(path, []byte("10\n"), 0o644)
	lines, losses, _ := oneShot(t, path, flow.Checkpoint{})
	if len(losses) != 1 || losses[0].Reason != flow.LossDamagedInput || !strings.Contains(losses[0].Detail, "events-2026-01-01T00-00-01.000.log.gz: damaged after content byte") ||
		lines[len(lines)-1] != "10" {
		t.Fatalf("lines %q losses %+v", lines, losses)
	}
}

// TestTruncationUnderAWriterThatKeepsItsOffset: lumberjack does not open
// its file in append mode, so a file truncated under it is written again at
// the writer's old offset, leaving a hole of NUL bytes. The lines truncated
// away that the reader had not read are a gap of exactly the hole's bytes
// from the reader's position; the lines after the hole are read, once; a
// resume from a checkpoint before the truncation does the same.
func TestTruncationUnderAWriterThatKeepsItsOffset(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString("1\n2\n")
	src, _ := NewFileSource(FileConfig{Path: path}, nil, nil)
	var cp flow.Checkpoint
	src.Run(context.Background(), flow.Checkpoint{}, func(lb *LineBatch) error { cp = lb.Checkpoint; return nil })
	w.WriteString("3\n44\n") // never read
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	for _, resume := range []bool{false, true} {
		if !resume {
			// Truncated, nothing written yet: nothing to report yet.
			lines, losses, _ := oneShot(t, path, cp)
			if len(lines) != 0 || len(losses) != 0 {
				t.Fatalf("empty truncated file: lines %q losses %+v", lines, losses)
			}
			w.WriteString("5\n")
		}
		lines, losses, _ := oneShot(t, path, cp)
		if strings.Join(lines, ",") != "5" || len(losses) != 1 || losses[0].Reason != flow.LossTruncated || losses[0].Amount != flow.AmountExact ||
			losses[0].Bytes != 5 || !strings.Contains(losses[0].Detail, "5 NUL bytes at offset 4") {
			t.Fatalf("resume=%v: lines %q losses %+v", resume, lines, losses)
		}
	}
}
