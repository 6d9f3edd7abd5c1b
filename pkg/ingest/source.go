package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// LineRef says where a line came from, for error messages.
type LineRef struct {
	File string
	Line int64 // 1-based line number within the file (0: unknown)
}

// String returns "file:line".
func (r LineRef) String() string {
	if r.Line == 0 {
		return r.File
	}
	return r.File + ":" + strconv.FormatInt(r.Line, 10)
}

// LineBatch is what a source emits: complete lines without their newline,
// where they came from, the checkpoint after the last line, and any gaps.
// Everything in it is valid until the emit callback returns.
type LineBatch struct {
	Lines      [][]byte
	Where      []LineRef
	Checkpoint flow.Checkpoint
	// Losses are the gaps found among the lines: Losses[i] happened
	// before Lines[LossAt[i]] (LossAt[i] == len(Lines): after the last
	// one), so that a consumer can bound it by the events around it. A
	// source hands a gap over with the lines that follow it where it can,
	// in the same batch as the checkpoint past it, so that the gap is
	// committed exactly when the position past it is.
	Losses []flow.Loss
	LossAt []int
	// Commit asks for the batch to be committed with everything before it
	// (flow.Batch.Commit).
	Commit bool
	// Format is how Lines are encoded: events.log JSON lines, or the
	// protobuf bytes of GetFlowsResponse messages.
	Format Format
	// Nodes, when not empty, are the nodes the source vouches it is up
	// for (a Relay stream's connected nodes): the pipeline's heartbeat
	// writes a stats row for each, not only for the last flow's node.
	Nodes []string
}

// Format is the encoding of a LineBatch's lines.
type Format uint8

const (
	FormatJSON  Format = iota // events.log lines (hubblejson)
	FormatProto               // GetFlowsResponse messages (hubblepb)
)

// AddLoss records l as happening after the lines added so far.
func (lb *LineBatch) AddLoss(l flow.Loss) {
	lb.Losses = append(lb.Losses, l)
	lb.LossAt = append(lb.LossAt, len(lb.Lines))
}

// LossIndex returns where Losses[i] happened: the index of the first line
// after it (a batch built without LossAt has its losses after its lines).
func (lb *LineBatch) LossIndex(i int) int {
	if i < len(lb.LossAt) {
		return lb.LossAt[i]
	}
	return len(lb.Lines)
}

func (lb *LineBatch) reset() {
	lb.Lines = lb.Lines[:0]
	lb.Where = lb.Where[:0]
	lb.Losses = lb.Losses[:0]
	lb.LossAt = lb.LossAt[:0]
	lb.Commit = false
}

// Source produces line batches.
type Source interface {
	// ID identifies the source; it is the Source of every checkpoint it emits.
	ID() string
	// Run reads from the position after from (zero: the beginning) and calls
	// emit per batch until ctx is done (following sources) or the input ends
	// (one-shot sources). An error from emit stops Run and is returned. A
	// following source may emit an empty batch with no checkpoint (Source
	// "") while it has nothing to read, so that the consumer's periodic work
	// (heartbeat stats, commits by age) runs on a quiet input.
	Run(ctx context.Context, from flow.Checkpoint, emit func(*LineBatch) error) error
}

// Metrics are the ingest counters, labelled by source.
type Metrics struct {
	lines     *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	rotations *prometheus.CounterVec
	lostLines *prometheus.CounterVec
	lostBytes *prometheus.CounterVec
	gaps      *prometheus.CounterVec
	// gRPC sources
	grpcUp         *prometheus.GaugeVec
	grpcReconnects *prometheus.CounterVec
	grpcDups       *prometheus.CounterVec
	lag            *prometheus.GaugeVec
	rotEvery       *prometheus.GaugeVec
	slack          *prometheus.GaugeVec
}

// NewMetrics creates the ingest metrics, registered with reg unless nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "lines_total",
			Help: "Complete lines read, by source."}, []string{"source"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "bytes_total",
			Help: "Bytes read, by source."}, []string{"source"}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "file_rotations_total",
			Help: "Rotations of the followed file that the source followed."}, []string{"source"}),
		lostLines: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "lost_lines_total",
			Help: "Lines lost where their count is known, by source and reason (line_too_long)."}, []string{"source", "reason"}),
		lostBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "lost_bytes_total",
			Help: "Bytes lost before they could be read, by source and reason (rotation_gap, truncated, line_too_long)."}, []string{"source", "reason"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "gaps_total",
			Help: "Gaps found in the input (lines that were not, or may not have been, read), by source, reason (rotation_gap, truncated, damaged_input, line_too_long) and amount: exact, at_least (more may be lost than lost_bytes_total counts) or unknown (only the time range is known)."}, []string{"source", "reason", "amount"}),
		grpcUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "grpc_stream_up",
			Help: "1 while a gRPC source's connection is open and the server has answered (ServerStatus or a GetFlows message), by source."}, []string{"source"}),
		grpcReconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "grpc_stream_failures_total",
			Help: "GetFlows streams that failed or could not be opened (each followed by a reconnect with backoff), by source."}, []string{"source"}),
		grpcDups: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "grpc_duplicate_flows_total",
			Help: "Flows a gRPC source received again after a reconnect (or Relay's re-attach of an agent) and dropped, by source."}, []string{"source"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "lag_bytes",
			Help: "Bytes of the followed live file not yet read, when last checked."}, []string{"source"}),
		rotEvery: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "file_rotation_interval_seconds",
			Help: "Time between the exporter's two newest rotations of the followed file, from lumberjack's backup names (absent until two were seen)."}, []string{"source"}),
		slack: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "ingest", Name: "file_slack_seconds",
			Help: "The rotation interval times the backups on disk plus one: about how long a line outlives the exporter's rotation, so how long the source may stop (or fall behind) without losing flows."}, []string{"source"}),
	}
	if reg != nil {
		reg.MustRegister(m.lines, m.bytes, m.rotations, m.lostLines, m.lostBytes, m.gaps, m.grpcUp, m.grpcReconnects, m.grpcDups, m.lag, m.rotEvery, m.slack)
	}
	return m
}

// MaxLineBytes is the longest line a source delivers unless configured
// otherwise: the decoder's limit (hubblejson.MaxLineBytes), so that a line
// the decoder would refuse is skipped and counted as line_too_long by the
// reader, with bounded memory.
const MaxLineBytes = hubblejson.MaxLineBytes

// fingerprintLen is how many leading bytes identify a file's content.
const fingerprintLen = 1024

// fingerprint hashes up to the first n bytes of r and says how many it read.
func fingerprint(r io.Reader, n int) (string, int, error) {
	buf := make([]byte, n)
	m, err := io.ReadFull(r, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", 0, err
	}
	sum := sha256.Sum256(buf[:m])
	return hex.EncodeToString(sum[:]), m, nil
}

// openMaybeGzip opens path and returns a reader of its content (gunzipped
// when it starts with the gzip magic).
func openMaybeGzip(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return struct {
			io.Reader
			io.Closer
		}{zr, f}, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{br, f}, nil
}

// splitter cuts a byte stream into lines with bounded memory: lines longer
// than max are skipped (and reported), never buffered whole.
type splitter struct {
	buf      []byte
	start    int // first unconsumed byte in buf
	end      int // end of valid data in buf
	max      int
	skipping bool // inside an over-long line, discarding to its newline
	skipped  int64
}

func newSplitter(max int) *splitter {
	size := 1 << 20
	if max+1 > size {
		size = max + 1
	}
	return &splitter{buf: make([]byte, size), max: max}
}

// spareSplitters keeps the line buffers of finished reads for the next
// ones: otherwise every file an import reads and every Run of a file
// source (each session of the daemon) allocates a new 1 MiB buffer and
// faults it in, a cost that shows against decoding from memory
// (BenchmarkFileSourceDecode in bench/README.md). Not a sync.Pool: an
// import allocates enough for a GC between two files, which would empty it.
var spareSplitters struct {
	mu   sync.Mutex
	free []*splitter
}

// maxSpareSplitters bounds the buffers kept (sources that run at once).
const maxSpareSplitters = 4

// getSplitter returns a spare splitter for lines of at most max bytes, or
// a new one.
func getSplitter(max int) *splitter {
	spareSplitters.mu.Lock()
	defer spareSplitters.mu.Unlock()
	for i, sp := range spareSplitters.free {
		if sp.max == max {
			last := len(spareSplitters.free) - 1
			spareSplitters.free[i] = spareSplitters.free[last]
			spareSplitters.free[last] = nil
			spareSplitters.free = spareSplitters.free[:last]
			sp.reset()
			return sp
		}
	}
	return newSplitter(max)
}

// putSplitter gives back a splitter no line of which is used any more.
func putSplitter(sp *splitter) {
	spareSplitters.mu.Lock()
	defer spareSplitters.mu.Unlock()
	if len(spareSplitters.free) < maxSpareSplitters {
		spareSplitters.free = append(spareSplitters.free, sp)
	}
}

// reset forgets all buffered data (a new file).
func (s *splitter) reset() {
	s.start, s.end, s.skipping, s.skipped = 0, 0, false, 0
}

// fill reads more data; it returns the bytes read.
func (s *splitter) fill(r io.Reader) (int, error) {
	if s.start > 0 && s.start == s.end {
		s.start, s.end = 0, 0
	}
	if s.end == len(s.buf) {
		copy(s.buf, s.buf[s.start:s.end])
		s.end -= s.start
		s.start = 0
	}
	n, err := r.Read(s.buf[s.end:])
	s.end += n
	return n, err
}

// next returns the next complete line (valid until the next fill), or nil.
// tooLong reports a skipped over-long line that ended here (its byte count).
func (s *splitter) next() (line []byte, tooLong int64) {
	i := bytes.IndexByte(s.buf[s.start:s.end], '\n')
	if i < 0 {
		if s.end-s.start > s.max {
			// Over-long: drop what we have and discard until the newline.
			s.skipped += int64(s.end - s.start)
			s.skipping = true
			s.start, s.end = 0, 0
		}
		return nil, 0
	}
	l := s.buf[s.start : s.start+i]
	s.start += i + 1
	if s.skipping {
		n := s.skipped + int64(i) + 1
		s.skipping, s.skipped = false, 0
		return nil, n
	}
	if len(l) > s.max {
		return nil, int64(len(l)) + 1
	}
	return bytes.TrimSuffix(l, []byte{'\r'}), 0
}

// skipHole consumes the NUL bytes at the start of the next line and says
// how many. A line of events.log never starts with one: a run of them is a
// hole, left where a file truncated under its writer was written again at
// the writer's old offset (lumberjack's files are not opened in append
// mode), and the lines it replaced are lost.
func (s *splitter) skipHole() int64 {
	if s.skipping {
		return 0
	}
	i := s.start
	for i < s.end && s.buf[i] == 0 {
		i++
	}
	n := int64(i - s.start)
	s.start = i
	return n
}

// pending is the number of bytes of an incomplete line held.
func (s *splitter) pending() int64 {
	if s.skipping {
		return s.skipped + int64(s.end-s.start)
	}
	return int64(s.end - s.start)
}

// filePos is a file source checkpoint position.
type filePos struct {
	Fingerprint string `json:"fp"`     // sha256 of the first FPLen bytes of content
	FPLen       int    `json:"fp_len"` // bytes the fingerprint covers
	Offset      int64  `json:"offset"` // next unread byte of content
	Name        string `json:"name"`   // file name when last read
	Line        int64  `json:"line"`   // lines consumed
	Inode       uint64 `json:"ino,omitempty"`
	Size        int64  `json:"size,omitempty"` // size when last read (for loss accounting)
	Dev         uint64 `json:"dev,omitempty"`
	// Backup is the lumberjack timestamp in the file's backup name
	// (events-<Backup>.log[.gz]) when it was read as a backup.
	Backup string `json:"backup,omitempty"`
	// After is the newest backup timestamp read before this file: every
	// backup named later than After is newer than everything consumed. A
	// position with no file (Name, Inode and Fingerprint empty) is "between
	// files": continue with the first backup after After, else the live file.
	After string `json:"after,omitempty"`
}

func encodePos(p filePos) string {
	b, _ := json.Marshal(p)
	return string(b)
}

func decodePos(s string) (filePos, error) {
	var p filePos
	if s == "" {
		return p, nil
	}
	err := json.Unmarshal([]byte(s), &p)
	return p, err
}

// nopLogger returns log or a no-op logger.
func nopLogger(log *zap.Logger) *zap.Logger {
	if log == nil {
		return zap.NewNop()
	}
	return log
}
