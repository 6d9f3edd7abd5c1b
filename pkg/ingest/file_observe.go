// The observer: records every backup that appears while the source runs,
// and the exporter's rotation interval from their names.

package ingest

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

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
			if nn, err := startNotify(o.s.dir, o.coalesceWait, o.onName); err == nil {
				n = nn
				o.n.Store(n)
			}
		}
		o.scan()
		o.poke()
	}
}
