package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// ImportSource reads one events.log file (plain or gzip) once, to its last
// complete line. It is made by ImportRegistry.Prepare, which has decided
// what the file adds to what is archived (import_identity.go): the source
// reads only that, and its checkpoints name the file by its content.
//
// A file that cannot be read to its end (a truncated or corrupt gzip
// stream, a read error, a file that vanished or is a directory) is not an
// error of Run: the lines before the damage are emitted, then a
// flow.LossDamagedInput with the position, and Result says what happened.
type ImportSource struct {
	path     string // the file read (the .gz lumberjack made of it, if it is gone)
	id       string
	head     string
	reg      *ImportRegistry
	plan     plan
	of       *stream         // the stream continued, or the one holding the file
	from     flow.Checkpoint // the checkpoint Run expects
	at, line int64           // where Run starts reading
	c        *content        // open at `at`, or nil
	dmg      *Damage         // damage found by Prepare, for plans Run does not read
	last     flow.Checkpoint // the last checkpoint emitted
	lastTime time.Time       // the time of the last line emitted
	fbNode   string
	fbTime   time.Time
	res      ImportResult
	max      int
	batch    int
	m        *Metrics
}

// NewImportSource prepares the import of one file into an archive that
// holds no import yet, or whose checkpoint for the file the caller passes
// to Run (the ID is the same for the same content).
// It logs nothing (the pipeline logs what it decodes; the import command
// prints what each file gave), so the logger is unused.
func NewImportSource(path string, _ *zap.Logger, m *Metrics) (*ImportSource, error) {
	return NewImportRegistry(nil, m).Prepare(path), nil
}

// ID is "import:<hash of the first line>" (a suffix "-2"... for another
// stream with the same first line), or for a file that is recorded only
// as damaged, "import:damaged:<hash of its path>".
func (s *ImportSource) ID() string { return s.id }

// From is the checkpoint Run continues from: the committed checkpoint of
// the stream the file continues (zero for a new stream).
func (s *ImportSource) From() flow.Checkpoint { return s.from }

// Reads reports whether Run has anything to emit: lines to read, or a
// damage to record.
func (s *ImportSource) Reads() bool {
	switch s.plan {
	case planNew, planContinue:
		return true
	}
	return s.dmg != nil && !s.res.IncompleteCopy && !s.dmg.Earlier && s.recordable()
}

// SetLossFallback gives the node and time of a damage found before the
// file's first line (when the file yields no line to take them from): the
// node of the file read before it from the same directory, say. Without a
// node such a damage is reported by Result only, not archived (it would be
// a stats row of no node).
func (s *ImportSource) SetLossFallback(node string, t time.Time) { s.fbNode, s.fbTime = node, t }

// Close releases the file when Run is not called.
func (s *ImportSource) Close() {
	if s.c != nil {
		s.c.close()
		s.c = nil
	}
}

// Outcome is what an import did with a file.
type Outcome string

// Outcomes.
const (
	OutcomeNew        Outcome = "new"        // a new stream, read from its start
	OutcomeContinued  Outcome = "continued"  // a stream archived before, read on from its checkpoint
	OutcomeArchived   Outcome = "archived"   // nothing new: all its lines were archived before
	OutcomeUnverified Outcome = "unverified" // shorter than an archived stream with its first line, whose file is gone: skipped
	OutcomeEmpty      Outcome = "empty"      // no complete line
	OutcomeDamaged    Outcome = "damaged"    // could not be read before its first complete line
)

// ImportResult is what Run did with the file.
type ImportResult struct {
	Path    string
	Outcome Outcome
	// Lines read (new lines), and the content offsets they span.
	Lines    int64
	From, To int64
	// Partial is the size of an incomplete last line (no newline: a file
	// still being written, or cut); PartialLine its line number. It is
	// left for a later import of a longer copy.
	Partial     int64
	PartialLine int64
	// Of is the file of the stream the file continued or is part of
	// (OutcomeContinued, OutcomeArchived, OutcomeUnverified); InRun when
	// that file was read earlier in the same run.
	Of    string
	InRun bool
	// Damage, when the file could not be read to its end.
	Damage *Damage
	// IncompleteCopy: the damage is a gzip stream that ends early whose
	// lines are all in its plain twin (lumberjack compressing a backup):
	// nothing is lost, and no loss is recorded.
	IncompleteCopy bool
}

// Result is what Run did (complete after Run returns).
func (s *ImportSource) Result() ImportResult {
	r := s.res
	switch s.plan {
	case planNew:
		r.Outcome = OutcomeNew
	case planContinue:
		r.Outcome = OutcomeContinued
		if r.Lines == 0 {
			r.Outcome = OutcomeArchived // nothing new (a damage may still be reported)
		}
	case planContained:
		r.Outcome = OutcomeArchived
	case planUnverified:
		r.Outcome = OutcomeUnverified
	case planNothing:
		r.Outcome = OutcomeEmpty
	case planUnreadable:
		r.Outcome = OutcomeDamaged
	}
	if s.of != nil {
		r.Of, r.InRun = displayPath(s.of.pos.Name), s.of.inRun
	}
	if r.Damage == nil {
		r.Damage = s.dmg
	}
	return r
}

// Run reads the file from the checkpoint to its last complete line. from
// is From() (what Prepare found), or another checkpoint of this file's
// stream (zero: from the start).
func (s *ImportSource) Run(ctx context.Context, from flow.Checkpoint, emit func(*LineBatch) error) error {
	defer s.Close()
	if from != s.from {
		if err := s.replan(from); err != nil {
			return err
		}
	}
	switch s.plan {
	case planNew, planContinue:
		return s.read(ctx, emit)
	}
	if s.dmg != nil && !s.res.IncompleteCopy {
		return s.recordDamage(emit)
	}
	return nil
}

// replan makes the source read on from another checkpoint than Prepare's.
func (s *ImportSource) replan(from flow.Checkpoint) error {
	s.Close()
	if from.IsZero() {
		if s.head == "" {
			return nil // nothing to read either way
		}
		if s.plan != planNew && s.plan != planContinue {
			s.id = s.reg.newID(s.head)
		}
		if from.Source != "" {
			s.id = from.Source
		}
		s.plan, s.from, s.at, s.line, s.of = planNew, from, 0, 0, nil
		return nil
	}
	p, err := decodeImportPos(from.Position)
	if err != nil {
		return fmt.Errorf("ingest: %s: bad checkpoint: %w", s.path, err)
	}
	c, err := openContent(s.path)
	if err != nil {
		return fmt.Errorf("ingest: %s: %w", s.path, err)
	}
	s.dmg = nil
	k := &stream{id: from.Source, pos: p}
	s.decide(c, []*stream{k})
	switch s.plan {
	case planContinue:
		s.from = from
		return nil
	case planContained:
		s.dmg = nil // nothing to read; a damage is for an import that decides to record it
		return nil
	}
	s.Close()
	return fmt.Errorf("ingest: %s: checkpoint %s (offset %d) does not match the file's content", s.path, from.Source, p.Offset)
}

// read emits the file's lines from s.at to its last complete line.
func (s *ImportSource) read(ctx context.Context, emit func(*LineBatch) error) error {
	c := s.c
	s.c = nil
	if c == nil {
		var err error
		if c, err = openContent(s.path); err != nil {
			s.dmg = &Damage{Offset: s.at, Line: s.line + 1, Err: err}
			return s.recordDamageHere(emit, nil)
		}
		if !c.discardTo(s.at) {
			s.dmg = damageAt(c, c.lines)
			if c.damage() == nil {
				s.dmg.Err = fmt.Errorf("the file is shorter (%d bytes) than when it was checked", c.end())
			}
			c.close()
			return s.recordDamageHere(emit, nil)
		}
	}
	defer c.close()
	sp := getSplitter(s.max)
	defer putSplitter(sp) // lines are valid until emit returns
	r := &reader{src: s.id, name: s.path, off: s.at, line: s.line, sp: sp, m: s.m}
	c.floor = func() int64 { return r.off }
	lastOff, lastPFP := s.at, c.sum()
	pos := importPos{Head: s.head, Name: absPath(s.path)}
	out := func(lb *LineBatch) error {
		if r.off != lastOff {
			lastOff, lastPFP = r.off, c.checkpoint(r.off)
		}
		pos.Offset, pos.Line, pos.PFP = r.off, r.line, lastPFP
		lb.Checkpoint = flow.Checkpoint{Source: s.id, Position: pos.encode()}
		if n := len(lb.Lines); n > 0 {
			if t, ok := lineTime(lb.Lines[n-1]); ok {
				s.lastTime = t
			}
		}
		s.last = lb.Checkpoint
		return emit(lb)
	}
	_, err := r.readAll(ctx, c, s.batch, out, false)
	s.res.From, s.res.To, s.res.Lines = s.at, r.off, r.line-s.line
	if d := c.damage(); d != nil && (err == nil || errors.Is(err, d)) {
		s.dmg = damageAt(c, r.line)
		s.dmg.Partial = sp.pending()
		if s.of != nil && s.of.pos.DamagedAt == s.dmg.Offset+1 && s.of.pos.Offset == r.off {
			s.dmg.Recorded, s.dmg.Earlier = true, true // the import that first read this far recorded it
			return nil
		}
		if !s.recordable() {
			return nil // no node to record it for: Result has it
		}
		pos.DamagedAt = s.dmg.Offset + 1
		return s.recordDamageHere(emit, func(lb *LineBatch) error { return out(lb) })
	}
	if err != nil {
		return err
	}
	if p := sp.pending(); p > 0 {
		s.res.Partial, s.res.PartialLine = p, r.line+1
	}
	return nil
}

// recordable reports whether a damage can be archived: it has a node (a
// line of the file was read in this run, or a fallback).
func (s *ImportSource) recordable() bool {
	return s.res.Lines > 0 || s.fbNode != ""
}

// recordDamageHere emits the loss of s.dmg with the stream's checkpoint
// (through out), or, without a stream, as a damage record named by the
// file's path.
func (s *ImportSource) recordDamageHere(emit func(*LineBatch) error, out func(*LineBatch) error) error {
	if out == nil {
		return s.recordDamage(emit)
	}
	lb := &LineBatch{Losses: []flow.Loss{s.loss()}}
	s.dmg.Recorded = true
	return out(lb)
}

// recordDamage emits the loss of s.dmg under the file's damage record,
// once per file: not again while the file has the same size and damage.
func (s *ImportSource) recordDamage(emit func(*LineBatch) error) error {
	if s.dmg.Earlier || !s.recordable() {
		return nil
	}
	pos := s.damageRecord()
	if p, ok := s.reg.damaged[damagedID(s.path)]; ok && p == pos {
		s.dmg.Recorded, s.dmg.Earlier = true, true
		return nil
	}
	lb := &LineBatch{Losses: []flow.Loss{s.loss()}, Checkpoint: flow.Checkpoint{Source: damagedID(s.path), Position: pos.encode()}}
	s.last = lb.Checkpoint
	s.dmg.Recorded = true
	return emit(lb)
}

// loss is the flow.Loss of s.dmg: at the time of the file's last line
// read (else the time in a lumberjack backup's name, else the fallback),
// for the node of the lines before it (else the fallback node).
func (s *ImportSource) loss() flow.Loss {
	d := s.dmg
	l := flow.Loss{Reason: flow.LossDamagedInput, Time: s.lastTime}
	if l.Time.IsZero() {
		if t, ok := backupNameTime(s.path); ok {
			l.Time = t
		} else {
			l.Time = s.fbTime
		}
	}
	assumed := ""
	if s.res.Lines == 0 {
		l.Node = s.fbNode // no line of the file to take it from
		assumed = " (node: that of the file read before it in its directory)"
	}
	var rest string
	switch {
	case d.gz && d.DiskUnread > 0:
		rest = fmt.Sprintf("the rest of the gzip stream (%d bytes on disk); how many lines, unknown", d.DiskUnread)
	case d.gz:
		rest = "the rest of the gzip stream; how many lines, unknown"
	default:
		if st, err := os.Stat(s.path); err == nil && st.Mode().IsRegular() && st.Size() > s.res.To {
			l.Bytes = uint64(st.Size() - max(s.res.To, s.at))
			rest = fmt.Sprintf("the rest of the file (%d bytes)", l.Bytes)
		} else {
			rest = "the file"
		}
	}
	l.Detail = fmt.Sprintf("%s: %s; not read: %s%s", s.path, d, rest, assumed)
	return l
}

// displayPath is path relative to the working directory when it lies
// below it, else as it is.
func displayPath(path string) string {
	if wd, err := os.Getwd(); err == nil && filepath.IsAbs(path) {
		if rel, err := filepath.Rel(wd, path); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return path
}

// lineTime finds the event time in an events.log line: the first
// "time":"<RFC 3339>" member (a flow's own time comes first in the
// exporter's lines).
func lineTime(line []byte) (time.Time, bool) {
	const key = `"time":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return time.Time{}, false
	}
	v := line[i+len(key):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(v[:j]))
	return t, err == nil
}

// backupNameTime is the rotation time in a lumberjack backup's name
// (<prefix>-2006-01-02T15-04-05.000.log[.gz], UTC as Cilium configures it).
func backupNameTime(path string) (time.Time, bool) {
	base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".gz"), ".log")
	if len(base) < len(backupTimeFormat)+1 || base[len(base)-len(backupTimeFormat)-1] != '-' {
		return time.Time{}, false
	}
	t, err := time.Parse(backupTimeFormat, base[len(base)-len(backupTimeFormat):])
	return t, err == nil
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
