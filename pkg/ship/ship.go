// Package ship copies an archive's closed files and the manifests that
// describe them to S3-compatible object storage, in the archive's own
// layout (flows/…, stats/…, losses/…, manifests/…), so that the bucket is
// itself an archive that report, verify and DuckDB read as they read one on
// disk.
//
// What is shipped is what the manifests vouch for: a manifest file is read
// to its last complete line, each data file a new entry names (commit or
// compaction) is uploaded with its SHA-256 from the entry, which the server
// checks before it stores the object, and then the manifest's complete
// lines are uploaded, so a manifest in the bucket never names a file the
// bucket does not hold. The ledger (_ship/<destination>.json: per manifest
// file, the bytes of it shipped) is written after that, atomically; a crash
// anywhere before it makes the next pass upload the same bytes to the same
// keys again, which changes nothing. A file an entry names that is gone
// locally was merged by compaction (a later entry of the same day names the
// merged file) or deleted by retention (a retention entry says so), and is
// skipped.
package ship

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/objstore"
)

// Config configures a Shipper.
type Config struct {
	Root   string // the local archive
	To     objstore.Location
	Client *objstore.Client
	// LockMode, when set ("COMPLIANCE" or "GOVERNANCE"), puts S3 Object
	// Lock on every object, retained for LockRetain from its upload.
	LockMode   string
	LockRetain time.Duration
	Log        *zap.Logger
	Metrics    *Metrics
	Now        func() time.Time
}

// Shipper ships one archive to one location. Once may run in one
// goroutine at a time; Shipped and Backlog are safe from any.
type Shipper struct {
	cfg    Config
	ledger string // path of the ledger
	mu     sync.Mutex
	state  ledger
}

// ledger is what was shipped: per manifest file (relative path), the bytes
// of it in the bucket.
type ledger struct {
	Destination string           `json:"destination"`
	Manifests   map[string]int64 `json:"manifests"`
}

// New prepares a shipper, reading its ledger.
func New(cfg Config) (*Shipper, error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LockMode != "" && cfg.LockMode != "COMPLIANCE" && cfg.LockMode != "GOVERNANCE" {
		return nil, fmt.Errorf("ship: object lock mode %q: want COMPLIANCE or GOVERNANCE", cfg.LockMode)
	}
	if cfg.LockMode != "" && cfg.LockRetain <= 0 {
		return nil, fmt.Errorf("ship: object lock: a retention period is required")
	}
	dest := cfg.To.String()
	sum := sha256.Sum256([]byte(dest))
	s := &Shipper{cfg: cfg, ledger: filepath.Join(cfg.Root, "_ship", hex.EncodeToString(sum[:8])+".json")}
	if err := s.ReadLedger(); err != nil {
		return nil, err
	}
	return s, nil
}

// ReadLedger reads the ledger again, for a shipper that takes the archive
// over from another process (an upgrade's previous collector, which kept
// shipping until it stopped). Not while Once runs.
func (s *Shipper) ReadLedger() error {
	dest := s.cfg.To.String()
	state := ledger{Destination: dest, Manifests: map[string]int64{}}
	b, err := os.ReadFile(s.ledger)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("ship: ledger: %w", err)
	default:
		if err := json.Unmarshal(b, &state); err != nil || state.Destination != dest {
			return fmt.Errorf("ship: ledger %s: unreadable or of another destination (%v)", s.ledger, err)
		}
		if state.Manifests == nil {
			state.Manifests = map[string]int64{}
		}
	}
	s.mu.Lock()
	s.state = state
	s.mu.Unlock()
	return nil
}

// Result is what one pass shipped.
type Result struct {
	Files, Manifests int   // objects uploaded
	Bytes            int64 // their bytes
	Skipped          int   // files named by entries but gone locally (compacted, retired)
}

// Once ships everything the archive's manifests hold that the bucket does
// not, manifest by manifest, each node's oldest first. An error stops that
// node's shipping (its chain reaches the bucket in order) but not the other
// nodes'; the errors are returned together.
func (s *Shipper) Once(ctx context.Context) (Result, error) {
	var res Result
	manifests, err := manifestFiles(s.cfg.Root)
	if err != nil {
		return res, err
	}
	var errs []error
	failed := map[string]bool{} // node directories
	for _, rel := range manifests {
		node := path.Dir(rel)
		if failed[node] {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		s.mu.Lock()
		done := s.state.Manifests[rel]
		s.mu.Unlock()
		data, err := completeLines(filepath.Join(s.cfg.Root, filepath.FromSlash(rel)))
		switch {
		case err != nil:
		case int64(len(data)) == done:
			continue
		case int64(len(data)) < done:
			err = fmt.Errorf("ship: %s is %d bytes, %d were shipped: a manifest shrank (altered?)", rel, len(data), done)
		default:
			err = s.shipManifest(ctx, rel, data, done, &res)
		}
		if err != nil {
			errs = append(errs, err)
			failed[node] = true
		}
	}
	backlog := s.setBacklog(manifests)
	if err := errors.Join(errs...); err != nil {
		s.cfg.Metrics.errors.Inc()
		return res, err
	}
	if backlog == 0 {
		s.cfg.Metrics.lastSuccess.Set(float64(s.cfg.Now().UnixNano()) / 1e9)
	}
	return res, nil
}

// shipManifest uploads the files the manifest's lines after done name, then
// its complete lines, then records them.
func (s *Shipper) shipManifest(ctx context.Context, rel string, data []byte, done int64, res *Result) error {
	sc := bufio.NewScanner(bytes.NewReader(data[done:]))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		var e archive.ManifestEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("ship: %s: a manifest line: %w", rel, err)
		}
		if e.Op != "commit" && e.Op != "compaction" {
			continue
		}
		shipped, err := s.shipFile(ctx, e)
		if err != nil {
			return err
		}
		if shipped < 0 {
			res.Skipped++
			continue
		}
		res.Files++
		res.Bytes += shipped
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("ship: %s: %w", rel, err)
	}
	sum := sha256.Sum256(data)
	if err := s.cfg.Client.Put(ctx, s.cfg.To, rel, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:]), s.lock()); err != nil {
		return fmt.Errorf("ship: %w", err)
	}
	res.Manifests++
	res.Bytes += int64(len(data))
	s.cfg.Metrics.objects.WithLabelValues("manifest").Inc()
	s.cfg.Metrics.bytes.Add(float64(len(data)))
	s.mu.Lock()
	s.state.Manifests[rel] = int64(len(data))
	b, _ := json.Marshal(s.state)
	s.mu.Unlock()
	if err := writeAtomic(s.ledger, b); err != nil {
		return fmt.Errorf("ship: ledger: %w", err)
	}
	return nil
}

// shipFile uploads the file an entry names: its bytes (-1 when the file is
// gone locally).
func (s *Shipper) shipFile(ctx context.Context, e archive.ManifestEntry) (int64, error) {
	f, err := os.Open(filepath.Join(s.cfg.Root, filepath.FromSlash(e.Path)))
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ship: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("ship: %w", err)
	}
	if fi.Size() != e.Bytes {
		return 0, fmt.Errorf("ship: %s is %d bytes, its manifest entry says %d: not shipped (run flowaudit verify)", e.Path, fi.Size(), e.Bytes)
	}
	// The entry's SHA-256 goes with the upload: the server refuses bytes
	// that do not match it, so a file altered on disk is never shipped.
	if err := s.cfg.Client.Put(ctx, s.cfg.To, e.Path, f, e.Bytes, e.SHA256, s.lock()); err != nil {
		return 0, fmt.Errorf("ship: %w", err)
	}
	s.cfg.Metrics.objects.WithLabelValues(e.Table).Inc()
	s.cfg.Metrics.bytes.Add(float64(e.Bytes))
	return e.Bytes, nil
}

func (s *Shipper) lock() *objstore.Lock {
	if s.cfg.LockMode == "" {
		return nil
	}
	return &objstore.Lock{Mode: s.cfg.LockMode, RetainUntil: s.cfg.Now().Add(s.cfg.LockRetain)}
}

// Shipped reports whether a node's manifest of a date is shipped whole:
// retention may then delete the date's partitions of the node.
func (s *Shipper) Shipped(node, date string) bool {
	rel := "manifests/node=" + archive.SanitizeNode(node) + "/date=" + date + ".jsonl"
	data, err := completeLines(filepath.Join(s.cfg.Root, filepath.FromSlash(rel)))
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Manifests[rel] == int64(len(data))
}

// setBacklog counts the manifests not shipped whole, for the metrics, and
// returns their number.
func (s *Shipper) setBacklog(manifests []string) int {
	var n int
	var bytes int64
	for _, rel := range manifests {
		fi, err := os.Stat(filepath.Join(s.cfg.Root, filepath.FromSlash(rel)))
		if err != nil {
			continue
		}
		s.mu.Lock()
		done := s.state.Manifests[rel]
		s.mu.Unlock()
		if fi.Size() > done {
			n++
			bytes += fi.Size() - done
		}
	}
	s.cfg.Metrics.backlog.Set(float64(n))
	s.cfg.Metrics.backlogBytes.Set(float64(bytes))
	return n
}

// manifestFiles lists the archive's manifest files (relative paths), by
// node, oldest date first.
func manifestFiles(root string) ([]string, error) {
	nodes, err := os.ReadDir(filepath.Join(root, "manifests"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ship: %w", err)
	}
	var out []string
	for _, n := range nodes {
		if !n.IsDir() || !strings.HasPrefix(n.Name(), "node=") {
			continue
		}
		days, err := os.ReadDir(filepath.Join(root, "manifests", n.Name()))
		if err != nil {
			return nil, fmt.Errorf("ship: %w", err)
		}
		var names []string
		for _, d := range days {
			if strings.HasPrefix(d.Name(), "date=") && strings.HasSuffix(d.Name(), ".jsonl") {
				names = append(names, d.Name())
			}
		}
		slices.Sort(names)
		for _, d := range names {
			out = append(out, "manifests/"+n.Name()+"/"+d)
		}
	}
	return out, nil
}

// completeLines reads a manifest up to its last newline: a line a crash cut
// short is not shipped (the writer removes it before its next append).
func completeLines(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ship: %w", err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[:i+1], nil
	}
	return nil, nil
}

func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Metrics are the shipper's.
type Metrics struct {
	objects      *prometheus.CounterVec
	bytes        prometheus.Counter
	errors       prometheus.Counter
	backlog      prometheus.Gauge
	backlogBytes prometheus.Gauge
	lastSuccess  prometheus.Gauge
}

// NewMetrics creates the shipper's metrics, registered with reg unless nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ship", Name: "objects_total",
			Help: "Objects uploaded to the object store and accepted with their SHA-256, by table (flows, stats, losses, manifest)."}, []string{"table"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ship", Name: "bytes_total",
			Help: "Bytes uploaded to the object store."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "ship", Name: "errors_total",
			Help: "Shipping passes that stopped on an error (retried with backoff)."}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "ship", Name: "backlog_manifests",
			Help: "Manifest files with entries not yet in the object store (their files are kept from retention until they are)."}),
		backlogBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "ship", Name: "backlog_manifest_bytes",
			Help: "Bytes of manifest lines not yet in the object store."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "ship", Name: "last_complete_timestamp_seconds",
			Help: "When a shipping pass last found everything shipped."}),
	}
	if reg != nil {
		reg.MustRegister(m.objects, m.bytes, m.errors, m.backlog, m.backlogBytes, m.lastSuccess)
	}
	return m
}
