package archive

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// LockedError: another writer holds the archive root's writer lock.
type LockedError struct {
	Root   string
	Holder string // what the holder wrote into the lock file: "pid N on HOST since TIME"
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("archive: %s is in use by another writer (%s): an archive root has one writer (a daemon, an import), so stop it or use another --archive",
		e.Root, e.Holder)
}

// OpenWait is Open for a writer that takes the root over from another, as
// a daemon's new version started beside the old one during an upgrade:
// while another process holds the root's writer lock, it waits for its
// release (trying again every lockPoll) instead of failing, calling waiting
// (if not nil) once with the holder when it starts to wait. It returns
// ctx's error if ctx is done first.
func OpenWait(ctx context.Context, cfg Config, log *zap.Logger, reg prometheus.Registerer, waiting func(*LockedError)) (*Writer, error) {
	return open(cfg, log, reg, &lockWaiter{ctx: ctx, waiting: waiting})
}

// lockWaiter is OpenWait's wait for the root's lock.
type lockWaiter struct {
	ctx     context.Context
	waiting func(*LockedError)
	start   time.Time // of the wait; zero: the lock was free
	timer   *time.Timer
}

// pause is lockRoot's wait: lockPoll, or ctx's error once it is done.
func (l *lockWaiter) pause(w *Writer, e *LockedError) error {
	if l.start.IsZero() {
		l.start = time.Now()
		l.timer = time.NewTimer(lockPoll)
		w.m.lockWaiting.Set(1)
		w.log.Info("waiting for the archive's writer lock", zap.String("root", e.Root), zap.String("holder", e.Holder))
		if l.waiting != nil {
			l.waiting(e)
		}
	} else {
		l.timer.Reset(lockPoll)
	}
	select {
	case <-l.ctx.Done():
		l.timer.Stop()
		w.m.lockWaiting.Set(0)
		return fmt.Errorf("archive: waiting for the writer lock of %s: %w", e.Root, l.ctx.Err())
	case <-l.timer.C:
		return nil
	}
}

// took records that the lock was taken after waiting (if it was).
func (l *lockWaiter) took(w *Writer) {
	if l == nil || l.start.IsZero() {
		return
	}
	l.timer.Stop()
	waited := time.Since(l.start)
	w.m.lockWaiting.Set(0)
	w.m.lockWaitSeconds.Observe(waited.Seconds())
	w.log.Info("took the archive's writer lock", zap.String("root", w.cfg.Root), zap.Duration("waited", waited))
}

// lockPoll is how often a writer waiting for the root's lock tries again:
// the most it adds to a hand-over (flock(2) cannot be waited for with a
// deadline or cancelled, so the wait polls: one system call per try).
const lockPoll = 5 * time.Millisecond
