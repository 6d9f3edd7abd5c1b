// Read pacing and commit policy of a follower: how long a growing file
// grows between reads (coalesceWait), how many finished files go between
// commits (commitInterval), and the empty batches that end a read burst
// (settle) or a quiet spell (idle).

package ingest

import (
	"time"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// The least time between two reads of a growing live file (the coalescing
// wait). The exporter writes (and inotify reports) every event on its own:
// reading on each would cost a read, a stat and a wake-up per flow, and
// every burst of work costs the Go runtime's scheduler and sysmon wake-ups
// of their own, so fewer, larger bursts cost less CPU per line (the
// daemon's table in bench/README.md).
// The wait is coalesceMax (capped by twice PollInterval) unless the exporter
// rotates so fast that the backups would not outlast it: with k =
// CommitEvery (half of max-backups; with fewer backups on disk than the
// configured or assumed max-backups, half of those: commitInterval), reads are
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

// coalesceWait is the coalescing wait of a follower configured by c when
// the exporter rotates every gap (0: not known yet) and keeps listed backups
// (0: none seen): 1.5k-1 rotation intervals at most (half of one when k is
// 1), k the commitInterval.
func coalesceWait(c *FileConfig, gap time.Duration, listed int) time.Duration {
	w := coalesceMax
	if k := commitInterval(c, listed); k > 0 { // lumberjack deletes backups
		w = coalesceUnknown
		if gap > 0 {
			w = min(coalesceMax, gap*time.Duration(3*k-2)/2)
		}
	}
	return min(max(w, coalesceMin), 2*c.PollInterval)
}

// commitInterval is how many finished files a follower configured by c
// reads between commits with listed backups on disk (0: not known):
// CommitEvery, or half the backups on disk when it sees fewer (at least 1).
// The exporter may keep fewer than configured or assumed (a --source flag
// without its settings assumes Cilium's 5), and what was read since the
// last commit must outlive a restart. An exporter that has not rotated
// max-backups times yet gets commits more often than needed until it has.
func commitInterval(c *FileConfig, listed int) int {
	k := c.CommitEvery
	if k > 0 && listed > 0 {
		k = min(k, max(1, listed/2))
	}
	return k
}

// coalesceWait is the source's coalescing wait at what the observer saw.
func (o *observer) coalesceWait() time.Duration {
	return coalesceWait(&o.s.cfg, time.Duration(o.gap.Load()), int(o.listed.Load()))
}

// commitInterval is the source's commit interval at what the observer saw.
func (o *observer) commitInterval() int { return commitInterval(&o.s.cfg, int(o.listed.Load())) }

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
	k := o.commitInterval()
	if k <= 0 {
		return false
	}
	if gap <= 0 {
		return true
	}
	return 2*(time.Duration(f+1)*gap+o.coalesceWait()) > time.Duration(3*k)*gap
}

func (run *fileRun) wait() error {
	t := time.NewTimer(run.s.cfg.PollInterval)
	defer t.Stop()
	if d := run.obs.coalesceWait() - time.Since(run.woke); d > 0 {
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
	if run.commits.finished++; run.commits.finished >= run.obs.commitInterval() {
		run.commits.next = true
	}
}

// settle ends a read burst of a follower: when it finished a file since the
// last commit and the next wait could otherwise take the resume point past
// 1.5*k rotations (see coalesceWait), or a commit was deferred to it
// (deferCommit), an empty batch marked Commit carries the reader's position
// (or the position between files), so that the archive commits it before
// the source sleeps.
func (run *fileRun) settle() error {
	if run.commits.finished == 0 || !(run.commits.next || run.obs.settles(run.commits.finished)) {
		return nil
	}
	run.commits.next, run.commits.settling = true, true
	defer func() { run.commits.settling = false }()
	if run.rd != nil {
		return run.rd.emitPosition(run.emit)
	}
	return run.emit(&LineBatch{Checkpoint: flow.Checkpoint{Source: run.s.id, Position: encodePos(filePos{After: run.after})}})
}

// deferCommit reports whether a follower may leave the commit that
// CommitEvery asks for to the end of the current read burst (settle): when
// the burst will end with one anyway and is young (under a rotation
// interval), so that a burst of two or three files costs one commit, not
// two. Each batch asks again: a burst that grows long (catching up on
// backups) commits every CommitEvery files, at most a rotation interval and
// a batch late.
func (run *fileRun) deferCommit() bool {
	if !run.s.cfg.Follow || run.commits.finished == 0 {
		return false
	}
	gap := time.Duration(run.obs.gap.Load())
	return gap > 0 && !run.woke.IsZero() && time.Since(run.woke) < gap && run.obs.settles(run.commits.finished)
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
	if run.idling.emitted || run.idling.last.IsZero() {
		run.idling.emitted, run.idling.last = false, now
		return nil
	}
	if now.Sub(run.idling.last) < every {
		return nil
	}
	run.idling.last = now
	run.idling.lb = LineBatch{}
	return run.out(&run.idling.lb)
}
