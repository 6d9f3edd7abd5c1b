package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/internal/buildinfo"
	"github.com/flowaudit/flowaudit/internal/daemon"
	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/ingest"
	"github.com/flowaudit/flowaudit/pkg/pipeline"
)

func init() { subcommands = append(subcommands, newImportCmd) }

type importOpts struct {
	archive    string
	allowlist  string
	denylist   string
	fieldmask  string
	progress   string
	signingKey string
}

func newImportCmd() *cobra.Command {
	var o importOpts
	cmd := &cobra.Command{
		Use:   "import PATH...",
		Short: "Backfill the archive from existing events.log files (plain or .gz)",
		Long: `import reads Hubble exporter output (events.log and its rotated backups, plain
or gzip-compressed; files, globs or directories) and writes it into the archive,
through the same filter and field mask as the daemon.

Import is idempotent: every file is identified by a fingerprint of its content,
and its checkpoint is committed with the Parquet files, so importing the same
file twice adds nothing, and an interrupted import resumes where it stopped.
Files of a directory are read oldest first (lumberjack's backup timestamps, the
live events.log last).`,
		Example: `  flowaudit import --archive /var/lib/flowaudit /var/run/cilium/hubble/
  flowaudit import --archive ./archive --fieldmask time,source,destination,verdict,l4,IP 'backup/events-*.log.gz'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImport(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.archive, "archive", "", "archive root directory (required)")
	f.StringVar(&o.allowlist, "allowlist", "", "hubble-export-allowlist syntax: keep only matching flows")
	f.StringVar(&o.denylist, "denylist", "", "hubble-export-denylist syntax: drop matching flows")
	f.StringVar(&o.fieldmask, "fieldmask", "", "hubble-export-fieldmask paths: archive only these fields (must keep time and node_name: the archive places every flow by them)")
	f.StringVar(&o.progress, "progress", "auto", "progress on stderr: auto (when stderr is a terminal), always, never")
	f.StringVar(&o.signingKey, "signing-key", "", "ed25519 private key file (PEM, or a raw/hex/base64 seed): sign the manifest entries, as the daemon's archive.signingKeyFile")
	_ = cmd.MarkFlagRequired("archive")
	return cmd
}

// expandImportPaths turns files, globs and directories into an ordered list of
// files: a directory contributes its events*.log[.gz] files, backups ordered by
// their lumberjack timestamp and live files last.
func expandImportPaths(args []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, a := range args {
		matches := []string{a}
		if strings.ContainsAny(a, "*?[") {
			m, err := filepath.Glob(a)
			if err != nil {
				return nil, fmt.Errorf("import: bad pattern %q: %w", a, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("import: %q matches no file", a)
			}
			matches = m
		}
		sortLogFiles(matches)
		for _, p := range matches {
			st, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			if !st.IsDir() {
				add(p)
				continue
			}
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("import: %w", err)
			}
			var files []string
			for _, e := range ents {
				n := e.Name()
				if e.Type().IsRegular() && (strings.HasSuffix(n, ".log") || strings.HasSuffix(n, ".log.gz")) {
					files = append(files, filepath.Join(p, n))
				}
			}
			sortLogFiles(files)
			for _, f := range files {
				add(f)
			}
		}
	}
	return out, nil
}

// sortLogFiles orders lumberjack files oldest first: "<prefix>-<UTC timestamp>.log[.gz]"
// backups sort by their timestamp, and a live file (no timestamp) comes after
// its own backups.
func sortLogFiles(files []string) {
	key := func(p string) (string, string) {
		base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(p), ".gz"), ".log")
		// backup: prefix-2006-01-02T15-04-05.000
		if len(base) > 24 && base[len(base)-24] == '-' {
			if _, err := time.Parse("2006-01-02T15-04-05.000", base[len(base)-23:]); err == nil {
				return filepath.Join(filepath.Dir(p), base[:len(base)-24]), base[len(base)-23:]
			}
		}
		return filepath.Join(filepath.Dir(p), base), "~" // live file: after every timestamp
	}
	sort.SliceStable(files, func(i, j int) bool {
		pi, ti := key(files[i])
		pj, tj := key(files[j])
		if pi != pj {
			return pi < pj
		}
		return ti < tj
	})
}

// progressSource counts the bytes a source emits, for the progress line.
type progressSource struct {
	ingest.Source
	bytes *atomic.Int64
}

func (p progressSource) Run(ctx context.Context, from flow.Checkpoint, emit func(*ingest.LineBatch) error) error {
	return p.Source.Run(ctx, from, func(lb *ingest.LineBatch) error {
		var n int
		for _, l := range lb.Lines {
			n += len(l) + 1
		}
		p.bytes.Add(int64(n))
		return emit(lb)
	})
}

func runImport(cmd *cobra.Command, o importOpts, args []string) error {
	files, err := expandImportPaths(args)
	if err != nil {
		return err
	}
	compiled, err := pipeline.Compile(pipeline.Spec{
		Allowlist: o.allowlist,
		Denylist:  o.denylist,
		FieldMask: fieldmask.ParsePaths(o.fieldmask),
	})
	if err != nil {
		return err
	}
	log := newCLILogger(cmd.ErrOrStderr())
	acfg := archive.DefaultConfig()
	acfg.Root = o.archive
	acfg.CollectorVersion = buildinfo.Version
	acfg.ConfigHash = compiled.Hash
	if o.signingKey != "" {
		if acfg.SigningKey, err = daemon.LoadSigningKey(o.signingKey); err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
	}
	w, err := archive.Open(acfg, log, nil)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var total int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			total += st.Size()
		}
	}
	var done atomic.Int64
	showProgress := o.progress == "always" || (o.progress == "auto" && isTerminal(cmd.ErrOrStderr()))
	stopProgress := startProgress(cmd.ErrOrStderr(), showProgress, &done, total)

	imet := ingest.NewMetrics(nil)
	pmet := pipeline.NewMetrics(nil)
	var runErr error
	for _, f := range files {
		src, err := ingest.NewImportSource(f, log, imet)
		if err != nil {
			runErr = err
			break
		}
		from := w.Checkpoints()[src.ID()]
		p := pipeline.New(pipeline.Config{Status: "imported"}, progressSource{Source: src, bytes: &done}, compiled, w, log, pmet)
		if err := p.Run(ctx, from); err != nil {
			runErr = err
			break
		}
		if ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
	}
	stopProgress()
	if err := w.Close(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	if runErr != nil {
		return fmt.Errorf("import: %w", runErr)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "imported %d file(s) into %s\n", len(files), o.archive)
	return nil
}

// startProgress prints a progress line on w every half second until the
// returned function is called.
func startProgress(w io.Writer, enabled bool, done *atomic.Int64, total int64) func() {
	if !enabled {
		return func() {}
	}
	stop := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	print := func() {
		d := done.Load()
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(d) / float64(total)
		}
		rate := float64(d) / time.Since(start).Seconds() / (1 << 20)
		fmt.Fprintf(w, "\rimport: %6.1f%%  %8.1f MiB  %6.1f MiB/s", pct, float64(d)/(1<<20), rate)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				print()
			case <-stop:
				print()
				fmt.Fprintln(w)
				return
			}
		}
	}()
	return func() { close(stop); <-finished }
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// newCLILogger is the logger of one-shot commands: warnings and errors, as
// readable console lines on stderr.
func newCLILogger(w io.Writer) *zap.Logger {
	cfg := zap.NewDevelopmentEncoderConfig()
	cfg.TimeKey = ""
	return zap.New(zapcoreNew(cfg, w))
}
