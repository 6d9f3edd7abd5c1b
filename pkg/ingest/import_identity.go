package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// An import is exactly once by content, within a run and across runs. What
// identifies a file is not its name but the bytes it holds:
//
//   - A stream is the content of one events.log as it grows: every copy of
//     it (a rename, the lumberjack .gz of a backup, a symlink, a copy taken
//     earlier or later) holds a prefix of it. A stream has an ID
//     ("import:<first line's SHA-256>", "-2", "-3"... for other streams with
//     the same first line) and a checkpoint: the offset after the last line
//     archived (always a line end: a last line without its newline is left
//     for a later, longer copy), the line count, and the SHA-256 of the whole
//     prefix before the offset (pfp).
//   - A file is looked up by the hash of its first line (head: the same in
//     every copy that has a complete line), then checked against each stream
//     with that head: it continues a stream when its prefix up to the
//     stream's offset hashes to the stream's pfp (the file is read from
//     there on); it is contained in a stream when the stream's offset is
//     past the file's last line end and a file that still holds the stream
//     (the one its checkpoint names, its .gz, or a backup lumberjack renamed
//     it to) starts with the file's bytes (the file adds nothing);
//     otherwise it is a new stream. Two files that share a first line, or a
//     first KiB, but differ later are two streams (the lines they share are
//     archived with each).
//   - The registry of streams is the archive's committed checkpoints plus
//     every file read in the current run, so a file and its copy given in
//     one run are read once too.
//
// A file shorter than an archived stream with the same first line whose
// file can no longer be read (moved, deleted) cannot be told apart from a
// truncated copy of it: it is skipped and reported as unverified, not
// imported again (that would archive its lines twice if it is a copy).
//
// Checkpoints written before this scheme (fp: the SHA-256 of the first KiB,
// fp_len, offset) name a file by its first KiB only. They are honoured as
// they were: a file with the same first fp_len bytes continues them at their
// offset, or, where the earlier import took a last line without its newline
// as complete, at the start of that line (it was counted as a decode error,
// not archived). The first checkpoint this version commits for such a
// stream carries the head and pfp above, under the same ID.

// importPos is the Position of an import checkpoint.
type importPos struct {
	Head   string `json:"head,omitempty"` // SHA-256 (128 bits, hex) of the first line (or first 64 KiB while it has no newline)
	PFP    string `json:"pfp,omitempty"`  // SHA-256 (128 bits, hex) of the content before Offset
	Offset int64  `json:"offset"`         // content offset after the last line read
	Line   int64  `json:"line"`           // lines read
	Name   string `json:"name"`           // the file last read (absolute)
	// DamagedAt is set (to the content offset + 1) on the checkpoint that
	// records a loss for the file's damage, so that reading the same damaged
	// file again does not record it twice.
	DamagedAt int64 `json:"damaged_at,omitempty"`
	// Written by earlier versions: the SHA-256 of the first FPLen bytes.
	FP    string `json:"fp,omitempty"`
	FPLen int    `json:"fp_len,omitempty"`
	// A damage record of a file with no complete line (ID
	// "import:damaged:<path hash>"): the file's size and the error.
	Size  int64  `json:"size,omitempty"`
	Error string `json:"error,omitempty"`
}

func (p importPos) legacy() bool { return p.PFP == "" && p.FP != "" }

func decodeImportPos(s string) (importPos, error) {
	var p importPos
	if s == "" {
		return p, nil
	}
	err := json.Unmarshal([]byte(s), &p)
	return p, err
}

func (p importPos) encode() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// headLimit bounds the bytes hashed for a file's head: a first line longer
// than this is named by its first headLimit bytes.
const headLimit = 64 << 10

// stream is one known content stream: a committed checkpoint, or a file
// read in this run.
type stream struct {
	id    string
	pos   importPos
	inRun bool // read in this run
}

// ImportRegistry knows the content streams already imported: the archive's
// committed import checkpoints and the files imported since. It decides,
// per file, what is new (Prepare) and learns what was read (Done). Not
// safe for concurrent use; files are prepared and run one at a time.
type ImportRegistry struct {
	byHead  map[string][]*stream // by head
	legacy  []*stream            // checkpoints of the first-KiB scheme
	ids     map[string]*stream
	damaged map[string]importPos // damage records of files read from no stream
	m       *Metrics
}

// NewImportRegistry makes a registry from the archive's committed
// checkpoints (archive.Writer.Checkpoints; nil: an empty archive).
func NewImportRegistry(committed map[string]flow.Checkpoint, m *Metrics) *ImportRegistry {
	if m == nil {
		m = NewMetrics(nil)
	}
	g := &ImportRegistry{byHead: map[string][]*stream{}, ids: map[string]*stream{}, damaged: map[string]importPos{}, m: m}
	ids := make([]string, 0, len(committed))
	for id := range committed {
		ids = append(ids, id)
	}
	sort.Strings(ids) // a deterministic order of candidates
	for _, id := range ids {
		if !strings.HasPrefix(id, "import:") {
			continue
		}
		p, err := decodeImportPos(committed[id].Position)
		if err != nil {
			continue // not ours to read: it names no file this import can match
		}
		if strings.HasPrefix(id, damagedPrefix) {
			g.damaged[id] = p
			continue
		}
		g.add(&stream{id: id, pos: p})
	}
	return g
}

func (g *ImportRegistry) add(s *stream) {
	g.ids[s.id] = s
	switch {
	case s.pos.Head != "":
		g.byHead[s.pos.Head] = append(g.byHead[s.pos.Head], s)
	case s.pos.legacy():
		g.legacy = append(g.legacy, s)
	}
}

// remove takes s out of its bucket (it is about to be re-added with a new
// position).
func (g *ImportRegistry) remove(s *stream) {
	drop := func(list []*stream) []*stream {
		for i, x := range list {
			if x == s {
				return append(list[:i:i], list[i+1:]...)
			}
		}
		return list
	}
	if s.pos.Head != "" {
		g.byHead[s.pos.Head] = drop(g.byHead[s.pos.Head])
	} else {
		g.legacy = drop(g.legacy)
	}
	delete(g.ids, s.id)
}

// newID is the ID of a new stream with this head.
func (g *ImportRegistry) newID(head string) string {
	id := "import:" + head
	for n := 2; g.ids[id] != nil; n++ {
		id = "import:" + head + "-" + strconv.Itoa(n)
	}
	return id
}

// damagedPrefix starts the IDs of damage records of files with no complete
// line (no content to name them by: they are named by their path).
const damagedPrefix = "import:damaged:"

func damagedID(path string) string {
	sum := sha256.Sum256([]byte(absPath(path)))
	return damagedPrefix + hex.EncodeToString(sum[:hashBytes])
}

// absPath is path made absolute (as it is, if it cannot be).
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// fileHead reads the head of c (without moving it): the SHA-256 of its
// first line with the newline, or of its first headLimit bytes while they
// hold no newline. ok is false when the content has no complete line and
// is shorter than that (nothing to import, nothing to name).
func fileHead(c *content) (head string, ok bool) {
	b := c.peek(1)
	for {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			sum := sha256.Sum256(b[:i+1])
			return hex.EncodeToString(sum[:hashBytes]), true
		}
		if len(b) >= headLimit {
			sum := sha256.Sum256(b[:headLimit])
			return hex.EncodeToString(sum[:hashBytes]), true
		}
		n := len(b)
		if b = c.peek(n + 1); len(b) == n {
			return "", false
		}
	}
}

// verdict is what a file that ends before a stream's offset is to it.
type verdict int

const (
	contained verdict = iota + 1 // the file's lines are a prefix of the stream's
	notPrefix                    // the file differs from the stream's file
	unknown                      // the stream's file cannot be read (to compare, or to confirm it is the stream)
)

// candidates are the streams a file with this head (and these first bytes,
// for first-KiB checkpoints) may belong to, by offset.
func (g *ImportRegistry) candidates(head string, c *content) []*stream {
	out := append([]*stream(nil), g.byHead[head]...)
	if len(g.legacy) > 0 {
		b := c.peek(1024)
		for _, s := range g.legacy {
			if s.pos.FPLen <= len(b) && s.pos.FPLen > 0 {
				sum := sha256.Sum256(b[:s.pos.FPLen])
				if hex.EncodeToString(sum[:]) == s.pos.FP {
					out = append(out, s)
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].pos.Offset < out[j].pos.Offset })
	return out
}

// isPrefix reports whether the first n content bytes of path are the
// first n of the stream s, read again from a file that still holds it: the
// file its checkpoint names, the .gz lumberjack made of it, or a backup
// lumberjack renamed it to (a live events.log imported earlier has been
// rotated since). It returns unknown when none of them can be confirmed to
// hold the stream (its prefix hashes to the checkpoint's pfp, or for a
// first-KiB checkpoint its first bytes to fp).
func isPrefix(path string, n int64, s *stream) verdict {
	for _, other := range streamFiles(s.pos.Name) {
		if v := isPrefixOf(path, n, s, other); v != unknown {
			return v
		}
	}
	return unknown
}

// streamFiles are the files that may hold the stream last read from name:
// name, its .gz, and lumberjack's backups of it (<base>-<time><ext>[.gz]).
func streamFiles(name string) []string {
	out := []string{name, name + ".gz"}
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for _, pattern := range []string{base + "-*" + ext, base + "-*" + ext + ".gz"} {
		if m, err := filepath.Glob(pattern); err == nil {
			out = append(out, m...)
		}
	}
	return out
}

// isPrefixOf is isPrefix against one file, other: its bytes are compared
// with the file's and hashed on to the stream's offset in one pass.
func isPrefixOf(path string, n int64, s *stream, other string) verdict {
	g, err := openContent(other)
	if err != nil {
		return unknown
	}
	defer g.close()
	if head, ok := fileHead(g); s.pos.Head != "" && (!ok || head != s.pos.Head) {
		return unknown // another stream: not worth reading
	}
	f, err := openContent(path)
	if err != nil {
		return unknown
	}
	defer f.close()
	same := true
	for same && f.cur < n {
		a, b := f.peek(1), g.peek(1)
		k := min(int64(min(len(a), len(b))), n-f.cur)
		if k == 0 {
			return unknown // one of them ended or broke early
		}
		same = bytes.Equal(a[:k], b[:k])
		f.discardTo(f.cur + k)
		g.discardTo(g.cur + k)
	}
	if s.pos.legacy() {
		sum := sha256.Sum256(g.prefixBytes(s.pos.FPLen))
		if hex.EncodeToString(sum[:]) != s.pos.FP {
			return unknown
		}
	} else if !g.discardTo(s.pos.Offset) || g.sum() != s.pos.PFP {
		return unknown
	}
	if !same {
		return notPrefix
	}
	return contained
}

// prefixBytes re-reads the first n content bytes of c's file.
func (c *content) prefixBytes(n int) []byte {
	o, err := openContent(c.path)
	if err != nil {
		return nil
	}
	defer o.close()
	b := o.peek(n)
	return b[:min(n, len(b))]
}

// plan is what Prepare decided for a file.
type plan int

const (
	planNew        plan = iota + 1 // a new stream, read from the start
	planContinue                   // a known stream, read on from its offset
	planContained                  // nothing new: the file's lines are a prefix of a known stream
	planUnverified                 // shorter than a known stream with its first line, whose file is gone
	planNothing                    // no complete line
	planUnreadable                 // damaged before its first complete line
)

// Prepare decides what importing path adds: it opens the file, finds the
// streams it may belong to and checks it against them, reading it (hashing,
// not decoding) as far as the longest of them. The source it returns reads
// on from there.
func (g *ImportRegistry) Prepare(path string) *ImportSource {
	s := &ImportSource{path: gzSuccessor(path), reg: g, max: MaxLineBytes, batch: 4096, m: g.m}
	s.res.Path = s.path
	c, err := openContent(s.path)
	if err != nil {
		s.plan, s.id, s.dmg = planUnreadable, damagedID(s.path), &Damage{Err: err}
		s.checkRecorded()
		return s
	}
	head, ok := fileHead(c)
	if !ok {
		if err := c.damage(); err != nil {
			s.plan, s.id, s.dmg = planUnreadable, damagedID(s.path), damageAt(c, 0)
			s.checkRecorded()
		} else {
			s.plan, s.res.Partial, s.res.PartialLine = planNothing, c.end(), 1
		}
		c.close()
		return s
	}
	s.head = head
	s.decide(c, g.candidates(head, c))
	s.checkRecorded()
	return s
}

// checkRecorded marks a damage found by Prepare as recorded when the
// archive has its damage record (an earlier import recorded it).
func (s *ImportSource) checkRecorded() {
	if s.dmg == nil {
		return
	}
	if p, ok := s.reg.damaged[damagedID(s.path)]; ok && p == s.damageRecord() {
		s.dmg.Recorded, s.dmg.Earlier = true, true
	}
}

// damageRecord is the position of the damage record of s.dmg.
func (s *ImportSource) damageRecord() importPos {
	p := importPos{Name: absPath(s.path), Error: s.dmg.String()}
	if st, err := os.Stat(s.path); err == nil {
		p.Size = st.Size()
	}
	return p
}

// damageAt describes c's damage, found while the file's lines were read up
// to content offset at (line count line).
func damageAt(c *content, line int64) *Damage {
	return &Damage{Offset: c.end(), Line: line + 1, Err: c.damage(), DiskUnread: c.diskUnread(), gz: c.gz}
}

// decide checks the file against the candidate streams (by offset) and
// sets the plan; it leaves s.c at the offset where Run starts, or nil when
// Run must open the file again.
func (s *ImportSource) decide(c *content, cands []*stream) {
	var best *stream // the longest stream the file continues
	var bestAt, bestLine int64
	var longer []*stream // streams that go on past the file's end
	for _, k := range cands {
		if !c.discardTo(k.pos.Offset) {
			longer = append(longer, k)
			continue
		}
		if k.pos.legacy() {
			if at, line, ok := legacyResume(c, k.pos); ok {
				best, bestAt, bestLine = k, at, line
			}
			continue
		}
		if c.sum() == k.pos.PFP {
			best, bestAt, bestLine = k, k.pos.Offset, k.pos.Line
		}
	}
	var unverified *stream
	if len(longer) > 0 {
		// The file was read to its end: its last line end is known.
		consumed, lines := c.lineAt, c.lines
		for _, k := range longer {
			switch isPrefix(s.path, consumed, k) {
			case contained:
				s.plan, s.of, s.id = planContained, k, damagedID(s.path)
				s.res.Partial, s.res.PartialLine = c.end()-consumed, lines+1
				if c.damage() != nil {
					s.dmg = damageAt(c, lines)
					s.res.Partial = 0
					// lumberjack writes a backup's .gz from the plain file, then
					// removes it: a .gz cut short beside a plain twin holding
					// its lines is a copy being written (or whose writing
					// stopped), and its lines are all in the twin.
					s.res.IncompleteCopy = s.dmg.truncatedGzip() && k.pos.DamagedAt == 0 && twinOf(absPath(s.path), absPath(k.pos.Name))
				}
				c.close()
				return
			case unknown:
				if unverified == nil {
					unverified = k
				}
			}
		}
		if best == nil && unverified != nil {
			s.plan, s.of, s.id = planUnverified, unverified, damagedID(s.path)
			if c.damage() != nil {
				s.dmg = damageAt(c, lines)
			}
			c.close()
			return
		}
	}
	if best != nil {
		s.plan, s.of, s.id = planContinue, best, best.id
		s.from = flow.Checkpoint{Source: best.id, Position: best.pos.encode()}
		s.at, s.line = bestAt, bestLine
	} else {
		s.plan, s.id = planNew, s.reg.newID(s.head)
	}
	if c.cur == s.at && c.base == s.at {
		s.c = c
	} else {
		c.close() // read past it (a longer stream it differs from): Run opens it again
	}
}

// legacyResume is where a file continues a first-KiB checkpoint (c is at
// its offset): there, if the offset is a line end; after the newline if
// only a line's end ('\r', blanks) was left; else at the start of the line
// the earlier import cut (it took the part before the offset as a whole
// line, which could not be decoded, so the line was not archived).
func legacyResume(c *content, p importPos) (at, line int64, ok bool) {
	if p.Offset == 0 || c.lineAt == p.Offset {
		return p.Offset, p.Line, true
	}
	rest := c.peek(1)
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i >= 0 && len(bytes.Trim(rest[:i], " \t\r")) == 0 {
			return p.Offset + int64(i) + 1, p.Line, true
		}
		if i >= 0 || len(rest) >= headLimit {
			break
		}
		n := len(rest)
		if rest = c.peek(n + 1); len(rest) == n {
			break
		}
	}
	if p.Line < 1 {
		return 0, 0, false
	}
	return c.lineAt, p.Line - 1, true
}

// Done records what s read, so that later files of the run are checked
// against it too.
func (g *ImportRegistry) Done(s *ImportSource) {
	if s.last.Source == "" {
		return
	}
	p, err := decodeImportPos(s.last.Position)
	if err != nil {
		return
	}
	if strings.HasPrefix(s.last.Source, damagedPrefix) {
		g.damaged[s.last.Source] = p
		return
	}
	if old := g.ids[s.last.Source]; old != nil {
		g.remove(old)
	}
	g.add(&stream{id: s.last.Source, pos: p, inRun: true})
}

// Damage says where and how an input file could not be read.
type Damage struct {
	Offset     int64 // content offset where reading failed
	Line       int64 // the line being read there
	Err        error
	DiskUnread int64 // bytes of the file on disk after the failure, where known
	Partial    int64 // bytes of the line being read when it failed (lost with it)
	// Recorded: the loss was recorded in the archive (now or by an earlier import).
	Recorded bool
	Earlier  bool // recorded by an earlier import
	gz       bool
}

// String is "<error> at content byte N (line L)".
func (d *Damage) String() string {
	if d.Offset == 0 && d.Line == 0 {
		return d.Err.Error()
	}
	return fmt.Sprintf("%v at content byte %d (line %d)", d.Err, d.Offset, d.Line)
}

// truncatedGzip reports whether the damage is a gzip stream that ends early
// (what lumberjack's .gz is while it is still being written).
func (d *Damage) truncatedGzip() bool {
	return d != nil && d.gz && (d.Err == io.ErrUnexpectedEOF || strings.Contains(d.Err.Error(), io.ErrUnexpectedEOF.Error()))
}

// twinOf reports whether path is the lumberjack .gz of plain.
func twinOf(path, plain string) bool {
	return strings.HasSuffix(path, ".gz") && strings.TrimSuffix(path, ".gz") == plain
}
