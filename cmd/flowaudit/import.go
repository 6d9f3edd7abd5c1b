package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

Import is exactly once by content: a file is known by its bytes, not its name.
Its checkpoint, committed with the Parquet files, holds the SHA-256 of all the
content archived so far, so the same bytes given again (a copy, the .gz of a
backup, a symlink, overlapping globs, in the same run or a later one) add
nothing, a file that has grown since is read on from where the last import
stopped, an earlier, shorter copy of an archived file adds nothing, and two
different files never share a checkpoint. A last line without its newline (a
file still being written, or cut) is not imported: it is read whole from a
longer copy later. An interrupted import resumes where it stopped. Files of a
directory are read oldest first (lumberjack's backup timestamps, the live
events.log last; a plain backup before its .gz).

A file that cannot be read to its end (a truncated or corrupt .gz, a read
error, a file that vanished) is read up to the damage, and the damage is
recorded in the archive as a loss (damaged_input, with the file, line and
content byte) once, at the time and node of its last line read (or of the
file before it in its directory; with neither, only the summary has it); the
import goes on with the next file. A .gz cut short
beside its plain twin (lumberjack still compressing it) is not damage: its
lines are all in the twin.

At the end import prints a summary: files read, new and continued, already
archived (and from which file), lines, flows archived and denied, the files
damaged and where, incomplete last lines. Exit status: 3 when some file was
damaged or could not be checked (a file shorter than an archived one with the
same first line, whose file is gone: skipped, not imported twice), 1 on any
other error, else 0 (an incomplete last line is not damage: it waits for a
longer copy).`,
		Example: `  flowaudit import --archive /var/lib/flowaudit /var/run/cilium/hubble/
  flowaudit import --archive ./archive --fieldmask time,source,destination,verdict,l4,IP 'backup/events-*.log.gz'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImport(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.archive, "archive", "", "archive root directory (required; not inside another archive root)")
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
				if !strings.HasSuffix(n, ".log") && !strings.HasSuffix(n, ".log.gz") {
					continue
				}
				if e.Type()&fs.ModeSymlink != 0 { // a link to a file is read (its content is read once)
					if st, err := os.Stat(filepath.Join(p, n)); err != nil || !st.Mode().IsRegular() {
						continue
					}
				} else if !e.Type().IsRegular() {
					continue
				}
				files = append(files, filepath.Join(p, n))
			}
			sortLogFiles(files)
			for _, f := range files {
				add(f)
			}
		}
	}
	return plainFirst(out), nil
}

// plainFirst puts a plain file before its lumberjack .gz twin: while
// lumberjack is compressing a backup both exist, the .gz cut short; read
// first, the plain one has every line, and the .gz is then seen to hold
// nothing else.
func plainFirst(files []string) []string {
	given := make(map[string]bool, len(files))
	for _, f := range files {
		given[f] = true
	}
	out := make([]string, 0, len(files))
	done := make(map[string]bool, len(files))
	for _, f := range files {
		if plain, ok := strings.CutSuffix(f, ".gz"); ok && given[plain] && !done[plain] {
			out = append(out, plain)
			done[plain] = true
		}
		if !done[f] {
			out = append(out, f)
			done[f] = true
		}
	}
	return out
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

// exitDamaged is the exit status of an import or filter that went through
// all its input but could not read some of it whole (a damaged file), or
// could not tell whether a file was archived (import: unverified).
const exitDamaged = 3

func runImport(cmd *cobra.Command, o importOpts, args []string) error {
	switch o.progress {
	case "auto", "always", "never":
	default:
		return fmt.Errorf("--progress %q: want auto, always or never", o.progress)
	}
	if outer, ok := enclosingArchive(o.archive); ok {
		return fmt.Errorf("--archive %s lies inside the archive root %s (it has flows/ and manifests/): give a directory of its own", o.archive, outer)
	}
	files, err := expandImportPaths(args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("import: no events.log files (*.log, *.log.gz) in %s: nothing to import", strings.Join(args, " "))
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
	reg := ingest.NewImportRegistry(w.Checkpoints(), imet)
	sink := &countingSink{w: w}
	// The node and last minute of each directory's files, for a damage
	// found before a file's first line.
	type dirLast struct {
		node string
		t    time.Time
	}
	last := map[string]dirLast{}
	sum := importSummary{files: len(files)}
	var runErr error
	for _, f := range files {
		src := reg.Prepare(f)
		dir := filepath.Dir(f)
		src.SetLossFallback(last[dir].node, last[dir].t)
		if src.Reads() {
			sink.node = ""
			p := pipeline.New(pipeline.Config{Status: "imported", Node: last[dir].node}, progressSource{Source: src, bytes: &done}, compiled, sink, log, pmet)
			if err := p.Run(ctx, src.From()); err != nil {
				runErr = err
				break
			}
			if sink.node != "" {
				last[dir] = dirLast{sink.node, time.Unix(sink.minute, 0).UTC()}
			}
		} else {
			src.Close()
			if st, err := os.Stat(f); err == nil {
				done.Add(st.Size()) // nothing to read in it
			}
		}
		reg.Done(src)
		sum.add(src.Result())
		if ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
	}
	stopProgress()
	if err := w.Close(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	sum.counts = sink.counts
	sum.print(cmd.OutOrStdout(), o.archive)
	if runErr != nil {
		fmt.Fprintln(cmd.OutOrStdout(), "  stopped by the error below: the numbers above are what was read and handed to the archive; what it did not commit is read again by the next import")
		return fmt.Errorf("import: %w", runErr)
	}
	if n := len(sum.damaged) + len(sum.unverified); n > 0 {
		return &exitError{code: exitDamaged, err: fmt.Errorf("import: of %d input files, %d damaged and %d not checked (see the summary); everything else was imported", len(files), len(sum.damaged), len(sum.unverified))}
	}
	return nil
}

// enclosingArchive returns the archive root (a directory with flows/ and
// manifests/) that root would lie inside, if any.
func enclosingArchive(root string) (string, bool) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", false
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if isDir(filepath.Join(d, "flows")) && isDir(filepath.Join(d, "manifests")) {
			return d, true
		}
		if d == filepath.Dir(d) {
			return "", false
		}
	}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// countingSink passes batches to the archive and adds up their counts
// (per batch, not per flow), for the summary.
type countingSink struct {
	w      *archive.Writer
	counts flow.Counts
	node   string // the node of the last stats row written
	minute int64
}

func (c *countingSink) Write(b *flow.Batch) error {
	if err := c.w.Write(b); err != nil {
		return err
	}
	for i := range b.Stats { // b is the caller's until Write returns
		st := &b.Stats[i]
		c.counts.Add(st.Counts)
		if st.Node != "" && st.Node != c.node {
			c.node = strings.Clone(st.Node)
		}
		c.minute = st.Minute
	}
	return nil
}

// importSummary is what an import prints when it ends.
type importSummary struct {
	files                  int
	lines                  int64
	read, fresh, continued int
	archived, empty        []ingest.ImportResult
	partial                []ingest.ImportResult
	damaged, unverified    []ingest.ImportResult
	incompleteCopies       []ingest.ImportResult
	counts                 flow.Counts
}

func (s *importSummary) add(r ingest.ImportResult) {
	s.lines += r.Lines
	switch r.Outcome {
	case ingest.OutcomeNew:
		s.read++
		s.fresh++
	case ingest.OutcomeContinued:
		s.read++
		s.continued++
	case ingest.OutcomeArchived:
		s.archived = append(s.archived, r)
	case ingest.OutcomeUnverified:
		s.unverified = append(s.unverified, r)
	case ingest.OutcomeEmpty:
		s.empty = append(s.empty, r)
	}
	switch {
	case r.IncompleteCopy:
		s.incompleteCopies = append(s.incompleteCopies, r)
	case r.Damage != nil:
		s.damaged = append(s.damaged, r)
	case r.Partial > 0:
		s.partial = append(s.partial, r)
	}
}

// summaryListed is how many files each part of the summary names.
const summaryListed = 10

func (s *importSummary) print(w io.Writer, root string) {
	fmt.Fprintf(w, "import into %s: %d files: %d read (%d new, %d continued), %d already archived, %d without a complete line, %d unverified; %d damaged\n",
		root, s.files, s.read, s.fresh, s.continued, len(s.archived), len(s.empty), len(s.unverified), len(s.damaged))
	c := s.counts
	fmt.Fprintf(w, "  lines read %d: flows %d (archived %d, denied by the filter %d), other events %d, decode errors %d\n",
		s.lines, c.Seen, c.Kept, c.Denied, c.NonFlow, c.DecodeErrors)
	list := func(title string, rs []ingest.ImportResult, line func(ingest.ImportResult) string) {
		if len(rs) == 0 {
			return
		}
		fmt.Fprintf(w, "  %s: %d\n", title, len(rs))
		for i, r := range rs {
			if i == summaryListed {
				fmt.Fprintf(w, "    ... and %d more\n", len(rs)-i)
				break
			}
			fmt.Fprintf(w, "    %s: %s\n", r.Path, line(r))
		}
	}
	list("damaged (read up to the damage)", s.damaged, func(r ingest.ImportResult) string {
		d := r.Damage
		switch {
		case d.Earlier:
			return d.String() + "; recorded as a loss by an earlier import"
		case d.Recorded:
			return d.String() + "; recorded as a loss (" + flow.LossDamagedInput + ")"
		}
		return d.String() + "; not recorded in the archive: no node is known for it (no line of it, nor of its directory, was read)"
	})
	list("unverified (not imported)", s.unverified, func(r ingest.ImportResult) string {
		return "starts with the first line of " + r.Of + ", archived further than this file goes, but that file can no longer be read to compare: a copy of it, or a different file (give a copy of it to the same import to compare)"
	})
	list("already archived", s.archived, func(r ingest.ImportResult) string {
		switch {
		case r.InRun && r.Of == r.Path:
			return "read above, given as " + strings.TrimSuffix(r.Path, ".gz") + ", which lumberjack compressed meanwhile"
		case r.InRun:
			return "the same lines as " + r.Of + ", read above"
		case r.Of != "" && r.Of != r.Path:
			return "archived before, from " + r.Of
		}
		return "archived before"
	})
	list("incomplete compressed copies (lumberjack still compressing; nothing lost)", s.incompleteCopies, func(r ingest.ImportResult) string {
		return r.Damage.String() + "; its lines are all in " + r.Of
	})
	list("incomplete last line (left for a later import of a longer copy)", s.partial, func(r ingest.ImportResult) string {
		return fmt.Sprintf("%d bytes of line %d, no newline yet", r.Partial, r.PartialLine)
	})
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
