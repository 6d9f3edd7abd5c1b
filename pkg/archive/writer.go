package archive

import (
	"bufio"
	"cmp"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// Config configures a Writer.
type Config struct {
	Root         string        // archive root directory
	MaxFileBytes int64         // rotate when the open files' estimated size reaches this (default 128 MiB)
	MaxFileRows  int           // rotate when the open files hold this many rows (default 1M)
	MaxFileAge   time.Duration // rotate when the oldest open file is this old (default 5m)
	RowGroupRows int           // rows per row group (default 128k)
	// CompactMaxRows bounds the rows of a file that compaction writes
	// (default MaxFileRows).
	CompactMaxRows   int
	CollectorVersion string
	ConfigHash       string
	SigningKey       ed25519.PrivateKey // optional: signs every manifest entry
	// ProvisionalPages compresses the pages of the flows and stats files
	// Write commits at zstd's default level instead of "better compression",
	// for a writer whose closed days compaction rewrites at the better
	// level: less CPU per commit, for slightly more bytes on a busy node's
	// small files until then (bench/README.md, BenchmarkProcessAndCommit).
	// Compaction's own output is always compressed at the better level.
	ProvisionalPages bool
	// Log keeps the rows of the files not yet cut in a local row log
	// (_wal/, docs/format.md "The row log"): a batch that asks for a
	// commit (flow.Batch.Commit) fsyncs the log instead of closing the
	// Parquet files, which are cut only by MaxFileAge, MaxFileBytes and
	// MaxFileRows (and Flush, Close). Without it every commit closes them.
	Log bool
	Now func() time.Time
}

// pageLevel is the compression level of the flows and stats files Write
// starts.
func (c Config) pageLevel() pageLevel {
	if c.ProvisionalPages {
		return pagesDefault
	}
	return pagesBetter
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MaxFileBytes: 128 << 20, MaxFileRows: 1 << 20, MaxFileAge: 5 * time.Minute, RowGroupRows: 128 << 10}
}

// Validate reports every problem in c.
func (c Config) Validate() error {
	var errs []error
	if c.Root == "" {
		errs = append(errs, errors.New("archive.root: required"))
	}
	if c.MaxFileBytes <= 0 {
		errs = append(errs, fmt.Errorf("archive.maxFileBytes: %d must be > 0", c.MaxFileBytes))
	}
	if c.MaxFileRows <= 0 {
		errs = append(errs, fmt.Errorf("archive.maxFileRows: %d must be > 0", c.MaxFileRows))
	}
	if c.MaxFileAge <= 0 {
		errs = append(errs, fmt.Errorf("archive.maxFileAge: %s must be > 0", c.MaxFileAge))
	}
	if c.RowGroupRows <= 0 {
		errs = append(errs, fmt.Errorf("archive.rowGroupRows: %d must be > 0", c.RowGroupRows))
	}
	return errors.Join(errs...)
}

type partKey struct {
	table, date, node string // node is the sanitised partition value
}

type openFile struct {
	key        partKey
	tmp        string
	f          writableFile
	hash       *hashingWriter
	buf        *bufio.Writer
	flows      *flowWriter // nil for a stats file (written whole)
	rows       int64
	minT, maxT int64
}

// tables are the archive's tables, each a directory of date and node
// partitions (docs/format.md).
var tables = []string{"flows", "stats", "losses"}

// rowBufRows is the most rows an open flows file holds before it shreds
// them into its column buffers (flushRows).
const rowBufRows = 4096

// Writer writes batches into the archive. It owns two locks: the root's
// writer lock, which it takes in Open and releases in Close or Abort (one
// writer per root, across processes), and a mutex that its methods hold
// for what each does, so that they may be called from any goroutine: a
// batch (Write), a commit (Flush), one start or commit of a compaction run
// (CompactEach reads and merges outside it), a retention pass. Close
// commits what is open and releases the writer; Abort releases it without
// committing; both may be called twice, and after either every method
// returns ErrClosed (or does nothing: Close, Abort).
type Writer struct {
	mu      sync.Mutex // held by every exported method; the fields below are its
	cfg     Config
	lock    *os.File // the root's writer lock (see lockRoot)
	log     *zap.Logger
	m       *metrics
	files   map[partKey]*openFile
	stats   map[statKey]*StatRow
	details map[statKey][]string
	losses  []LossRow // the losses table's rows of the next commit
	opened  time.Time
	rows    int
	estSize int64
	// rowBytes is the compressed size of a flows row that estSize counts:
	// initialRowBytes until a row group or a commit has measured it
	// (measureOpenFiles, refineRowBytes).
	rowBytes int64
	measured bool

	committed map[string]flow.Checkpoint // per source, as of the last commit
	first     map[string]flow.Checkpoint // first checkpoint per source since the last commit
	last      map[string]flow.Checkpoint // latest checkpoint per source, not yet committed
	newest    map[string]int64           // newest flow time (ns) per source, not yet committed
	seq       uint64
	heads     map[string]chainHead // manifest chain head per node
	// manifestSeq is, per manifest file this writer has read whole, the
	// highest commit seq it held then (appendManifest); manifestReads counts
	// those reads.
	manifestSeq   map[string]uint64
	manifestReads int
	closed        bool
	slab          rowSlab       // what the rows of one Write point to
	order         []int         // the order in which Write takes the batch's flows (by time)
	pending       *commitRecord // a compaction whose apply failed
	part          partCache
	rlog          *rowLog       // the live row log (Config.Log), else nil
	commits       atomic.Uint64 // durable commits: cuts and row log fsyncs
}

// partCache remembers the last day's partition value and every node name's:
// formatting a date and sanitising a name for every row was most of Write's
// allocations.
type partCache struct {
	day     int64
	dateStr string            // "" until the first row
	nodes   map[string]string // node name -> partition value
}

func (c *partCache) date(ns int64) string {
	const dayNs = 24 * 3600 * 1e9
	day := ns / dayNs
	if ns < 0 && ns%dayNs != 0 {
		day-- // floor
	}
	if c.dateStr == "" || day != c.day {
		c.day = day
		c.dateStr = time.Unix(day*24*3600, 0).UTC().Format("2006-01-02")
	}
	return c.dateStr
}

func (c *partCache) node(name string) string {
	if v, ok := c.nodes[name]; ok {
		return v
	}
	if c.nodes == nil || len(c.nodes) >= 4096 { // bounded: a hostile stream of names
		c.nodes = make(map[string]string)
	}
	v := SanitizeNode(name)
	c.nodes[strings.Clone(name)] = v // name may live in the batch's buffer
	return v
}

type statKey struct {
	node   string
	minute int64
}

// Open opens (or creates) the archive at cfg.Root, completes or discards
// whatever a crash left behind, and loads the committed checkpoints. It
// fails with a *LockedError while another writer has the root open
// (OpenWait waits).
func Open(cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Writer, error) {
	return open(cfg, log, reg, nil)
}

// open is Open, waiting for the root's lock with wait if it is not nil.
func open(cfg Config, log *zap.Logger, reg prometheus.Registerer, wait *lockWaiter) (*Writer, error) {
	def := DefaultConfig()
	if cfg.MaxFileBytes == 0 {
		cfg.MaxFileBytes = def.MaxFileBytes
	}
	if cfg.MaxFileRows == 0 {
		cfg.MaxFileRows = def.MaxFileRows
	}
	if cfg.MaxFileAge == 0 {
		cfg.MaxFileAge = def.MaxFileAge
	}
	if cfg.RowGroupRows == 0 {
		cfg.RowGroupRows = def.RowGroupRows
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	w := &Writer{
		cfg: cfg, log: log.Named("archive"), m: newMetrics(reg), rowBytes: initialRowBytes,
		files: map[partKey]*openFile{}, stats: map[statKey]*StatRow{}, details: map[statKey][]string{},
		committed: map[string]flow.Checkpoint{}, first: map[string]flow.Checkpoint{}, last: map[string]flow.Checkpoint{},
		newest: map[string]int64{},
		heads:  map[string]chainHead{}, manifestSeq: map[string]uint64{},
	}
	if err := os.MkdirAll(cfg.Root, 0o755); err != nil {
		return nil, fmt.Errorf("archive: open %s: %w", cfg.Root, err)
	}
	var pause func(*LockedError) error
	if wait != nil {
		pause = func(e *LockedError) error { return wait.pause(w, e) }
	}
	lock, locked, err := lockRoot(cfg.Root, pause)
	if err != nil {
		return nil, err
	}
	wait.took(w)
	if lock != nil && !locked {
		w.log.Warn("the archive's file system does not support locks: make sure nothing else writes to this archive root", zap.String("root", cfg.Root))
	}
	w.lock = lock
	for _, d := range append(tables[:len(tables):len(tables)], "manifests", commitsDir) {
		if err := os.MkdirAll(filepath.Join(cfg.Root, d), 0o755); err != nil {
			w.unlock()
			return nil, fmt.Errorf("archive: open %s: %w", cfg.Root, err)
		}
	}
	cut, err := w.recover()
	if err != nil {
		w.unlock()
		return nil, fmt.Errorf("archive: recover %s: %w", cfg.Root, err)
	}
	if cfg.Log {
		if err := w.recoverLog(cut); err != nil {
			w.abortOpen()
			return nil, fmt.Errorf("archive: recover %s: %w", cfg.Root, err)
		}
		// A log older than MaxFileAge (a writer stopped for long) is cut
		// now rather than with the next batch.
		if w.dueForCut(cfg.Now()) {
			if err := w.Flush(); err != nil {
				w.abortOpen()
				return nil, fmt.Errorf("archive: recover %s: %w", cfg.Root, err)
			}
		}
	}
	return w, nil
}

// abortOpen releases a writer that failed to open: the files a replay
// opened are removed (the log keeps their rows).
func (w *Writer) abortOpen() {
	_ = w.Abort()
}

// dueForCut reports whether the open files have reached a cut limit.
func (w *Writer) dueForCut(now time.Time) bool {
	if w.opened.IsZero() {
		return false
	}
	return w.rows >= w.cfg.MaxFileRows || w.estSize >= w.cfg.MaxFileBytes || now.Sub(w.opened) >= w.cfg.MaxFileAge
}

// ErrClosed is returned by a Writer's methods after Close or Abort.
var ErrClosed = errors.New("archive: closed")

// locked runs fn holding the writer's mutex, unless the writer is closed.
func (w *Writer) locked(fn func() error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	return fn()
}

// unlock releases the root's writer lock.
func (w *Writer) unlock() {
	if w.lock != nil {
		_ = w.lock.Close()
		w.lock = nil
		w.log.Info("released the archive's writer lock", zap.String("root", w.cfg.Root))
	}
}

// Checkpoints returns the last committed checkpoint of every source.
func (w *Writer) Checkpoints() map[string]flow.Checkpoint {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]flow.Checkpoint, len(w.committed))
	for k, v := range w.committed {
		out[k] = v
	}
	return out
}

// Imported returns the last committed checkpoint of sourceID, if any, so an
// import can skip or resume a source it has already archived.
func (w *Writer) Imported(sourceID string) (flow.Checkpoint, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cp, ok := w.committed[sourceID]
	return cp, ok
}

// Write adds a batch. It copies everything it keeps, so b may be reset when
// Write returns. It commits the open files when a rotation limit is reached
// or the batch asks for it (b.Commit).
//
// With Config.Log the batch is first appended to the row log, and a batch
// that asks for a commit fsyncs the log; the files are cut by the limits
// only.
func (w *Writer) Write(b *flow.Batch) error {
	return w.locked(func() error { return w.write(b) })
}

func (w *Writer) write(b *flow.Batch) error {
	now := w.cfg.Now()
	empty := len(b.Flows) == 0 && len(b.Stats) == 0 && len(b.Losses) == 0 && b.Checkpoint.Source == ""
	if w.rlog != nil && !empty {
		if err := w.logRecord(b, now); err != nil {
			w.m.writeErrors.WithLabelValues(writeErrorKind(err)).Inc()
			return err
		}
	}
	if w.opened.IsZero() && !empty {
		w.opened = now
	}
	if err := w.add(b); err != nil {
		w.m.writeErrors.WithLabelValues(writeErrorKind(err)).Inc()
		return err
	}
	// Counted here, not in add: the rows a recovery replays from the row
	// log were counted when they were written.
	w.m.rows.Add(float64(len(b.Flows)))
	if !w.measured {
		w.measureOpenFiles()
	}
	cut := w.dueForCut(now)
	if w.rlog == nil {
		if b.Commit || cut {
			return w.flush()
		}
		return nil
	}
	if cut {
		return w.flush()
	}
	if !w.opened.IsZero() {
		w.m.unpublishedSeconds.Set(now.Sub(w.opened).Seconds())
	}
	if b.Commit {
		if err := w.syncLog(); err != nil {
			w.m.writeErrors.WithLabelValues(writeErrorKind(err)).Inc()
			return err
		}
	}
	return nil
}

// add takes a batch into the open files and the gathered accounting.
func (w *Writer) add(b *flow.Batch) error {
	if err := w.addFlows(b); err != nil {
		return err
	}
	for _, s := range b.Stats {
		w.addStat(s.Node, s.Minute, func(r *StatRow) {
			r.FlowsSeen += s.Counts.Seen
			r.FlowsKept += s.Counts.Kept
			r.FlowsDenied += s.Counts.Denied
			r.DecodeErrors += s.Counts.DecodeErrors
			r.NonFlowEvents += s.Counts.NonFlow
			if s.Status != "" {
				r.Status = s.Status
			}
		})
	}
	for _, l := range b.Losses {
		min := l.Time.Unix() / 60 * 60
		k := w.addStat(l.Node, min, func(r *StatRow) {
			switch l.Reason {
			case flow.LossHubbleLostEvents:
				r.LostEvents += l.Events
			case flow.LossRotationGap:
				r.LostRotation += l.Bytes
			case flow.LossTruncated:
				r.LostTruncated += l.Bytes
			case flow.LossLineTooLong:
				r.LostTooLong += max(l.Events, 1)
			case flow.LossStreamDown:
				r.LostStreamDown += l.Events
			}
		})
		if l.Detail != "" || l.Reason != flow.LossHubbleLostEvents {
			w.details[k] = append(w.details[k], fmt.Sprintf("%s:%s=%d", l.Reason, l.Detail, max(l.Events, l.Bytes)))
		}
		w.losses = append(w.losses, lossRow(&l, w.cfg.CollectorVersion, w.cfg.ConfigHash))
	}
	if cp := b.Checkpoint; cp.Source != "" {
		if _, ok := w.first[cp.Source]; !ok {
			w.first[cp.Source] = cp
		}
		w.last[cp.Source] = cp
		if n := len(w.order); n > 0 { // addFlows sorted the batch's flows by time
			if t := flowTimeNs(b.Flows[w.order[n-1]]); t > w.newest[cp.Source] {
				w.newest[cp.Source] = t
			}
		}
	}
	return nil
}

func (w *Writer) addStat(node string, minute int64, fn func(*StatRow)) statKey {
	k := statKey{node: strings.Clone(node), minute: minute}
	r := w.stats[k]
	if r == nil {
		r = &StatRow{Node: k.node, Minute: minute * 1e6, Status: "up", CollectorVersion: w.cfg.CollectorVersion, ConfigHash: w.cfg.ConfigHash}
		w.stats[k] = r
	}
	fn(r)
	return k
}

func (w *Writer) addFlows(b *flow.Batch) error {
	// Rows are written in time order within each batch (a file source's
	// batches are themselves in Hubble's time order).
	w.order = w.order[:0]
	sorted := true
	for i := range b.Flows {
		w.order = append(w.order, i)
		sorted = sorted && (i == 0 || !timeLess(b.Flows[i], b.Flows[i-1]))
	}
	if !sorted {
		sort.SliceStable(w.order, func(i, j int) bool { return timeLess(b.Flows[w.order[i]], b.Flows[w.order[j]]) })
	}
	for _, i := range w.order {
		f := b.Flows[i]
		key := partKey{table: "flows", date: w.part.date(flowTimeNs(f)), node: w.part.node(f.GetNodeName())}
		of, err := w.file(key)
		if err != nil {
			return err
		}
		row := of.flows.next()
		fillRow(row, f, &w.slab)
		if of.rows == 0 || row.Time < of.minT {
			of.minT = row.Time
		}
		if of.rows == 0 || row.Time > of.maxT {
			of.maxT = row.Time
		}
		of.rows++
		w.rows++
		w.estSize += w.rowBytes
		if of.flows.pending() >= rowBufRows {
			if err := of.flushRows(); err != nil {
				return err
			}
		}
	}
	for _, of := range w.files {
		if of.flows == nil {
			continue
		}
		if err := of.flushRows(); err != nil {
			return err
		}
	}
	w.slab.reset() // every row is in the files' column buffers now
	return nil
}

// timeLess orders flows by time.
func timeLess(a, b *flowpb.Flow) bool {
	ta, tb := a.GetTime(), b.GetTime()
	return ta.GetSeconds() < tb.GetSeconds() || (ta.GetSeconds() == tb.GetSeconds() && ta.GetNanos() < tb.GetNanos())
}

func (of *openFile) flushRows() error {
	if err := of.flows.writePending(); err != nil {
		return fmt.Errorf("archive: write %s: %w", of.tmp, err)
	}
	return nil
}

// hashingWriter hashes and counts what is written to the file.
type hashingWriter struct {
	w io.Writer
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// fileBufBytes buffers an open flows file's writes. A column chunk goes out
// whole (it is assembled in the leaf's pages), so the buffer only gathers
// the page indexes and the footer, and it stays small because an import or
// a Relay stream of many nodes' flows holds a file, and a buffer, per node
// (bench/README.md, "Archive": a 300-node import).
const fileBufBytes = 64 << 10

func (w *Writer) file(key partKey) (*openFile, error) {
	if of := w.files[key]; of != nil {
		return of, nil
	}
	of, err := w.createTmp(key)
	if err != nil {
		return nil, err
	}
	of.buf = bufio.NewWriterSize(of.hash, fileBufBytes)
	if of.flows, err = newFlowWriter(of.buf, w.cfg.RowGroupRows, w.cfg.pageLevel(), fileMetadata(key, w.cfg.CollectorVersion, w.cfg.ConfigHash)); err != nil {
		of.f.Close()
		os.Remove(of.tmp)
		return nil, fmt.Errorf("archive: write %s: %w", of.tmp, err)
	}
	w.files[key] = of
	w.m.openFiles.Set(float64(len(w.files)))
	return of, nil
}

// createTmp creates, under its temporary name, a new data file of the
// partition key, hashed as it is written.
func (w *Writer) createTmp(key partKey) (*openFile, error) {
	return w.createTmpSeq(key, w.seq+1)
}

// createTmpSeq is createTmp with the sequence number its name carries given
// (compaction creates its output without the writer's state).
func (w *Writer) createTmpSeq(key partKey, seq uint64) (*openFile, error) {
	dir := filepath.Join(w.cfg.Root, key.table, "date="+key.date, "node="+key.node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	tmp := filepath.Join(dir, fmt.Sprintf("%s%d-%s.parquet", tmpPrefix, seq, randHex(6)))
	f, err := createFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return &openFile{key: key, tmp: tmp, f: f, hash: &hashingWriter{w: f, h: sha256.New()}}, nil
}

// statsOptions are parquet-go's options for a stats file (the flows table
// is flowWriter's) with the key-value metadata of the given collector and
// configuration, compressed at level. parquet-go sizes a required column's
// buffer to the page buffer size up front, and a row per node and minute
// needs little.
func (w *Writer) statsOptions(key partKey, level pageLevel, collectorVersion, configHash string) []parquet.WriterOption {
	opts := []parquet.WriterOption{
		parquet.Compression(pageCodecs[level]),
		parquet.MaxRowsPerRowGroup(int64(w.cfg.RowGroupRows)),
		parquet.PageBufferSize(64 << 10),
	}
	for _, kv := range fileMetadata(key, collectorVersion, configHash) {
		opts = append(opts, parquet.KeyValueMetadata(kv[0], kv[1]))
	}
	return opts
}

// fileMetadata is a file's key-value metadata (docs/format.md).
func fileMetadata(key partKey, collectorVersion, configHash string) [5][2]string {
	return [5][2]string{
		{"flowaudit.schema_version", SchemaVersion},
		{"flowaudit.collector_version", collectorVersion},
		{"flowaudit.config_hash", configHash},
		{"flowaudit.node", UnsanitizeNode(key.node)},
		{"flowaudit.table", key.table},
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Flush commits every open file (flows and the stats gathered so far) with
// the latest checkpoint of every source, as one commit group.
func (w *Writer) Flush() error {
	return w.locked(w.flush)
}

func (w *Writer) flush() error {
	err := w.flushGroup()
	if err != nil {
		w.m.writeErrors.WithLabelValues(writeErrorKind(err)).Inc()
	}
	return err
}

// flushGroup writes the open files, the commit record and the manifests of
// one commit group (flush counts its failure).
func (w *Writer) flushGroup() error {
	if len(w.files) == 0 && len(w.stats) == 0 && len(w.last) == 0 {
		return nil
	}
	start := time.Now()
	if err := w.writeStats(); err != nil {
		return err
	}
	if err := w.writeLosses(); err != nil {
		return err
	}
	rec := commitRecord{Seq: w.seq + 1, Time: w.cfg.Now().UTC(), Checkpoints: map[string]flow.Checkpoint{}, First: map[string]flow.Checkpoint{}}
	for k, v := range w.committed {
		rec.Checkpoints[k] = v
	}
	for k, v := range w.last {
		rec.Checkpoints[k] = v
	}
	for k, v := range w.first {
		rec.First[k] = v
	}
	keys := make([]partKey, 0, len(w.files))
	flowsFiles := 0
	for k, of := range w.files {
		keys = append(keys, k)
		if of.flows != nil {
			flowsFiles++
		}
	}
	slices.SortFunc(keys, func(a, b partKey) int {
		return strings.Compare(a.table+a.date+a.node, b.table+b.date+b.node)
	})
	spareBufs.keep(flowsFiles) // before the files below give their buffers back
	for _, k := range keys {
		of := w.files[k]
		if of.flows != nil {
			if err := of.flushRows(); err != nil {
				return err
			}
			if err := of.flows.Close(); err != nil {
				return fmt.Errorf("archive: close %s: %w", of.tmp, err)
			}
			if err := of.buf.Flush(); err != nil {
				return fmt.Errorf("archive: write %s: %w", of.tmp, err)
			}
		}
		if err := w.finishFile(of, &rec); err != nil {
			return err
		}
	}
	if w.rlog != nil {
		rec.Log = w.rlog.name // the rows of this log are in the group's files
	}
	// The commit record is the commit point: from here recovery completes the group.
	if err := w.writeCommitRecord(&rec); err != nil {
		return err
	}
	if err := w.apply(&rec); err != nil {
		return err
	}
	if w.rlog != nil {
		if err := w.newLog(rec.Seq); err != nil {
			return err
		}
		w.m.unpublishedSeconds.Set(0)
	}
	w.seq = rec.Seq
	w.committed = rec.Checkpoints
	w.files = map[partKey]*openFile{}
	w.stats = map[statKey]*StatRow{}
	w.details = map[statKey][]string{}
	w.losses = w.losses[:0]
	w.first = map[string]flow.Checkpoint{}
	w.last = map[string]flow.Checkpoint{}
	w.committedNewest()
	w.commits.Add(1)
	w.rows, w.estSize, w.opened = 0, 0, time.Time{}
	w.refineRowBytes(rec.Files)
	w.m.openFiles.Set(0)
	w.m.commitSeconds.Observe(time.Since(start).Seconds())
	w.pruneCommitRecords()
	return nil
}

// initialRowBytes is the compressed size of a flows row assumed until a
// written row group or a commit measures it: a conservative one (every
// field of generated flows takes ~85 bytes, the docs-example mask ~17).
const initialRowBytes = 256

// refineRowBytes takes the size of a flows row from the files a commit
// wrote (footers and dictionaries included, so small commits overestimate
// it, which errs on the safe side). A fixed size would cut files far below
// the size limit when rows are small, and past it when rows are larger
// (long HTTP headers, many labels).
func (w *Writer) refineRowBytes(files []committedFile) {
	var n, rows int64
	for _, f := range files {
		if f.Table == "flows" {
			n, rows = n+f.Bytes, rows+f.Rows
		}
	}
	w.setRowBytes(n, rows)
}

// measureOpenFiles takes the size of a row from the row groups the open
// flows files have written, until a commit has measured it: so an import's
// first commit, too, comes at the configured limits (1M rows, 128 MiB:
// one file per node for a 1M-line import) rather than at 512k rows.
func (w *Writer) measureOpenFiles() {
	var n, rows int64
	for _, of := range w.files {
		if fw := of.flows; fw != nil {
			if r := fw.total - int64(fw.rows); r > 0 { // rows in written row groups
				n, rows = n+fw.off, rows+r
			}
		}
	}
	if w.setRowBytes(n, rows) {
		w.estSize = int64(w.rows) * w.rowBytes
	}
}

// setRowBytes makes n bytes for rows rows the size of a row, if rows > 0.
func (w *Writer) setRowBytes(n, rows int64) bool {
	if rows <= 0 {
		return false
	}
	w.rowBytes = min(max((n+rows-1)/rows, 8), 1<<20)
	w.measured = true
	return true
}

// finishFile flushes, fsyncs and closes a temporary data file and records it.
func (w *Writer) finishFile(of *openFile, rec *commitRecord) error {
	if err := of.f.Sync(); err != nil {
		return fmt.Errorf("archive: fsync %s: %w", of.tmp, err)
	}
	if err := of.f.Close(); err != nil {
		return fmt.Errorf("archive: close %s: %w", of.tmp, err)
	}
	dir := filepath.Dir(of.tmp)
	final := filepath.Join(dir, fmt.Sprintf("part-%020d-%06d-%s.parquet", of.minT*1000, rec.Seq, strings.TrimSuffix(filepath.Base(of.tmp)[len(tmpPrefix):], ".parquet")))
	rel := func(p string) string { r, _ := filepath.Rel(w.cfg.Root, p); return filepath.ToSlash(r) }
	rec.Files = append(rec.Files, committedFile{
		Tmp: rel(of.tmp), Path: rel(final), Table: of.key.table, Node: UnsanitizeNode(of.key.node), Date: of.key.date,
		SHA256: hex.EncodeToString(of.hash.h.Sum(nil)), Bytes: of.hash.n, Rows: of.rows,
		MinTime: time.UnixMicro(of.minT).UTC(), MaxTime: time.UnixMicro(of.maxT).UTC(),
	})
	w.m.bytes.Add(float64(of.hash.n))
	w.m.files.WithLabelValues(of.key.table).Inc()
	return nil
}

// writeLosses writes the gathered losses, one file per (date, node): the
// date of the gap's start (the last flow before it), else of its detection,
// so that a reader of a month finds every gap that starts in it there.
func (w *Writer) writeLosses() error {
	if len(w.losses) == 0 {
		return nil
	}
	byPart := map[partKey][]LossRow{}
	for _, r := range w.losses {
		t := r.Detected
		if r.FromTime != nil {
			t = *r.FromTime
		}
		key := partKey{table: "losses", date: w.part.date(t * 1000), node: SanitizeNode(r.Node)}
		byPart[key] = append(byPart[key], r)
	}
	for key, rows := range byPart {
		slices.SortStableFunc(rows, func(a, b LossRow) int { return cmp.Compare(a.Detected, b.Detected) })
		of, err := w.createTmp(key)
		if err != nil {
			return err
		}
		pw := parquet.NewGenericWriter[LossRow](of.hash, w.statsOptions(key, w.cfg.pageLevel(), w.cfg.CollectorVersion, w.cfg.ConfigHash)...)
		if _, err := pw.Write(rows); err != nil {
			of.f.Close()
			return fmt.Errorf("archive: write %s: %w", of.tmp, err)
		}
		if err := pw.Close(); err != nil {
			of.f.Close()
			return fmt.Errorf("archive: close %s: %w", of.tmp, err)
		}
		of.rows, of.minT, of.maxT = int64(len(rows)), rows[0].Detected, rows[len(rows)-1].Detected
		w.files[key] = of // committed with the flow files
	}
	return nil
}

// writeStats writes the gathered stats rows, one file per (date, node).
func (w *Writer) writeStats() error {
	if len(w.stats) == 0 {
		return nil
	}
	byPart := map[partKey][]StatRow{}
	for k, r := range w.stats {
		if d := w.details[k]; len(d) > 0 {
			s := strings.Join(d, "; ")
			r.LossDetail = &s
		}
		key := partKey{table: "stats", date: time.Unix(k.minute, 0).UTC().Format("2006-01-02"), node: SanitizeNode(k.node)}
		byPart[key] = append(byPart[key], *r)
	}
	for key, rows := range byPart {
		slices.SortFunc(rows, func(a, b StatRow) int { return int(a.Minute - b.Minute) })
		of, err := w.createTmp(key)
		if err != nil {
			return err
		}
		pw := parquet.NewGenericWriter[StatRow](of.hash, w.statsOptions(key, w.cfg.pageLevel(), w.cfg.CollectorVersion, w.cfg.ConfigHash)...)
		if _, err := pw.Write(rows); err != nil {
			of.f.Close()
			return fmt.Errorf("archive: write %s: %w", of.tmp, err)
		}
		if err := pw.Close(); err != nil {
			of.f.Close()
			return fmt.Errorf("archive: close %s: %w", of.tmp, err)
		}
		of.rows, of.minT, of.maxT = int64(len(rows)), rows[0].Minute, rows[len(rows)-1].Minute
		w.files[key] = of // committed with the flow files
	}
	return nil
}
