// Tests of read pacing, commits and idle batches (file_pace.go).

package ingest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

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
