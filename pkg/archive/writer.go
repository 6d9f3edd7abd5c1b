package archive

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
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
