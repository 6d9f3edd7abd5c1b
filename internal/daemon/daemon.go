// Package daemon is `flowaudit run`: it follows the configured sources, runs
// each through its pipeline (decode, Hubble filter, field mask) into one
// archive writer, and serves /metrics, /healthz and /readyz. It reloads
// filters and masks without losing or repeating a flow, recovers from archive
// I/O errors by reopening the archive and re-reading from the last committed
// checkpoint, and drains and commits on shutdown.
package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/internal/buildinfo"
	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/ingest"
	"github.com/flowaudit/flowaudit/pkg/pipeline"
	"github.com/flowaudit/flowaudit/pkg/ship"
)

// Options are what the daemon needs besides its Config.
type Options struct {
	Log *zap.Logger
	// Level is the logger's level, changed by a reload (optional).
	Level *zap.AtomicLevel
	// Registry receives every metric; nil: a new registry.
	Registry *prometheus.Registry
	// Load re-reads the configuration for a reload (file, environment and
	// flags, validated); nil: reloads are refused.
	Load func() (Config, error)
	// Rotations are the exporter's rotation settings by file path (from
	// ciliumConfigDir), for the slack warning.
	Rotations map[string]Rotation
	// Now is the clock (tests).
	Now func() time.Time
}

// Daemon is a running `flowaudit run`.
type Daemon struct {
	opts    Options
	log     *zap.Logger
	reg     *prometheus.Registry
	rec     *recorder // registers into reg, remembering what (docs/metrics.md)
	m       *metrics
	pm      *pipeline.Metrics
	signKey ed25519.PrivateKey
	pubKey  ed25519.PublicKey

	mu      sync.Mutex // guards cfg and reload
	cfg     Config
	sources []*source

	sink     atomic.Pointer[archiveSink] // the current session's archive
	degraded atomic.Bool
	// shipper ships the archive (archive.upload; nil: off); shipOK is when
	// a pass last found nothing left to ship (ns), shipStart when shipping
	// started.
	shipper     atomic.Pointer[ship.Shipper]
	shipMetrics *ship.Metrics
	shipOK      atomic.Int64
	shipStart   atomic.Int64
	running     atomic.Bool
	listener    net.Listener
	debugLn     net.Listener // DebugListen's
	// standby is set while the archive root's writer lock is held by
	// another process (the collector this one replaces in an upgrade):
	// nothing is read until it is released. opened is closed when a
	// session first has the archive.
	standby    atomic.Pointer[archive.LockedError]
	opened     chan struct{}
	openedOnce sync.Once
}

// source is one configured input, stable across archive sessions and reloads.
type source struct {
	cfg      SourceConfig
	in       ingest.Source
	compiled atomic.Pointer[pipeline.Compiled]
	pipe     atomic.Pointer[pipeline.Pipeline]
	up       atomic.Bool
	readB    atomic.Int64 // bytes handed to the pipeline
	upGauge  prometheus.Gauge
	rotation Rotation
	// dirMissing: a file source's directory did not exist at the last
	// look (filedir.go); dirGauge says so.
	dirMissing atomic.Bool
	dirGauge   prometheus.Gauge
	upMu       sync.Mutex // publishUp
}

// key identifies a source across reloads.
func (s SourceConfig) key() string {
	switch {
	case s.File != "":
		return "file:" + s.File
	case s.Synthetic != nil:
		return "synthetic:" + s.Name
	default:
		return "address:" + s.Address
	}
}

// New validates cfg, compiles every source and prepares the daemon; nothing
// is read or written until Run.
func New(cfg Config, o Options) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	d := &Daemon{opts: o, log: o.Log, reg: o.Registry, rec: &recorder{reg: o.Registry}, cfg: cfg, opened: make(chan struct{})}
	var err error
	if cfg.Archive.SigningKeyFile != "" {
		if d.signKey, err = LoadSigningKey(cfg.Archive.SigningKeyFile); err != nil {
			return nil, fmt.Errorf("archive.signingKeyFile: %w", err)
		}
	}
	if cfg.Verify.PublicKeyFile != "" {
		if d.pubKey, err = LoadPublicKey(cfg.Verify.PublicKeyFile); err != nil {
			return nil, fmt.Errorf("verify.publicKeyFile: %w", err)
		}
	} else if d.signKey != nil {
		d.pubKey = d.signKey.Public().(ed25519.PublicKey)
	}
	d.m = newMetrics(d.rec, d)
	d.pm = pipeline.NewMetrics(d.rec)
	d.shipMetrics = ship.NewMetrics(d.rec)
	im := ingest.NewMetrics(d.rec)
	var errs []error
	for i, sc := range cfg.Sources {
		c, err := pipeline.Compile(sc.Spec())
		if err != nil {
			errs = append(errs, fmt.Errorf("sources[%d]: %w", i, err))
			continue
		}
		rot, known := o.Rotations[sc.File]
		if sc.MaxBackups != nil {
			rot.MaxBackups, known = *sc.MaxBackups, true
		}
		in, err := newInput(sc, cfg, commitEvery(rot, known), d.log, im)
		if err != nil {
			errs = append(errs, fmt.Errorf("sources[%d]: %w", i, err))
			continue
		}
		s := &source{cfg: sc, in: in, rotation: o.Rotations[sc.File]}
		s.compiled.Store(c)
		s.upGauge = d.m.sourceUp.WithLabelValues(in.ID())
		if sc.File != "" {
			s.dirGauge = d.m.fileDirMissing.WithLabelValues(in.ID())
		}
		d.sources = append(d.sources, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

// Registry returns the registry the daemon's metrics are in.
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// Addr returns the HTTP listener's address once Run has started it.
func (d *Daemon) Addr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listener == nil {
		return nil
	}
	return d.listener.Addr()
}

// DebugAddr returns the profiler's listener address once Run has started
// it (nil: DebugListen is off).
func (d *Daemon) DebugAddr() net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.debugLn == nil {
		return nil
	}
	return d.debugLn.Addr()
}

// configHash identifies the filters and masks of every source.
func (d *Daemon) configHash() string {
	h := sha256.New()
	for _, s := range d.sources {
		fmt.Fprintf(h, "%s=%s\n", s.in.ID(), s.compiled.Load().Hash)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Run runs until ctx is done, then drains: sources stop reading, every batch
// read is written, the open files are committed with their checkpoints. It
// returns nil after a clean drain. Archive errors (disk full, I/O) do not end
// Run: the archive is reopened with backoff and the sources resume at the
// last committed checkpoint.
func (d *Daemon) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("daemon: already running")
	}
	defer d.running.Store(false)
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()

	var bg sync.WaitGroup
	defer bg.Wait()
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()

	d.checkFileDirs(true) // before /readyz answers
	bg.Add(1)
	go func() { defer bg.Done(); d.fileDirLoop(bgCtx) }()

	if cfg.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen, err)
		}
		d.mu.Lock()
		d.listener = ln
		d.mu.Unlock()
		srv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: 5 * time.Second}
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("http server stopped", zap.Error(err))
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		d.log.Info("listening", zap.String("address", ln.Addr().String()))
	}
	if cfg.DebugListen != "" {
		ln, err := net.Listen("tcp", cfg.DebugListen)
		if err != nil {
			return fmt.Errorf("debug listen %s: %w", cfg.DebugListen, err)
		}
		d.mu.Lock()
		d.debugLn = ln
		d.mu.Unlock()
		srv := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 5 * time.Second}
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("profiler's http server stopped", zap.Error(err))
			}
		}()
		defer func() { _ = srv.Close() }() // a 30 s CPU profile does not hold up the shutdown
		d.log.Info("serving Go's profiler (net/http/pprof)", zap.String("address", ln.Addr().String()))
	}
	if cfg.Verify.Interval > 0 {
		bg.Add(1)
		go func() { defer bg.Done(); d.verifyLoop(bgCtx, time.Duration(cfg.Verify.Interval)) }()
	}
	bg.Add(1)
	go func() { defer bg.Done(); d.slackCheck(ctx) }()
	shipper, err := d.newShipper(ctx, cfg)
	if err != nil {
		return err
	}
	if shipper != nil {
		d.shipStart.Store(d.opts.Now().UnixNano())
		d.shipper.Store(shipper)
		bg.Add(1)
		go func() { defer bg.Done(); d.shipLoop(bgCtx, shipper, time.Duration(cfg.Archive.Upload.Every)) }()
	}
	bg.Add(1)
	go func() { defer bg.Done(); d.retentionLoop(bgCtx) }()

	backoff := time.Second
	for {
		err := d.session(ctx, cfg)
		if ctx.Err() != nil {
			return err
		}
		d.degraded.Store(true)
		d.m.restarts.Inc()
		d.log.Error("archive session failed; reopening the archive and resuming from the last committed checkpoint",
			zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// pipelineConfig is a source's pipeline configuration for cfg: without a
// queue (queue.maxBytes 0) the source writes its batches itself.
func pipelineConfig(cfg *Config, now func() time.Time) pipeline.Config {
	return pipeline.Config{
		Node:       cfg.NodeName(),
		Heartbeat:  time.Duration(cfg.Archive.StatsInterval),
		Inline:     cfg.Queue.MaxBytes == 0,
		QueueBytes: int64(cfg.Queue.MaxBytes),
		Now:        now,
	}
}

// archiveConfig is the archive writer's configuration for c (without the
// configuration hash and the signing key, which are the daemon's).
func archiveConfig(c ArchiveConfig) archive.Config {
	acfg := archive.DefaultConfig()
	acfg.Root = c.Dir
	acfg.MaxFileBytes = int64(c.MaxFileBytes)
	acfg.MaxFileRows = c.MaxFileRows
	acfg.MaxFileAge = time.Duration(c.MaxFileAge)
	acfg.CollectorVersion = buildinfo.Version
	// With the row log, commits fsync the log and files are cut by age or
	// size, written once at the better level (compaction leaves them).
	// Without it every commit is a file, written at zstd's default level
	// when compaction will rewrite it at the better one.
	acfg.Log = c.RowLog
	acfg.ProvisionalPages = c.Compaction && !c.RowLog
	return acfg
}

// session opens the archive and runs every source until ctx is done (drain
// and commit: returns the commit's error) or one fails (abort: returns why).
func (d *Daemon) session(ctx context.Context, cfg Config) error {
	acfg := archiveConfig(cfg.Archive)
	acfg.ConfigHash = d.configHash()
	acfg.SigningKey = d.signKey
	// Beside the collector it replaces (an upgrade with maxSurge), the
	// daemon waits for that one to commit and release the root, then
	// resumes from what it committed.
	w, err := archive.OpenWait(ctx, acfg, d.log, d.rec, func(e *archive.LockedError) { d.standby.Store(e) })
	d.standby.Store(nil)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			d.log.Info("stopped while waiting for the archive's writer lock: nothing was read")
			return nil
		}
		return err
	}
	sink := &archiveSink{w: w, d: d}
	d.sink.Store(sink)
	defer d.sink.Store(nil)
	d.openedOnce.Do(func() { close(d.opened) })
	checkpoints := w.Checkpoints()

	sessCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		s   *source
		err error
	}
	results := make(chan result, len(d.sources))
	for _, s := range d.sources {
		p := pipeline.New(pipelineConfig(&cfg, d.opts.Now), &countingInput{s: s, log: d.log}, s.compiled.Load(), sink, d.log, d.pm)
		s.pipe.Store(p)
		from := checkpoints[s.in.ID()]
		d.log.Info("source started", zap.String("source", s.in.ID()), zap.String("name", s.cfg.Label()), zap.String("checkpoint", from.Position))
		go func() { results <- result{s, p.Run(sessCtx, from)} }()
	}

	var failure error
	pending := len(d.sources)
	for pending > 0 && failure == nil && ctx.Err() == nil {
		select {
		case r := <-results:
			pending--
			if r.err != nil {
				failure = fmt.Errorf("source %s: %w", r.s.in.ID(), r.err)
			} else if ctx.Err() == nil {
				failure = fmt.Errorf("source %s: stopped", r.s.in.ID())
			}
		case <-ctx.Done():
		}
	}
	cancel()
	drain := time.NewTimer(time.Duration(cfg.Shutdown.DrainTimeout))
	defer drain.Stop()
	start := d.opts.Now()
	for pending > 0 {
		select {
		case r := <-results:
			pending--
			if r.err != nil && failure == nil && ctx.Err() == nil {
				failure = fmt.Errorf("source %s: %w", r.s.in.ID(), r.err)
			}
		case <-drain.C:
			d.log.Error("drain timeout: committing what was handed over; the rest is re-read on restart",
				zap.Duration("timeout", time.Duration(cfg.Shutdown.DrainTimeout)), zap.Int("sources_still_draining", pending))
			pending = 0
		}
	}
	if failure != nil {
		// Nothing written since the last commit may become visible: the
		// sources re-read it from the committed checkpoint.
		if err := sink.abort(); err != nil {
			d.log.Error("archive abort", zap.Error(err))
		}
		return failure
	}
	if err := sink.close(); err != nil {
		_ = sink.abort()
		return fmt.Errorf("archive: final commit: %w", err)
	}
	d.log.Info("drained and committed", zap.Duration("drain", d.opts.Now().Sub(start)))
	return nil
}

// Reload re-reads the configuration and swaps every source's filter and mask
// at its next batch boundary (no flow is lost or handled twice; a batch is
// handled entirely by the old or the new configuration). A configuration
// that does not validate is rejected and the old one kept. Changes that need
// a restart (sources added or removed, archive, listen address, node) are
// reported and not applied.
func (d *Daemon) Reload() error {
	err := d.reload()
	if err != nil {
		d.m.reloads.WithLabelValues("failure").Inc()
		d.m.lastReloadOK.Set(0)
		d.log.Error("configuration reload rejected; the running configuration is kept", zap.Error(err))
		return err
	}
	d.m.reloads.WithLabelValues("success").Inc()
	d.m.lastReloadOK.Set(1)
	return nil
}

func (d *Daemon) reload() error {
	if d.opts.Load == nil {
		return errors.New("reload: no configuration source")
	}
	next, err := d.opts.Load()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.cfg
	var restart []string
	if next.Archive != cur.Archive {
		restart = append(restart, "archive")
	}
	if next.Listen != cur.Listen || next.DebugListen != cur.DebugListen {
		restart = append(restart, "listen")
	}
	if next.NodeName() != cur.NodeName() {
		restart = append(restart, "node/cluster")
	}
	if next.Queue != cur.Queue || next.Shutdown != cur.Shutdown || next.Verify != cur.Verify {
		restart = append(restart, "queue/shutdown/verify")
	}
	byKey := map[string]*source{}
	for _, s := range d.sources {
		byKey[s.cfg.key()] = s
	}
	type swap struct {
		s *source
		c *pipeline.Compiled
	}
	var swaps []swap
	var errs []error
	seen := map[string]bool{}
	for i, sc := range next.Sources {
		seen[sc.key()] = true
		s := byKey[sc.key()]
		if s == nil {
			restart = append(restart, fmt.Sprintf("sources[%d] %s added", i, sc.Label()))
			continue
		}
		c, err := pipeline.Compile(sc.Spec())
		if err != nil {
			errs = append(errs, fmt.Errorf("sources[%d]: %w", i, err))
			continue
		}
		switch {
		case sc.PushDown != s.cfg.PushDown:
			restart = append(restart, fmt.Sprintf("sources[%d] %s pushDown changed", i, sc.Label()))
		case c.Hash != s.compiled.Load().Hash && sc.PushDown:
			// The server filters with what the stream was opened with:
			// swapping only the pipeline's filter would archive nothing
			// of what the old one let the server drop.
			restart = append(restart, fmt.Sprintf("sources[%d] %s filter or mask changed (pushed down to the server)", i, sc.Label()))
		case c.Hash != s.compiled.Load().Hash:
			swaps = append(swaps, swap{s, c})
		}
	}
	for k, s := range byKey {
		if !seen[k] {
			restart = append(restart, fmt.Sprintf("source %s removed", s.cfg.Label()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if d.opts.Level != nil {
		if lvl, err := zap.ParseAtomicLevel(next.Log.Level); err == nil {
			d.opts.Level.SetLevel(lvl.Level())
		}
	}
	for _, sw := range swaps {
		sw.s.compiled.Store(sw.c)
		sw.s.cfg.Allowlist, sw.s.cfg.Denylist, sw.s.cfg.FieldMask = sw.c.Spec.Allowlist, sw.c.Spec.Denylist, strings.Join(sw.c.Spec.FieldMask, ",")
		if p := sw.s.pipe.Load(); p != nil {
			p.Swap(sw.c)
		}
	}
	if len(swaps) > 0 {
		// Files committed from now on carry the new configuration hash.
		if sink := d.sink.Load(); sink != nil {
			if err := sink.reconfigure(d.configHash()); err != nil {
				d.log.Warn("commit before the configuration change failed; the archive will retry", zap.Error(err))
			}
		}
	}
	d.cfg.Log.Level = next.Log.Level
	d.cfg.Readiness = next.Readiness
	slices.Sort(restart)
	if len(restart) > 0 {
		d.m.restartRequired.Set(1)
		d.log.Warn("configuration changes that need a restart were not applied", zap.Strings("changes", restart))
	}
	d.log.Info("configuration reloaded", zap.Int("filters_swapped", len(swaps)), zap.String("config_hash", d.configHash()))
	return nil
}

// archiveSink is the pipelines' sink: the one archive writer (which takes
// its own lock per batch, never per flow), recording the archive's health
// and the time of its commits.
type archiveSink struct {
	w *archive.Writer
	d *Daemon
}

func (s *archiveSink) Write(b *flow.Batch) error {
	seq := s.w.Commits()
	if err := s.w.Write(b); err != nil {
		if !errors.Is(err, archive.ErrClosed) {
			s.d.degraded.Store(true)
		}
		return err
	}
	s.d.degraded.Store(false)
	s.observeCommit(seq)
	return nil
}

// observeCommit updates the last-commit gauge when the writer committed
// (cut its files or fsynced its row log) since its commit count was seq.
func (s *archiveSink) observeCommit(seq uint64) {
	if s.w.Commits() != seq {
		s.d.m.lastCommit.Set(float64(s.d.opts.Now().UnixNano()) / 1e9)
	}
}

// reconfigure commits what is open, so that files committed from now on
// carry hash.
func (s *archiveSink) reconfigure(hash string) error {
	seq := s.w.Commits()
	err := s.w.Reconfigure(hash)
	if errors.Is(err, archive.ErrClosed) {
		return nil // the next session opens with the current hash
	}
	s.observeCommit(seq)
	return err
}

func (s *archiveSink) close() error {
	seq := s.w.Commits()
	err := s.w.Close()
	s.observeCommit(seq)
	return err
}

func (s *archiveSink) abort() error { return s.w.Abort() }

// countingInput wraps a source to report whether it runs and what it read
// (and, once per session, when it first read: where a restart or an
// upgrade's hand-over resumed).
type countingInput struct {
	s   *source
	log *zap.Logger
}

func (c *countingInput) ID() string { return c.s.in.ID() }

func (c *countingInput) Run(ctx context.Context, from flow.Checkpoint, emit func(*ingest.LineBatch) error) error {
	c.s.up.Store(true)
	c.s.publishUp()
	defer func() { c.s.up.Store(false); c.s.publishUp() }()
	first := true
	return c.s.in.Run(ctx, from, func(lb *ingest.LineBatch) error {
		var n int64
		for _, l := range lb.Lines {
			n += int64(len(l)) + 1
		}
		c.s.readB.Add(n)
		if first && len(lb.Lines) > 0 {
			first = false
			c.log.Info("source resumed: first lines read", zap.String("source", c.s.in.ID()), zap.String("checkpoint", from.Position), zap.Int("lines", len(lb.Lines)))
		}
		return emit(lb)
	})
}
