// FileSource: its configuration and Run, the loop over the sequence of
// files; the other concerns of the file source are in file_*.go.

package ingest

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

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
	// read at most every twice that (see coalesceWait).
	PollInterval time.Duration
	// IdleEvery, when > 0, makes a follower that has emitted nothing for
	// that long emit an empty batch with no checkpoint (and no Commit), and
	// again every IdleEvery while the file stays quiet: the consumer's
	// periodic work (the pipeline's heartbeat stats row, the archive's
	// commit by age) otherwise waits for the next line.
	IdleEvery time.Duration
	// MaxLineBytes is the longest line delivered (default MaxLineBytes); longer
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
	// intervals apart (see coalesceWait) and, when the next read could
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
		cfg.MaxLineBytes = MaxLineBytes
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

// fileRun is the state of one Run: where it is in the sequence of files,
// the file it reads, and the bookkeeping of its commits and idle batches
// (file_pace.go).
type fileRun struct {
	s   *FileSource
	ctx context.Context
	obs *observer
	sp  *splitter

	// The current file (rd nil: between files), and the newest backup read
	// before it: backups named after after are unread.
	rd    *reader
	cur   openFile
	after string
	// pending are gaps found between files, handed over with the next
	// file's first batch (loss).
	pending []flow.Loss

	commits commitState
	idling  idleState
	woke    time.Time // when the last wait ended

	// emit hands a batch to the consumer (out), marked Commit when one is
	// due; idle's batches go to out directly.
	emit, out func(*LineBatch) error
}

// commitState is what CommitEvery's commits depend on.
type commitState struct {
	finished int  // files finished since the last Commit batch
	next     bool // the next batch carries Commit
	settling bool // settle's batch: next is not deferred
}

// idleState is what IdleEvery's empty batches depend on.
type idleState struct {
	emitted bool      // a batch went out since the last check
	last    time.Time // when a batch was last seen going out
	lb      LineBatch // the empty batch
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
	run.commits.next = from.IsZero() && s.cfg.CommitEvery > 0
	run.emit = func(lb *LineBatch) error {
		if run.commits.next && (run.commits.settling || !run.deferCommit()) {
			lb.Commit, run.commits.next, run.commits.finished = true, false, 0
		}
		run.idling.emitted = true
		return emit(lb)
	}
	run.out = emit
	defer run.closeCur()
	if s.cfg.Follow {
		// Watch before the first listing, so that no backup created from
		// now on goes unseen.
		if n, err := startNotify(s.dir, run.obs.coalesceWait, run.obs.onName); err == nil {
			run.obs.n.Store(n)
		}
		octx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		run.obs.scan() // the first listing: the backups on disk before the first file is finished (commitInterval)
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
		if err := run.read(!run.live()); err != nil {
			return err
		}
		if !run.live() {
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
	_, err := run.rd.readAll(run.ctx, run.cur.in, run.s.batch, run.emit, final)
	if err != nil && run.cur.zr != nil &&
		(errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader)) {
		// A damaged compressed backup: what could be read was delivered; the
		// rest is a gap of unknown size, and the source goes on.
		rd := run.rd
		return run.loss(flow.Loss{Reason: flow.LossDamagedInput, Amount: flow.AmountUnknown,
			Detail: fmt.Sprintf("%s: damaged after content byte %d (line %d): %v", rd.name, rd.off+run.sp.pending(), rd.line, err)})
	}
	return err
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
