// Where to read next: resuming at a checkpoint, the next file after the
// current one, and the live file's rotation and truncation.

package ingest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

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
				if ok, err := run.openLive(readFrom{off: p.Offset, line: p.Line}); ok || err != nil {
					return err
				}
			}
			if sameLive && fi.Size() >= p.Offset {
				ok, err := run.openLive(p.from())
				if ok || err != nil {
					return err
				}
				if startsWithHole(run.s.path) {
					// Truncated and written again at the writer's old
					// offset: resume where the checkpoint is; the lines
					// truncated away after it are the hole read next.
					if ok, err := run.openLive(readFrom{off: p.Offset, line: p.Line}); ok || err != nil {
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
			ok, err := run.openBackup(b, p.from())
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
			ok, err := run.openLive(readFrom{})
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
			ok, err := run.openBackup(*cand, readFrom{})
			if err != nil {
				return false, err
			}
			if !ok {
				continue // deleted meanwhile: look again, which reports it
			}
			return true, nil
		}
		ok, err := run.openLive(readFrom{})
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
			fp, n, err := fingerprint(io.NewSectionReader(run.cur.f, 0, int64(rd.fpLen)), rd.fpLen)
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
			rd.fp, rd.fpLen, _ = fingerprint(io.NewSectionReader(run.cur.f, 0, fingerprintLen), fingerprintLen)
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
		if _, err := run.cur.f.Seek(0, io.SeekStart); err != nil {
			return false, fmt.Errorf("ingest: seek %s: %w", rd.name, err)
		}
		run.sp.reset()
		rd.off, rd.line, rd.size = 0, 0, fi.Size()
		rd.fp, rd.fpLen, _ = fingerprint(io.NewSectionReader(run.cur.f, 0, fingerprintLen), fingerprintLen)
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
	fp, n, err := fingerprint(io.NewSectionReader(run.cur.f, 0, fingerprintLen), fingerprintLen)
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
