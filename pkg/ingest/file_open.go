// Opening plain and gzip files at a position, with their fingerprints.

package ingest

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// openFile is an open file and the stream of its content: the file itself,
// or a gzip reader over it (zr).
type openFile struct {
	f  *os.File
	in io.Reader
	zr *gzip.Reader
}

// readFrom is where a file is to be read from: its content at offset off,
// the line-th line. fp, when set, is what its first fpLen content bytes
// must hash to, for it to be the file a checkpoint names and not another
// one with its name or inode.
type readFrom struct {
	off, line int64
	fp        string
	fpLen     int
}

// setReader makes the file named name, a backup (backupTS) or the live file
// (""), the current file: cur is positioned at from, whose fingerprint is
// the file's own.
func (run *fileRun) setReader(name, backupTS string, cur openFile, fi os.FileInfo, from readFrom) {
	run.sp.reset()
	dev, ino := fileIdent(fi)
	rd := &reader{
		src: run.s.id, name: name, fp: from.fp, fpLen: from.fpLen, dev: dev, ino: ino, off: from.off, line: from.line,
		backupTS: backupTS, after: run.after, sp: run.sp, m: run.s.m,
	}
	if cur.zr == nil {
		rd.fpFile, rd.size = cur.f, fi.Size()
	}
	for _, l := range run.pending {
		rd.lb.AddLoss(l)
	}
	run.pending = run.pending[:0]
	run.rd, run.cur = rd, cur
	if run.live() {
		run.s.m.lag.WithLabelValues(run.s.id).Set(float64(fi.Size() - from.off))
	}
}

// live reports whether the current file is the live file.
func (run *fileRun) live() bool { return run.rd != nil && run.rd.backupTS == "" }

// openStat opens path and stats it: no file and no error when it does not
// exist.
func openStat(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("ingest: open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("ingest: stat %s: %w", path, err)
	}
	return f, fi, nil
}

// openLive opens the live file at from (see openPlain).
func (run *fileRun) openLive(from readFrom) (bool, error) { return run.openPlain(run.s.path, "", from) }

// openPlain opens a plain file, a backup (backupTS) or the live file (""),
// at from. ok is false when it does not exist or from.fp does not match.
func (run *fileRun) openPlain(path, backupTS string, from readFrom) (bool, error) {
	f, fi, err := openStat(path)
	if f == nil || err != nil {
		return false, err
	}
	if from.fp != "" {
		fp, n, err := fingerprint(io.NewSectionReader(f, 0, int64(from.fpLen)), from.fpLen)
		if err != nil || n != from.fpLen || fp != from.fp {
			f.Close()
			return false, nil
		}
	}
	fp, n, err := fingerprint(io.NewSectionReader(f, 0, fingerprintLen), fingerprintLen)
	if err != nil {
		f.Close()
		return false, fmt.Errorf("ingest: read %s: %w", path, err)
	}
	if from.off > 0 {
		if _, err := f.Seek(from.off, io.SeekStart); err != nil {
			f.Close()
			return false, fmt.Errorf("ingest: seek %s to %d: %w", path, from.off, err)
		}
	}
	from.fp, from.fpLen = fp, n
	run.setReader(path, backupTS, openFile{f: f, in: f}, fi, from)
	return true, nil
}

// openGz opens a compressed backup and skips off bytes of its content.
func (run *fileRun) openGz(path, backupTS string, from readFrom) (bool, error) {
	if from.fp != "" {
		rc, err := openMaybeGzip(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return false, fmt.Errorf("ingest: open %s: %w", path, err)
		}
		fp, n, err := fingerprint(rc, from.fpLen)
		rc.Close()
		if err != nil || n != from.fpLen || fp != from.fp {
			return false, nil
		}
	}
	f, fi, err := openStat(path)
	if f == nil || err != nil {
		return false, err
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
	if from.off > 0 {
		if k, err := io.CopyN(io.Discard, in, from.off); err != nil {
			zr.Close()
			f.Close()
			return false, fmt.Errorf("ingest: %s: skip to offset %d (got %d): %w", path, from.off, k, err)
		}
	}
	from.fp, from.fpLen = fp, n
	run.setReader(path, backupTS, openFile{f: f, in: in, zr: zr}, fi, from)
	return true, nil
}

// openBackup opens the plain form of b if present, else its gzip form.
func (run *fileRun) openBackup(b backupFile, from readFrom) (bool, error) {
	if b.plain {
		ok, err := run.openPlain(run.s.plainName(b.ts), b.ts, from)
		if ok || err != nil {
			return ok, err
		}
	}
	// Plain gone (compressed meanwhile) or only the .gz exists: the .gz
	// is complete once the plain file is gone.
	if _, err := os.Stat(run.s.plainName(b.ts)); err == nil {
		return false, nil
	}
	return run.openGz(run.s.plainName(b.ts)+".gz", b.ts, from)
}

// closeCur closes the current file. Gaps found after its last line go with
// the next file's lines.
func (run *fileRun) closeCur() {
	if run.cur.zr != nil {
		run.cur.zr.Close()
	}
	if run.cur.f != nil {
		run.cur.f.Close()
	}
	if run.rd != nil && len(run.rd.lb.Losses) > 0 {
		run.pending = append(run.pending, run.rd.lb.Losses...)
		run.rd.lb.Losses, run.rd.lb.LossAt = run.rd.lb.Losses[:0], run.rd.lb.LossAt[:0]
	}
	run.rd, run.cur = nil, openFile{}
}

// holeAtStart reports whether the current file starts with a NUL byte: a
// hole, where a line of events.log would start with '{'.
func (run *fileRun) holeAtStart() bool {
	var b [1]byte
	n, _ := run.cur.f.ReadAt(b[:], 0)
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

// from is where a checkpoint's file is read on from: its content at the
// checkpoint, if it is the file the checkpoint names.
func (p filePos) from() readFrom {
	return readFrom{off: p.Offset, line: p.Line, fp: p.Fingerprint, fpLen: p.FPLen}
}
