package ingest

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// backupTimeFormat is lumberjack's timestamp in backup names
// (events-2006-01-02T15-04-05.000.log, UTC as Cilium configures it). Names
// in this format sort chronologically as strings.
const backupTimeFormat = "2006-01-02T15-04-05.000"

// FileConfig configures a FileSource.
type FileConfig struct {
	// Path is the live file lumberjack writes (e.g.
	// /var/run/cilium/hubble/events.log); its backups are the
	// <name>-<timestamp><ext>[.gz] files beside it.
	Path string
	// Follow keeps reading as the file grows and rotates until the context
	// is done; without it Run reads the backups and the live file once, to
	// their current end, and returns.
	Follow bool
	// PollInterval is how often the directory and the live file are checked
	// even without inotify events (default 250ms); a growing live file is
	// read at most every twice that (see coalesce).
	PollInterval time.Duration
	// IdleEvery, when > 0, makes a follower that has emitted nothing for
	// that long emit an empty batch with no checkpoint (and no Commit), and
	// again every IdleEvery while the file stays quiet: the consumer's
	// periodic work (the pipeline's heartbeat stats row, the archive's
	// commit by age) otherwise waits for the next line.
	IdleEvery time.Duration
	// MaxLineBytes is the longest line delivered (default 1 MiB); longer
	// lines are skipped with bounded memory and reported as line_too_long.
	MaxLineBytes int
	// BatchLines caps the lines of one batch (default 4096). A batch also
	// never spans more than one read buffer (1 MiB, or MaxLineBytes+1).
	BatchLines int
	// CommitEvery marks the first batch after every CommitEvery-th finished
	// file (a backup read to its end, or the live file after its rotation)
	// with Commit, so that the archive commits at least that often in
	// rotations: after a crash the source re-reads from the last commit, and
	// lumberjack deletes the oldest backup at every rotation once
	// max-backups are kept. The first batch of a Run from no checkpoint is
	// marked too: until a checkpoint names a file, a file deleted during a
	// crash leaves no trace to report as a gap. 0: never (the archive
	// commits by its own limits). A follower that sees fewer backups on disk
	// than 2*CommitEvery commits every half of those instead.
	//
	// A follower reads a growing file at most 1.5*CommitEvery-1 rotation
	// intervals apart (see coalesce) and, when the next read could
	// otherwise come too late, ends a read burst that finished a file since
	// the last commit with an empty batch marked Commit (its checkpoint the
	// reader's position; settle): the resume point after a crash is at most
	// 1.5*CommitEvery rotations old, as it was with commits every
	// CommitEvery files alone and reads half as far apart, for half the read
	// bursts.
	CommitEvery int
}

// FileSource follows a lumberjack-rotated events.log. It reads every backup
// newer than its checkpoint (plain or gzip, oldest first), then the live file,
// follows renames by keeping the rotated file open until its end, and reports
// every gap it can see as a flow.Loss:
//
//   - rotation_gap: a backup (or the checkpoint's file) deleted before it
//     was read; Bytes is its size when it was seen (0 when never seen
//     with a size, or for a live file whose final size is unknown).
//   - truncated: the live file shrank (or its first bytes changed) under
//     the reader; Bytes is unknown (0).
//   - line_too_long: a line over MaxLineBytes, skipped; Events 1 and Bytes.
//
// What is guaranteed: every byte of every file the source opened is
// delivered once, in order, across restarts from any emitted checkpoint. A
// backup created and deleted while the source ran is reported with its size
// when the source saw it in a directory listing or an inotify event before
// its deletion (inotify names every rename into the directory; only a queue
// overflow or a deletion faster than the stat loses the size); a backup that
// came and went while no source ran cannot be seen, only the checkpoint's
// own file is then reported.
type FileSource struct {
	cfg             FileConfig
	path, dir, base string
	prefix, ext     string
	id              string
	log             *zap.Logger
	m               *Metrics
	maxLine, batch  int
}

// NewFileSource prepares a source for cfg.Path; nothing is opened until Run.
func NewFileSource(cfg FileConfig, log *zap.Logger, m *Metrics) (*FileSource, error) {
	if cfg.Path == "" {
		return nil, errors.New("ingest: file source: empty path")
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("ingest: file source %s: %w", cfg.Path, err)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = 1 << 20
	}
	if cfg.BatchLines <= 0 {
		cfg.BatchLines = 4096
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	base := filepath.Base(abs)
	ext := filepath.Ext(base)
	return &FileSource{
		cfg: cfg, path: abs, dir: filepath.Dir(abs), base: base,
		prefix: base[:len(base)-len(ext)] + "-", ext: ext,
		id: "file:" + abs, log: nopLogger(log), m: m,
		maxLine: cfg.MaxLineBytes, batch: cfg.BatchLines,
	}, nil
}

// ID is "file:<absolute path>".
func (s *FileSource) ID() string { return s.id }

// backupFile is one lumberjack backup present in the directory.
type backupFile struct {
	ts        string // lumberjack timestamp
	plain, gz bool   // which forms exist (both while the mill compresses)
	size      int64  // plain size
	dev, ino  uint64 // plain identity
}

func (s *FileSource) plainName(ts string) string {
	return filepath.Join(s.dir, s.prefix+ts+s.ext)
}

// parseBackup recognises a backup name and returns its timestamp.
func (s *FileSource) parseBackup(name string) (ts string, gz, ok bool) {
	if !strings.HasPrefix(name, s.prefix) {
		return "", false, false
	}
	rest := name[len(s.prefix):]
	switch {
	case strings.HasSuffix(rest, s.ext+".gz"):
		rest, gz = rest[:len(rest)-len(s.ext)-3], true
	case strings.HasSuffix(rest, s.ext):
		rest = rest[:len(rest)-len(s.ext)]
	default:
		return "", false, false
	}
	if len(rest) != len(backupTimeFormat) {
		return "", false, false
	}
	if _, err := time.Parse(backupTimeFormat, rest); err != nil {
		return "", false, false
	}
	return rest, gz, true
}

// listBackups returns the backups present, oldest first (none when the
// directory does not exist).
func (s *FileSource) listBackups() ([]backupFile, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("ingest: list %s: %w", s.dir, err)
	}
	var out []backupFile
	idx := map[string]int{}
	for _, e := range ents {
		ts, gz, ok := s.parseBackup(e.Name())
		if !ok {
			continue
		}
		var b backupFile
		if !gz {
			fi, err := e.Info()
			if err != nil {
				continue // gone meanwhile
			}
			b.plain, b.size = true, fi.Size()
			b.dev, b.ino = fileIdent(fi)
		} else {
			b.gz = true
		}
		if i, ok := idx[ts]; ok {
			o := &out[i]
			if b.plain {
				o.plain, o.size, o.dev, o.ino = true, b.size, b.dev, b.ino
			}
			o.gz = o.gz || b.gz
			continue
		}
		b.ts = ts
		idx[ts] = len(out)
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ts < out[j].ts })
	return out, nil
}

// seenBackup is what the observer learnt about a backup.
type seenBackup struct {
	size     int64 // -1: unknown
	dev, ino uint64
}

// observer records every backup that appears while the source runs, even
// while the reader is blocked in emit, so that a backup deleted before it
// was read is reported with its size.
type observer struct {
	s    *FileSource
	mu   sync.Mutex
	seen map[string]seenBackup
	// The newest backup recorded and its time, and the interval between it
	// and the one before (ns; 0: not known).
	newest   string
	newestAt time.Time
	gap      atomic.Int64
	listed   atomic.Int64 // backups in the last directory listing
	wake     chan struct{}
	n        atomic.Pointer[notifier] // nil: polling only
}

// sync handles every directory event already queued: after it, every
// backup created before the call has been recorded (with inotify).
func (o *observer) sync() {
	if n := o.n.Load(); n != nil {
		n.sync()
	}
}

func (o *observer) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *observer) record(ts string, b seenBackup) {
	o.mu.Lock()
	old, ok := o.seen[ts]
	if !ok || old.size < 0 {
		o.seen[ts] = b
	}
	if !ok && ts > o.newest {
		o.rotated(ts)
	}
	o.mu.Unlock()
}

// rotated takes the rotation interval from the names of the newest backup
// and ts, newer (o.mu held).
func (o *observer) rotated(ts string) {
	t, err := time.Parse(backupTimeFormat, ts)
	if err != nil {
		return
	}
	if o.newest != "" && t.After(o.newestAt) {
		gap := t.Sub(o.newestAt)
		o.gap.Store(int64(gap))
		o.s.m.rotEvery.WithLabelValues(o.s.id).Set(gap.Seconds())
		o.reportSlack()
	}
	o.newest, o.newestAt = ts, t
}

// reportSlack sets the slack gauge from the rotation interval and the
// backups of the last listing (o.mu held): a line written now is renamed
// within an interval and deleted after as many more as backups are kept.
// A count below the exporter's max-backups (it has not rotated that often
// yet) understates the slack, never overstates it.
func (o *observer) reportSlack() {
	if gap, n := time.Duration(o.gap.Load()), o.listed.Load(); gap > 0 && n > 0 {
		o.s.m.slack.WithLabelValues(o.s.id).Set((gap * time.Duration(n+1)).Seconds())
	}
}

// coalesce is the source's coalescing wait at the rotation interval seen.
func (o *observer) coalesce() time.Duration {
	return o.s.coalesce(time.Duration(o.gap.Load()), int(o.listed.Load()))
}

// settles reports whether a follower that finished f files since its last
// commit must commit before its next wait: the resume point is then up to f
// rotations old, and by the end of the next burst up to f + wait/gap + 1
// (a partial interval at each end); above 1.5*k it commits now. When the
// exporter rotates faster than coalesceMax allows for, any f does (the
// wait is 1.5k-1 intervals); on a slower exporter commits stay every k
// files, as a commit is also a flows file per partition. Until the interval
// is known, any f does too.
func (o *observer) settles(f int) bool {
	gap := time.Duration(o.gap.Load())
	k := o.s.commitEvery(int(o.listed.Load()))
	if k <= 0 {
		return false
	}
	if gap <= 0 {
		return true
	}
	return 2*(time.Duration(f+1)*gap+o.coalesce()) > time.Duration(3*k)*gap
}

func (o *observer) recordList(bs []backupFile) {
	for _, b := range bs {
		if b.plain {
			o.record(b.ts, seenBackup{size: b.size, dev: b.dev, ino: b.ino})
			continue
		}
		o.mu.Lock()
		old, ok := o.seen[b.ts]
		o.mu.Unlock()
		if !ok || old.size < 0 {
			o.learn(b.ts)
		}
	}
}

// learn records what can be known about backup ts now: the plain file's
// size and identity, else the compressed file's content size (once the
// plain file is gone its .gz is complete).
func (o *observer) learn(ts string) {
	name := o.s.plainName(ts)
	if fi, err := os.Stat(name); err == nil {
		dev, ino := fileIdent(fi)
		o.record(ts, seenBackup{size: fi.Size(), dev: dev, ino: ino})
		return
	}
	if n, ok := gzContentSize(name + ".gz"); ok {
		o.record(ts, seenBackup{size: n})
		return
	}
	o.record(ts, seenBackup{size: -1})
}

// gzContentSize reads the uncompressed size from a complete single-member
// gzip file's trailer (ISIZE, modulo 4 GiB: far above lumberjack sizes).
func gzContentSize(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < 18+8 {
		return 0, false
	}
	var tr [4]byte
	if _, err := f.ReadAt(tr[:], fi.Size()-4); err != nil {
		return 0, false
	}
	return int64(uint32(tr[0]) | uint32(tr[1])<<8 | uint32(tr[2])<<16 | uint32(tr[3])<<24), true
}

func (o *observer) scan() {
	if bs, err := o.s.listBackups(); err == nil {
		o.recordList(bs)
		o.mu.Lock()
		o.listed.Store(int64(len(bs)))
		o.reportSlack()
		o.mu.Unlock()
	}
}

// onName handles an inotify event (nil name: rescan).
func (o *observer) onName(name []byte) {
	defer o.poke()
	if name == nil {
		o.scan()
		return
	}
	if string(name) == o.s.base {
		return
	}
	if ts, _, ok := o.s.parseBackup(string(name)); ok {
		o.learn(ts)
	}
}

// run watches the directory until ctx is done: inotify where available
// (re-armed when the directory comes back), a directory scan every poll
// interval regardless (Run makes the first before it starts run).
func (o *observer) run(ctx context.Context) {
	n := o.n.Load() // armed by Run before it read anything
	defer func() { o.n.Store(nil); n.close() }()
	t := time.NewTicker(o.s.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n.isDead() {
			o.n.Store(nil)
			n.close()
			n = nil
			if nn, err := startNotify(o.s.dir, o.coalesce, o.onName); err == nil {
				n = nn
				o.n.Store(n)
			}
		}
		o.scan()
		o.poke()
	}
}

// fileRun is the state of one Run.
type fileRun struct {
	s    *FileSource
	ctx  context.Context
	emit func(*LineBatch) error
	obs  *observer
	sp   *splitter
	rd   *reader   // current file (nil: between files)
	f    *os.File  // current file's descriptor
	in   io.Reader // current content stream (f, or a gzip reader over it)
	zr   *gzip.Reader
	live bool // rd is the live file
	// pending are gaps found between files, handed over with the next
	// file's first batch (loss).
	pending []flow.Loss
	after   string // backups named after this are unread
	woke    time.Time
	// Files finished since the last Commit batch, and whether the next
	// batch carries Commit.
	finished   int
	commitNext bool
	settling   bool // settle's batch: commitNext is not deferred
	// Whether a batch was emitted since the last idle check, when the last
	// one was seen, the consumer's emit, and the batch for idle.
	emitted  bool
	lastEmit time.Time
	outEmit  func(*LineBatch) error
	idleLB   LineBatch
}

// The least time between two reads of a growing live file (the coalescing
// wait). The exporter writes (and inotify reports) every event on its own:
// reading on each would cost a read, a stat and a wake-up per flow, and
// every burst of work costs the Go runtime's scheduler and sysmon wake-ups
// of their own (~1 µs per line at 20k flows/s and 50 ms; bench/README.md).
// The wait is coalesceMax (capped by twice PollInterval) unless the exporter
// rotates so fast that the backups would not outlast it: with k =
// CommitEvery (half of max-backups; with fewer backups on disk than the
// configured or assumed max-backups, half of those: commitEvery), reads are
// at most 1.5k-1 rotation intervals apart, the interval taken from the names
// of the two newest backups. A burst that finished a file ends with a commit
// (settle), so the checkpoint a crash resumes from was the live file's
// position at most 1 + 1.5k-1 rotations before: 3 of Cilium's 5 backups,
// the other 2 left for the restart. Until two backups have been seen,
// coalesceUnknown.
const (
	coalesceMax     = 500 * time.Millisecond
	coalesceUnknown = 50 * time.Millisecond
	coalesceMin     = 5 * time.Millisecond
)

// coalesce is the coalescing wait when the exporter rotates every gap (0:
// not known yet) and keeps listed backups (0: none seen): 1.5k-1 rotation
// intervals at most (half of one when k is 1), k from commitEvery.
func (s *FileSource) coalesce(gap time.Duration, listed int) time.Duration {
	w := coalesceMax
	if k := s.commitEvery(listed); k > 0 { // lumberjack deletes backups
		w = coalesceUnknown
		if gap > 0 {
			w = min(coalesceMax, gap*time.Duration(3*k-2)/2)
		}
	}
	return min(max(w, coalesceMin), 2*s.cfg.PollInterval)
}

// Run reads from the position after from (zero: from the oldest backup
// present) and emits batches; see Source. Lines are valid until emit returns.
func (s *FileSource) Run(ctx context.Context, from flow.Checkpoint, emit func(*LineBatch) error) error {
	if from.Source != "" && from.Source != s.id {
		return fmt.Errorf("ingest: %s: checkpoint of another source %q", s.id, from.Source)
	}
	pos, err := decodePos(from.Position)
	if err != nil {
		return fmt.Errorf("ingest: %s: bad checkpoint %q: %w", s.id, from.Position, err)
	}
	sp := getSplitter(s.maxLine)
	defer putSplitter(sp) // lines are valid until emit returns: none outlives Run
	run := &fileRun{
		s: s, ctx: ctx, sp: sp,
		obs: &observer{s: s, seen: map[string]seenBackup{}, wake: make(chan struct{}, 1)},
	}
	run.commitNext = from.IsZero() && s.cfg.CommitEvery > 0
	run.emit = func(lb *LineBatch) error {
		if run.commitNext && (run.settling || !run.deferCommit()) {
			lb.Commit, run.commitNext, run.finished = true, false, 0
		}
		run.emitted = true
		return emit(lb)
	}
	run.outEmit = emit
	defer run.closeCur()
	if s.cfg.Follow {
		// Watch before the first listing, so that no backup created from
		// now on goes unseen.
		if n, err := startNotify(s.dir, run.obs.coalesce, run.obs.onName); err == nil {
			run.obs.n.Store(n)
		}
		octx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		run.obs.scan() // the first listing: the backups on disk before the first file is finished (commitEvery)
		go func() { defer wg.Done(); run.obs.run(octx) }()
		defer func() { cancel(); wg.Wait() }()
	}
	if !from.IsZero() {
		if err := run.resume(pos); err != nil {
			return err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if run.rd == nil {
			opened, err := run.next()
			if err != nil {
				return err
			}
			if !opened {
				if !s.cfg.Follow {
					return run.flushPending()
				}
				if err := run.pause(); err != nil {
					return err
				}
				continue
			}
		}
		if err := run.read(!run.live); err != nil {
			return err
		}
		if !run.live {
			run.after = run.rd.backupTS
			run.fileDone()
			run.closeCur()
			continue
		}
		moved, err := run.checkLive()
		if err != nil {
			return err
		}
		if moved {
			continue
		}
		if !s.cfg.Follow {
			return run.flushPending()
		}
		if err := run.pause(); err != nil {
			return err
		}
	}
}

// pause ends a follower's read burst (settle, idle) and waits for more.
// Gaps found in the burst with no line after them go out first: the next
// line may be long in coming.
func (run *fileRun) pause() error {
	if err := run.flushPending(); err != nil {
		return err
	}
	if err := run.settle(); err != nil {
		return err
	}
	if err := run.idle(); err != nil {
		return err
	}
	return run.wait()
}

func (run *fileRun) read(final bool) error {
	_, err := run.rd.readAll(run.ctx, run.in, run.s.batch, run.emit, final)
	if err != nil && run.zr != nil &&
		(errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader)) {
		// A damaged compressed backup: what could be read was delivered; the
		// rest is a gap of unknown size, and the source goes on.
		rd := run.rd
		return run.loss(flow.Loss{Reason: flow.LossDamagedInput, Amount: flow.AmountUnknown,
			Detail: fmt.Sprintf("%s: damaged after content byte %d (line %d): %v", rd.name, rd.off+run.sp.pending(), rd.line, err)})
	}
	return err
}

func (run *fileRun) wait() error {
	t := time.NewTimer(run.s.cfg.PollInterval)
	defer t.Stop()
	if d := run.obs.coalesce() - time.Since(run.woke); d > 0 {
		c := time.NewTimer(d)
		select {
		case <-run.ctx.Done():
			c.Stop()
			return run.ctx.Err()
		case <-c.C:
		}
	}
	select {
	case <-run.ctx.Done():
		return run.ctx.Err()
	case <-run.obs.wake:
	case <-t.C:
	}
	run.woke = time.Now()
	return nil
}

// fileDone counts a file read to its end (CommitEvery).
func (run *fileRun) fileDone() {
	if run.s.cfg.CommitEvery <= 0 {
		return
	}
	if run.finished++; run.finished >= run.commitEvery() {
		run.commitNext = true
	}
}

// settle ends a read burst of a follower: when it finished a file since the
// last commit and the next wait could otherwise take the resume point past
// 1.5*k rotations (see coalesce), or a commit was deferred to it
// (deferCommit), an empty batch marked Commit carries the reader's position
// (or the position between files), so that the archive commits it before
// the source sleeps.
func (run *fileRun) settle() error {
	if run.finished == 0 || !(run.commitNext || run.obs.settles(run.finished)) {
		return nil
	}
	run.commitNext, run.settling = true, true
	defer func() { run.settling = false }()
	if run.rd != nil {
		return run.rd.emitPosition(run.emit)
	}
	return run.emit(&LineBatch{Checkpoint: flow.Checkpoint{Source: run.s.id, Position: encodePos(filePos{After: run.after})}})
}

// idle emits an empty batch with no checkpoint when nothing was emitted for
// IdleEvery (see FileConfig.IdleEvery). It bypasses run.emit: the batch
// carries no position, so it must not take a Commit meant for one.
func (run *fileRun) idle() error {
	every := run.s.cfg.IdleEvery
	if every <= 0 {
		return nil
	}
	now := time.Now()
	if run.emitted || run.lastEmit.IsZero() {
		run.emitted, run.lastEmit = false, now
		return nil
	}
	if now.Sub(run.lastEmit) < every {
		return nil
	}
	run.lastEmit = now
	run.idleLB = LineBatch{}
	return run.outEmit(&run.idleLB)
}

// deferCommit reports whether a follower may leave the commit that
// CommitEvery asks for to the end of the current read burst (settle): when
// the burst will end with one anyway and is young (under a rotation
// interval), so that a burst of two or three files costs one commit, not
// two. Each batch asks again: a burst that grows long (catching up on
// backups) commits every CommitEvery files, at most a rotation interval and
// a batch late.
func (run *fileRun) deferCommit() bool {
	if !run.s.cfg.Follow || run.finished == 0 {
		return false
	}
	gap := time.Duration(run.obs.gap.Load())
	return gap > 0 && !run.woke.IsZero() && time.Since(run.woke) < gap && run.obs.settles(run.finished)
}

// commitEvery is CommitEvery, or half the backups on disk when a follower
// sees fewer (at least 1): the exporter may keep fewer than configured or
// assumed (a --source flag without its settings assumes Cilium's 5), and
// what was read since the last commit must outlive a restart. An exporter
// that has not rotated max-backups times yet gets commits more often than
// needed until it has.
func (run *fileRun) commitEvery() int { return run.s.commitEvery(int(run.obs.listed.Load())) }

// commitEvery is CommitEvery with listed backups on disk (0: not known).
func (s *FileSource) commitEvery(listed int) int {
	k := s.cfg.CommitEvery
	if k > 0 && listed > 0 {
		k = min(k, max(1, listed/2))
	}
	return k
}

func (run *fileRun) closeCur() {
	if run.zr != nil {
		run.zr.Close()
		run.zr = nil
	}
	if run.f != nil {
		run.f.Close()
		run.f = nil
	}
	if run.rd != nil && len(run.rd.lb.Losses) > 0 {
		// Gaps after the file's last line go with the next file's lines.
		run.pending = append(run.pending, run.rd.lb.Losses...)
		run.rd.lb.Losses, run.rd.lb.LossAt = run.rd.lb.Losses[:0], run.rd.lb.LossAt[:0]
	}
	run.rd, run.in, run.live = nil, nil, false
}

// loss records a gap, counts it and logs it. It is handed over with the
// lines read after it (pending, or the current file's batch), so that the
// consumer can bound it by the first event after it, and in the same batch
// as the checkpoint past it: a crash before that batch is committed finds
// the gap again. A gap with nothing to read after it goes out at the end of
// the read burst (flushPending), with the position past it.
func (run *fileRun) loss(l flow.Loss) error {
	if l.Time.IsZero() {
		l.Time = time.Now().UTC()
	}
	l.Source = run.s.id
	m := run.s.m
	if l.Bytes > 0 {
		m.lostBytes.WithLabelValues(run.s.id, l.Reason).Add(float64(l.Bytes))
	}
	if l.Events > 0 {
		m.lostLines.WithLabelValues(run.s.id, l.Reason).Add(float64(l.Events))
	}
	m.gaps.WithLabelValues(run.s.id, l.Reason, l.Amount.String()).Inc()
	run.s.log.Warn("ingest: gap", zap.String("source", run.s.id), zap.String("reason", l.Reason),
		zap.String("detail", l.Detail), zap.Uint64("bytes", l.Bytes), zap.Stringer("amount", l.Amount))
	if run.rd != nil {
		run.rd.lb.AddLoss(l)
		return nil
	}
	run.pending = append(run.pending, l)
	return nil
}

// flushPending hands over the gaps not yet emitted, with the position past
// them: the current file's (its batch holds them) or the position between
// files.
func (run *fileRun) flushPending() error {
	if run.rd != nil {
		if len(run.rd.lb.Losses) == 0 {
			return nil
		}
		return run.rd.emitPosition(run.emit)
	}
	if len(run.pending) == 0 {
		return nil
	}
	lb := &LineBatch{Checkpoint: flow.Checkpoint{Source: run.s.id, Position: encodePos(filePos{After: run.after})}}
	for _, l := range run.pending {
		lb.AddLoss(l)
	}
	run.pending = run.pending[:0]
	return run.emit(lb)
}

// setReader makes f (already positioned, content stream in) the current file.
func (run *fileRun) setReader(f *os.File, in io.Reader, zr *gzip.Reader, name string, fi os.FileInfo, fp string, fpLen int, off, line int64, backupTS string, live bool) {
	run.sp.reset()
	dev, ino := fileIdent(fi)
	rd := &reader{
		src: run.s.id, name: name, fp: fp, fpLen: fpLen, dev: dev, ino: ino, off: off, line: line,
		backupTS: backupTS, after: run.after, sp: run.sp, m: run.s.m,
	}
	if zr == nil {
		rd.fpFile, rd.size = f, fi.Size()
	}
	for _, l := range run.pending {
		rd.lb.AddLoss(l)
	}
	run.pending = run.pending[:0]
	run.rd, run.f, run.in, run.zr, run.live = rd, f, in, zr, live
	if live {
		run.s.m.lag.WithLabelValues(run.s.id).Set(float64(fi.Size() - off))
	}
}

// openPlain opens a plain file at off. ok is false when it does not exist
// or (fp non-empty) its first fpLen bytes do not hash to fp.
func (run *fileRun) openPlain(path, wantFP string, wantFPLen int, off, line int64, backupTS string, live bool) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("ingest: open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return false, fmt.Errorf("ingest: stat %s: %w", path, err)
	}
	if wantFP != "" {
		fp, n, err := fingerprint(io.NewSectionReader(f, 0, int64(wantFPLen)), wantFPLen)
		if err != nil || n != wantFPLen || fp != wantFP {
			f.Close()
			return false, nil
		}
	}
	fp, n, err := fingerprint(io.NewSectionReader(f, 0, fingerprintLen), fingerprintLen)
	if err != nil {
		f.Close()
		return false, fmt.Errorf("ingest: read %s: %w", path, err)
	}
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return false, fmt.Errorf("ingest: seek %s to %d: %w", path, off, err)
		}
	}
	run.setReader(f, f, nil, path, fi, fp, n, off, line, backupTS, live)
	return true, nil
}

// openGz opens a compressed backup and skips off bytes of its content.
func (run *fileRun) openGz(path, wantFP string, wantFPLen int, off, line int64, backupTS string) (bool, error) {
	if wantFP != "" {
		rc, err := openMaybeGzip(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return false, fmt.Errorf("ingest: open %s: %w", path, err)
		}
		fp, n, err := fingerprint(rc, wantFPLen)
		rc.Close()
		if err != nil || n != wantFPLen || fp != wantFP {
			return false, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("ingest: open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return false, fmt.Errorf("ingest: stat %s: %w", path, err)
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		f.Close()
		return false, fmt.Errorf("ingest: %s: %w", path, err)
	}
	zr.Multistream(true)
	// The fingerprint is the first bytes of the content; read them and
	// hand them back to the splitter through the same stream.
	head := make([]byte, fingerprintLen)
	n, err := io.ReadFull(zr, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		zr.Close()
		f.Close()
		return false, fmt.Errorf("ingest: %s: %w", path, err)
	}
	fp, _, _ := fingerprint(strings.NewReader(string(head[:n])), n)
	var in io.Reader = io.MultiReader(strings.NewReader(string(head[:n])), zr)
	if off > 0 {
		if k, err := io.CopyN(io.Discard, in, off); err != nil {
			zr.Close()
			f.Close()
			return false, fmt.Errorf("ingest: %s: skip to offset %d (got %d): %w", path, off, k, err)
		}
	}
	run.setReader(f, in, zr, path, fi, fp, n, off, line, backupTS, false)
	return true, nil
}

// openBackup opens the plain form of b if present, else its gzip form.
func (run *fileRun) openBackup(b backupFile, wantFP string, wantFPLen int, off, line int64) (bool, error) {
	if b.plain {
		ok, err := run.openPlain(run.s.plainName(b.ts), wantFP, wantFPLen, off, line, b.ts, false)
		if ok || err != nil {
			return ok, err
		}
	}
	// Plain gone (compressed meanwhile) or only the .gz exists: the .gz
	// is complete once the plain file is gone.
	if _, err := os.Stat(run.s.plainName(b.ts)); err == nil {
		return false, nil
	}
	return run.openGz(run.s.plainName(b.ts)+".gz", wantFP, wantFPLen, off, line, b.ts)
}

// resume positions the run at a checkpoint, reporting the gap when its file
// is gone. The checkpoint's file is looked for as the live file (same inode
// and first bytes, not shorter than the offset), then among the backups (the
// plain file by inode, or by name, or a compressed one by content); an
// inode is reused as soon as a compressed backup's plain file is deleted,
// so a shorter live file with the same inode is only taken for a truncation
// once the backups do not have it.
func (run *fileRun) resume(p filePos) error {
	run.after = p.After
	if p.Name == "" && p.Inode == 0 && p.Fingerprint == "" {
		return nil // between files
	}
	sameLive := false
	if p.Backup == "" {
		if fi, err := os.Stat(run.s.path); err == nil {
			dev, ino := fileIdent(fi)
			sameLive = dev == p.Dev && ino == p.Inode
			if sameLive && fi.Size() == 0 && p.Offset > 0 {
				// Truncated and not written since: where the writer goes
				// on tells what was lost (checkLive); wait at the
				// checkpoint until it does.
				if ok, err := run.openPlain(run.s.path, "", 0, p.Offset, p.Line, "", true); ok || err != nil {
					return err
				}
			}
			if sameLive && fi.Size() >= p.Offset {
				ok, err := run.openPlain(run.s.path, p.Fingerprint, p.FPLen, p.Offset, p.Line, "", true)
				if ok || err != nil {
					return err
				}
				if startsWithHole(run.s.path) {
					// Truncated and written again at the writer's old
					// offset: resume where the checkpoint is; the lines
					// truncated away after it are the hole read next.
					if ok, err := run.openPlain(run.s.path, "", 0, p.Offset, p.Line, "", true); ok || err != nil {
						return err
					}
				}
			}
		}
	}
	// A listing can miss an entry being compressed (no snapshot): look twice.
	for attempt := 0; attempt < 2; attempt++ {
		bs, err := run.s.listBackups()
		if err != nil {
			return err
		}
		for _, b := range bs {
			match := false
			switch {
			case b.plain && p.Inode != 0 && b.dev == p.Dev && b.ino == p.Inode:
				match = true
			case p.Backup != "" && b.ts == p.Backup:
				match = true
			case p.Backup == "" && b.ts > p.After && b.gz && p.FPLen > 0:
				match = true // the live file, rotated and compressed since: check its content
			}
			if !match {
				continue
			}
			ok, err := run.openBackup(b, p.Fingerprint, p.FPLen, p.Offset, p.Line)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		}
	}
	if sameLive {
		// The live file, shrunk or rewritten under the checkpoint, unless
		// a backup newer than the checkpoint's shows that it rotated (and
		// the inode went to a new file).
		rotated := false
		if bs, err := run.s.listBackups(); err == nil && len(bs) > 0 {
			rotated = bs[len(bs)-1].ts > p.After
		}
		fi, err := os.Stat(run.s.path)
		if err == nil && !rotated {
			ok, err := run.openPlain(run.s.path, "", 0, 0, 0, "", true)
			if err != nil {
				return err
			}
			if ok {
				// What was written after the checkpoint and before the
				// truncation is gone; how much cannot be known.
				return run.loss(flow.Loss{Reason: flow.LossTruncated, Amount: flow.AmountUnknown,
					Detail: fmt.Sprintf("%s: %d bytes, rewritten or shrunk under checkpoint offset %d", p.Name, fi.Size(), p.Offset)})
			}
		}
	}
	// The checkpoint's file is gone, and with it whatever followed the
	// checkpoint in it; backups rotated and deleted after it while no
	// source ran left no trace, so the amount is a lower bound at best:
	// the rest of the file as far as it was seen.
	l := flow.Loss{Reason: flow.LossRotationGap, Detail: p.Name, Amount: flow.AmountUnknown}
	if p.Size > p.Offset {
		l.Bytes, l.Amount = uint64(p.Size-p.Offset), flow.AtLeast
	}
	if p.Backup != "" {
		run.after = p.Backup
		l.Detail += " (deleted before it was read to its end, with any backups rotated after it while the source was not running)"
	} else {
		l.Detail += " (the live file at the checkpoint; rotated and deleted since, with any backups rotated after it while the source was not running)"
	}
	return run.loss(l)
}

// next opens the next file after run.after: the oldest newer backup, else
// the live file. It reports backups seen but deleted unread. opened is false
// when there is nothing to read yet.
func (run *fileRun) next() (opened bool, err error) {
	for {
		cand, err := run.nextBackup("")
		if err != nil {
			return false, err
		}
		if cand != nil {
			ok, err := run.openBackup(*cand, "", 0, 0, 0)
			if err != nil {
				return false, err
			}
			if !ok {
				continue // deleted meanwhile: look again, which reports it
			}
			return true, nil
		}
		ok, err := run.openPlain(run.s.path, "", 0, 0, 0, "", true)
		if err != nil || !ok {
			return false, err
		}
		// A rotation between the listing and the open: older files first.
		bs, err := run.s.listBackups()
		if err != nil {
			return false, err
		}
		run.obs.sync()
		newer := len(bs) > 0 && bs[len(bs)-1].ts > run.after
		run.obs.mu.Lock()
		for ts := range run.obs.seen {
			newer = newer || ts > run.after
		}
		run.obs.mu.Unlock()
		if newer {
			run.closeCur()
			continue
		}
		return true, nil
	}
}

// nextBackup returns the oldest backup named after run.after (and before
// until, if not empty) that is present, reporting the ones seen before it
// that are gone unread. A directory listing is no snapshot (an entry renamed
// or compressed during it can be missed), so what the listing lacks is
// checked by name: the plain file first, then its .gz (lumberjack's mill
// creates the complete .gz before it removes the plain file).
func (run *fileRun) nextBackup(until string) (*backupFile, error) {
	bs, err := run.s.listBackups()
	if err != nil {
		return nil, err
	}
	run.obs.sync()
	run.obs.recordList(bs)
	listed := make(map[string]int, len(bs))
	cands := make([]string, 0, len(bs))
	for i, b := range bs {
		listed[b.ts] = i
		if b.ts > run.after && (until == "" || b.ts < until) {
			cands = append(cands, b.ts)
		}
	}
	sizes := map[string]int64{}
	run.obs.mu.Lock()
	for ts, sb := range run.obs.seen {
		if ts <= run.after {
			delete(run.obs.seen, ts)
			continue
		}
		sizes[ts] = sb.size
		if _, ok := listed[ts]; !ok && (until == "" || ts < until) {
			cands = append(cands, ts)
		}
	}
	run.obs.mu.Unlock()
	sort.Strings(cands)
	for i, ts := range cands {
		if i > 0 && ts == cands[i-1] {
			continue
		}
		if j, ok := listed[ts]; ok {
			b := bs[j]
			return &b, nil
		}
		if b, ok := run.s.statBackup(ts); ok {
			return &b, nil
		}
		l := flow.Loss{Reason: flow.LossRotationGap, Detail: filepath.Base(run.s.plainName(ts)) + " deleted before it was read", Amount: flow.AmountUnknown}
		if sz, ok := sizes[ts]; ok && sz >= 0 {
			// A backup is complete when it is renamed: its size is all of it.
			l.Bytes, l.Amount = uint64(sz), flow.AmountExact
		}
		run.obs.mu.Lock()
		delete(run.obs.seen, ts)
		run.obs.mu.Unlock()
		run.after = ts
		if err := run.loss(l); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// statBackup looks a backup up by name.
func (s *FileSource) statBackup(ts string) (backupFile, bool) {
	if fi, err := os.Stat(s.plainName(ts)); err == nil {
		dev, ino := fileIdent(fi)
		return backupFile{ts: ts, plain: true, size: fi.Size(), dev: dev, ino: ino}, true
	}
	if _, err := os.Stat(s.plainName(ts) + ".gz"); err == nil {
		return backupFile{ts: ts, gz: true}, true
	}
	return backupFile{}, false
}

// checkLive is called at the end of the live file's data: it reports moved
// when the file was rotated away (then it is read to its end and closed) or
// truncated (then reading restarts at offset 0).
func (run *fileRun) checkLive() (moved bool, err error) {
	rd := run.rd
	fi, err := os.Stat(run.s.path)
	if err != nil {
		// Gone without a successor yet (between rename and create, or the
		// directory vanished): keep the descriptor, wait for the new file.
		return false, nil
	}
	dev, ino := fileIdent(fi)
	if dev == rd.dev && ino == rd.ino {
		readPos := rd.off + run.sp.pending()
		changed := fi.Size() < readPos
		if !changed && rd.fpLen > 0 {
			fp, n, err := fingerprint(io.NewSectionReader(run.f, 0, int64(rd.fpLen)), rd.fpLen)
			changed = err != nil || n != rd.fpLen || fp != rd.fp
		}
		if changed && fi.Size() == 0 {
			// Truncated, and nothing written since: whether the writer
			// goes on at offset 0 or at its old offset (leaving a hole)
			// shows once it writes. Nothing to read until then.
			return false, nil
		}
		if changed && fi.Size() >= readPos && run.holeAtStart() {
			// Truncated and written again at the writer's old offset:
			// what follows the reader's position is where it was, the
			// lines truncated away that it had not read are a hole it
			// finds as it reads on (reader.endHole).
			rd.fp, rd.fpLen, _ = fingerprint(io.NewSectionReader(run.f, 0, fingerprintLen), fingerprintLen)
			changed = false
		}
		if !changed {
			rd.size = fi.Size()
			run.s.m.lag.WithLabelValues(run.s.id).Set(float64(fi.Size() - readPos))
			return false, nil
		}
		detail := fmt.Sprintf("%s: shrank to %d bytes under the reader at %d", rd.name, fi.Size(), readPos)
		if fi.Size() >= readPos {
			detail = fmt.Sprintf("%s: rewritten from the start under the reader at %d", rd.name, readPos)
		}
		if _, err := run.f.Seek(0, io.SeekStart); err != nil {
			return false, fmt.Errorf("ingest: seek %s: %w", rd.name, err)
		}
		run.sp.reset()
		rd.off, rd.line, rd.size = 0, 0, fi.Size()
		rd.fp, rd.fpLen, _ = fingerprint(io.NewSectionReader(run.f, 0, fingerprintLen), fingerprintLen)
		// Lines written after the reader's position and before the
		// truncation are gone; how many cannot be known (none, if the
		// reader had caught up).
		return true, run.loss(flow.Loss{Reason: flow.LossTruncated, Detail: detail, Amount: flow.AmountUnknown})
	}
	// Rotated: lumberjack closed the file before renaming it, so what the
	// descriptor still reads is all there is.
	if err := run.read(true); err != nil {
		return false, err
	}
	run.fileDone()
	if ts := run.findRotated(); ts != "" {
		// Backups between the previous one and this file's own (none
		// should exist: only this file was renamed) would be read first.
		b, err := run.nextBackup(ts)
		if err != nil {
			return false, err
		}
		if b == nil {
			run.after = ts
		} else {
			// Read from there on: the rotated file's own backup may then
			// be delivered again, which beats skipping b.
			run.s.log.Warn("ingest: backup older than the rotated live file", zap.String("source", run.s.id), zap.String("backup", b.ts))
		}
	}
	run.s.m.rotations.WithLabelValues(run.s.id).Inc()
	run.closeCur()
	return true, nil
}

// holeAtStart reports whether the current file starts with a NUL byte: a
// hole, where a line of events.log would start with '{'.
func (run *fileRun) holeAtStart() bool {
	var b [1]byte
	n, _ := run.f.ReadAt(b[:], 0)
	return n == 1 && b[0] == 0
}

// startsWithHole is holeAtStart of the file at path.
func startsWithHole(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [1]byte
	n, _ := f.ReadAt(b[:], 0)
	return n == 1 && b[0] == 0
}

// findRotated returns the backup timestamp of the current (rotated) live
// file: by inode among plain backups or what the observer saw, else by
// content among compressed ones; "" when it is gone.
func (run *fileRun) findRotated() string {
	rd := run.rd
	bs, _ := run.s.listBackups()
	run.obs.sync()
	run.obs.recordList(bs)
	for _, b := range bs {
		if b.ts > run.after && b.plain && b.dev == rd.dev && b.ino == rd.ino {
			return b.ts
		}
	}
	// The inode may have belonged to an older, deleted backup before this
	// file was created; while the file is open it cannot be reused, so its
	// own backup is the newest one seen with it.
	best := ""
	run.obs.mu.Lock()
	for ts, sb := range run.obs.seen {
		if ts > run.after && ts > best && sb.size >= 0 && sb.dev == rd.dev && sb.ino == rd.ino {
			best = ts
		}
	}
	run.obs.mu.Unlock()
	if best != "" {
		return best
	}
	fp, n, err := fingerprint(io.NewSectionReader(run.f, 0, fingerprintLen), fingerprintLen)
	if err != nil || n == 0 {
		return ""
	}
	for _, b := range bs {
		if b.ts <= run.after || !b.gz || b.plain {
			continue
		}
		rc, err := openMaybeGzip(run.s.plainName(b.ts) + ".gz")
		if err != nil {
			continue
		}
		gfp, gn, err := fingerprint(rc, n)
		rc.Close()
		if err == nil && gn == n && gfp == fp {
			return b.ts
		}
	}
	// Seen but never identified (deleted or compressed before a stat):
	// this file was live with no backup after run.after when it was
	// opened, so the first backup after that is its own.
	first := ""
	run.obs.mu.Lock()
	for ts, sb := range run.obs.seen {
		if ts > run.after && (first == "" || ts < first) {
			first = ts
			best = ""
			if sb.ino == 0 {
				best = ts
			}
		}
	}
	run.obs.mu.Unlock()
	return best
}
