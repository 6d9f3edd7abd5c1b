// Tests of the file source through Run: each one drives a source across
// rotations, compression, truncations and restarts as lumberjack and a
// crash would, and checks what it delivered; they share the helpers that
// play the exporter and record the batches, so they stay in one file.

package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
