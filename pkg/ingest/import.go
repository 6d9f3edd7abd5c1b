package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// ImportSource reads one events.log file (plain or gzip) once, to its end.
// Its ID is derived from the file's content (fingerprint of its first bytes),
// not its name, so the archive's committed checkpoint for that ID tells
// whether, and how far, the file was already imported, even after renames or
// compression.
type ImportSource struct {
	path  string
	id    string
	fp    string
	fpLen int
	max   int
	batch int
	log   *zap.Logger
	m     *Metrics
}

// NewImportSource prepares the import of one file.
func NewImportSource(path string, log *zap.Logger, m *Metrics) (*ImportSource, error) {
	path = gzSuccessor(path)
	rc, err := openMaybeGzip(path)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	fp, n, err := fingerprint(rc, fingerprintLen)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("ingest: %s: %w", path, err)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &ImportSource{
		path: path, fp: fp, fpLen: n, id: "import:" + fp[:32],
		max: 1 << 20, batch: 4096, log: nopLogger(log), m: m,
	}, nil
}

// ID is "import:<content fingerprint>".
func (s *ImportSource) ID() string { return s.id }

// Run reads the file from the checkpoint's offset to its end.
func (s *ImportSource) Run(ctx context.Context, from flow.Checkpoint, emit func(*LineBatch) error) error {
	pos, err := decodePos(from.Position)
	if err != nil {
		return fmt.Errorf("ingest: %s: bad checkpoint: %w", s.path, err)
	}
	rc, err := openMaybeGzip(gzSuccessor(s.path))
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	defer rc.Close()
	if pos.Offset > 0 {
		if _, err := io.CopyN(io.Discard, rc, pos.Offset); err != nil {
			return fmt.Errorf("ingest: %s: skip to offset %d: %w", s.path, pos.Offset, err)
		}
	}
	sp := getSplitter(s.max)
	defer putSplitter(sp) // lines are valid until emit returns
	r := &reader{src: s.id, name: s.path, fp: s.fp, fpLen: s.fpLen, off: pos.Offset, line: pos.Line, sp: sp, m: s.m}
	_, err = r.readAll(ctx, rc, s.batch, emit, true)
	return err
}

// gzSuccessor returns path, or path+".gz" when path is gone and lumberjack's
// mill has compressed it meanwhile (same content).
func gzSuccessor(path string) string {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(path + ".gz"); err == nil {
			return path + ".gz"
		}
	}
	return path
}

// reader turns one file's content into line batches with checkpoints.
type reader struct {
	src, name string
	fp        string
	fpLen     int
	dev, ino  uint64
	size      int64       // file size when last checked (0: unknown)
	backupTS  string      // lumberjack timestamp when read as a backup
	after     string      // newest backup timestamp read before this file
	fpFile    io.ReaderAt // plain files: where to refresh a young file's fingerprint
	off       int64       // content offset after the last complete line
	line      int64
	hole      int64 // NUL bytes of a hole read and not yet recorded (endHole)
	holeAt    int64 // the hole's offset
	sp        *splitter
	lb        LineBatch
	m         *Metrics
}

// readAll reads r to EOF, emitting full batches and, at EOF, the rest. With
// final the last line without a newline is kept too (a finished file);
// otherwise it stays pending (the writer may still complete it). It returns
// the bytes read.
func (r *reader) readAll(ctx context.Context, in io.Reader, batch int, emit func(*LineBatch) error, final bool) (int64, error) {
	var total int64
	for {
		n, err := r.sp.fill(in)
		total += int64(n)
		r.m.bytes.WithLabelValues(r.src).Add(float64(n))
		if perr := r.drain(batch, emit); perr != nil {
			return total, perr
		}
		// Lines point into the splitter's buffer, which the next fill may
		// move: hand them over first. Gaps alone wait for the lines after
		// them (or the end), which bound them.
		if !errors.Is(err, io.EOF) && len(r.lb.Lines) > 0 {
			if ferr := r.flush(emit); ferr != nil {
				return total, ferr
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			if final && r.sp.pending() > 0 && !r.sp.skipping {
				rest := r.sp.buf[r.sp.start:r.sp.end]
				r.add(rest, int64(len(rest)))
				r.sp.start = r.sp.end
			}
			return total, r.flush(emit)
		}
		if err != nil {
			return total, fmt.Errorf("ingest: read %s: %w", r.name, err)
		}
		if ctx.Err() != nil {
			return total, r.flush(emit)
		}
	}
}

func (r *reader) drain(batch int, emit func(*LineBatch) error) error {
	for {
		if n := r.sp.skipHole(); n > 0 {
			if r.hole == 0 {
				r.holeAt = r.off
			}
			r.hole += n
			r.off += n
		}
		if r.hole > 0 && r.sp.start < r.sp.end {
			r.endHole()
		}
		line, tooLong := r.sp.next()
		if tooLong > 0 {
			r.line++
			r.off += tooLong
			r.lb.AddLoss(flow.Loss{Reason: flow.LossLineTooLong, Detail: fmt.Sprintf("%s:%d", r.name, r.line), Events: 1, Bytes: uint64(tooLong), Source: r.src})
			r.m.lostLines.WithLabelValues(r.src, flow.LossLineTooLong).Inc()
			r.m.lostBytes.WithLabelValues(r.src, flow.LossLineTooLong).Add(float64(tooLong))
			r.m.gaps.WithLabelValues(r.src, flow.LossLineTooLong, flow.AmountExact.String()).Inc()
			continue
		}
		if line == nil {
			return nil
		}
		// Offsets count the raw bytes, including a trimmed '\r' and the newline.
		raw := int64(len(line)) + 1
		if r.sp.start >= 2 && r.sp.buf[r.sp.start-2] == '\r' {
			raw++
		}
		if len(line) == 0 {
			r.line++
			r.off += raw
			continue
		}
		r.add(line, raw)
		if len(r.lb.Lines) >= batch {
			// Lines point into the splitter's buffer: emit before the next fill.
			if err := r.flush(emit); err != nil {
				return err
			}
		}
	}
}

// endHole records the hole of NUL bytes just read: the lines the file held
// there before it was truncated were never read, and are lost; exactly as
// many bytes as the hole.
func (r *reader) endHole() {
	r.lb.AddLoss(flow.Loss{Reason: flow.LossTruncated, Amount: flow.AmountExact, Bytes: uint64(r.hole), Source: r.src,
		Detail: fmt.Sprintf("%s: %d NUL bytes at offset %d (line %d): the file was truncated and written again at its writer's old offset; the lines it held there are lost",
			r.name, r.hole, r.holeAt, r.line+1)})
	r.m.lostBytes.WithLabelValues(r.src, flow.LossTruncated).Add(float64(r.hole))
	r.m.gaps.WithLabelValues(r.src, flow.LossTruncated, flow.AmountExact.String()).Inc()
	r.hole = 0
}

func (r *reader) add(line []byte, raw int64) {
	r.line++
	r.off += raw
	r.lb.Lines = append(r.lb.Lines, line)
	r.lb.Where = append(r.lb.Where, LineRef{File: r.name, Line: r.line})
}

// flush emits the current batch (also an empty one carrying losses).
func (r *reader) flush(emit func(*LineBatch) error) error {
	if r.hole > 0 {
		r.endHole() // the checkpoint is past it
	}
	if len(r.lb.Lines) == 0 && len(r.lb.Losses) == 0 {
		return nil
	}
	return r.emitPosition(emit)
}

// emitPosition emits the current batch, even an empty one, with the
// checkpoint of the position after its last line.
func (r *reader) emitPosition(emit func(*LineBatch) error) error {
	if r.fpFile != nil && r.fpLen < fingerprintLen && int64(r.fpLen) < r.off {
		// The file was younger than the fingerprint when last hashed: the
		// checkpoint must identify it by at least the bytes it has consumed.
		if fp, n, err := fingerprint(io.NewSectionReader(r.fpFile, 0, fingerprintLen), fingerprintLen); err == nil && n > r.fpLen {
			r.fp, r.fpLen = fp, n
		}
	}
	r.lb.Checkpoint = flow.Checkpoint{Source: r.src, Position: encodePos(filePos{
		Fingerprint: r.fp, FPLen: r.fpLen, Offset: r.off, Name: r.name, Line: r.line, Inode: r.ino,
		Dev: r.dev, Size: r.size, Backup: r.backupTS, After: r.after,
	})}
	r.m.lines.WithLabelValues(r.src).Add(float64(len(r.lb.Lines)))
	err := emit(&r.lb)
	r.lb.reset()
	return err
}
