package archive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// compactSettle is how long after its end a UTC day is left alone before
// its files are compacted: batches a node catches up with after downtime
// still land in it.
const compactSettle = 2 * time.Hour

// ReplacedFile is a file a compaction merged into its output and then
// deleted, as its manifest entry records it.
type ReplacedFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
	Rows   int64  `json:"rows"`
}

// CompactResult is what one Compact did.
type CompactResult struct {
	Partitions int   // (table, date, node) partitions that got a compacted file
	Inputs     int   // files merged (and deleted)
	Outputs    int   // files written
	Rows       int64 // rows in the files written
}

// Compact merges the small files of closed days (days that ended more than
// two hours before now), per table, date and node, into files of up to the
// writer's MaxFileRows and MaxFileBytes, in the order of their time. Files
// of different collector versions or configurations are not merged.
//
// Every input is checked against its manifest entry (size and SHA-256)
// before it is read, so a modified file is never laundered into a new hash;
// the output must have exactly the inputs' rows. The output is committed
// like any other file, then a "compaction" entry in the node's chain names
// it and the files it replaces (path, SHA-256, bytes, rows), and only then
// are the inputs deleted. After a crash, the writer's recovery finishes the
// last group, and the next Compact deletes inputs a compaction entry names
// that are still there; until then scanners skip them, and verify counts
// them as compacted, not missing.
func (w *Writer) Compact(now time.Time) (CompactResult, error) {
	return w.CompactEach(context.Background(), now)
}

// CompactEach is Compact for a writer that other goroutines write to: it
// holds the writer's lock for each piece of work that touches the writer
// (finding the closed days' partitions; starting and committing each run)
// and reads manifests and the files of a run without it, so that a
// daemon's batches keep being written while a day is compacted (hours on a
// busy node, while the exporter's rotation deletes what the sources could
// not read) and wait at most for one commit. Cancelling ctx stops the run
// being merged (its output is discarded); a writer closed meanwhile stops
// it with ErrClosed.
func (w *Writer) CompactEach(ctx context.Context, now time.Time) (CompactResult, error) {
	return w.compactEach(ctx, now, w.locked)
}

// compactEach is CompactEach with the function that takes the writer's
// lock given (tests interleave batches between two of its calls).
func (w *Writer) compactEach(ctx context.Context, now time.Time, lock func(func() error) error) (res CompactResult, err error) {
	interrupted := false // by ctx or a closed writer: not a failure
	defer func() {
		if err != nil && !interrupted && ctx.Err() == nil {
			w.m.writeErrors.WithLabelValues("compaction").Inc()
		}
	}()
	locked := func(fn func() error) error {
		err := lock(fn)
		if errors.Is(err, ErrClosed) {
			interrupted = true
		}
		return err
	}
	var keys []partKey
	err = locked(func() error {
		if w.pending != nil {
			if err := w.apply(w.pending); err != nil {
				return err
			}
			w.pending = nil
		}
		for _, table := range tables {
			dates, err := dateDirs(filepath.Join(w.cfg.Root, table))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("archive: compact: %w", err)
			}
			for _, d := range dates {
				if d.day.Add(24*time.Hour + compactSettle).After(now) {
					continue
				}
				_, nodes, err := nodeDirs(filepath.Join(w.cfg.Root, table, d.name))
				if err != nil {
					return fmt.Errorf("archive: compact: %w", err)
				}
				for _, part := range nodes {
					key := partKey{table: table, date: d.date, node: part}
					if _, open := w.files[key]; !open { // else a backfill is writing into it right now
						keys = append(keys, key)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	type job struct {
		key partKey
		run []ManifestEntry
	}
	var jobs []job
	for _, key := range keys {
		// A closed day's manifest and files: read without the lock (a busy
		// node's day has a flows and a stats entry per commit, a commit
		// every other rotation: hundreds of thousands).
		runs, err := w.compactRuns(key)
		if err != nil {
			return res, err
		}
		for _, r := range runs {
			jobs = append(jobs, job{key, r})
		}
	}
	parts := map[partKey]bool{}
	for _, j := range jobs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var tmpSeq uint64
		skip := false
		if err := locked(func() error {
			_, skip = w.files[j.key] // a backfill started writing into it: next time
			tmpSeq = w.seq + 1
			return nil
		}); err != nil {
			return res, err
		}
		if skip {
			continue
		}
		// Reading the inputs and writing the output, the bulk of the work
		// (seconds per million rows), needs no lock: they are committed
		// files and a temporary one no one else knows of.
		m, err := w.mergeRun(ctx, j.key, j.run, tmpSeq)
		if err != nil {
			return res, err
		}
		tried := false
		err = locked(func() error {
			tried = true
			before := res.Outputs
			if err := w.commitMerged(m, now, &res); err != nil {
				return err
			}
			if res.Outputs > before && !parts[j.key] {
				parts[j.key] = true
				res.Partitions++
			}
			return nil
		})
		if !tried {
			m.discard() // the writer closed meanwhile
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// compactRuns returns the runs of files of one (table, date, node)
// partition to merge: consecutive committed files of one configuration,
// within the file limits. It removes the inputs of a compaction whose
// deletions a crash interrupted.
func (w *Writer) compactRuns(key partKey) ([][]ManifestEntry, error) {
	node := UnsanitizeNode(key.node)
	entries, err := readManifest(manifestPath(w.cfg.Root, node, key.date))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing committed here
	}
	if err != nil {
		return nil, err
	}
	dirRel := path.Join(key.table, "date="+key.date, "node="+key.node)
	committed := map[string]ManifestEntry{}
	replaced := map[string]bool{}
	for _, e := range entries {
		if path.Dir(e.Path) != dirRel {
			continue
		}
		switch e.Op {
		case "commit", "compaction":
			committed[e.Path] = e
		}
		for _, r := range e.Replaces {
			replaced[r.Path] = true
		}
	}
	names, err := os.ReadDir(filepath.Join(w.cfg.Root, filepath.FromSlash(dirRel)))
	if err != nil {
		return nil, fmt.Errorf("archive: compact: %w", err)
	}
	var inputs []ManifestEntry
	for _, n := range names {
		rel := path.Join(dirRel, n.Name())
		if replaced[rel] {
			// A compaction whose deletions a crash interrupted.
			if err := os.Remove(filepath.Join(w.cfg.Root, filepath.FromSlash(rel))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("archive: compact: %w", err)
			}
			continue
		}
		// Only committed files: anything else is verify's to report.
		if e, ok := committed[rel]; ok && strings.HasPrefix(n.Name(), "part-") {
			inputs = append(inputs, e)
		}
	}
	slices.SortFunc(inputs, func(a, b ManifestEntry) int { return strings.Compare(a.Path, b.Path) })
	maxRows := w.cfg.CompactMaxRows
	if maxRows <= 0 {
		maxRows = w.cfg.MaxFileRows
	}
	var runs [][]ManifestEntry
	var run []ManifestEntry
	var rows, size int64
	flush := func() {
		if len(run) >= 2 {
			runs = append(runs, run)
		}
		run, rows, size = nil, 0, 0
	}
	for _, e := range inputs {
		if w.cfg.Log && e.Op == "commit" && e.MaxTime.Sub(e.MinTime) >= w.cfg.MaxFileAge/2 {
			// A file a row log cut by age (or size) is as large as
			// readers need: merging it would only encode its rows again.
			flush()
			continue
		}
		if len(run) > 0 && (rows+e.Rows > int64(maxRows) || size+e.Bytes > w.cfg.MaxFileBytes ||
			e.CollectorVersion != run[0].CollectorVersion || e.ConfigHash != run[0].ConfigHash) {
			flush()
		}
		run = append(run, e)
		rows += e.Rows
		size += e.Bytes
	}
	flush()
	return runs, nil
}

// compactByRows makes compaction read every flows file through rows, as it
// does files of another schema (tests compare the two paths).
var compactByRows bool

// merged is a compaction's output, written and not yet committed.
type merged struct {
	of       *openFile
	run      []ManifestEntry
	replaces []ReplacedFile
}

// discard removes an output that will not be committed.
func (m *merged) discard() {
	_ = m.of.f.Close()
	_ = os.Remove(m.of.tmp)
}

// mergeRun checks run's files against their manifest entries and writes
// their rows into a new temporary file of the partition. It uses none of
// the writer's mutable state (tmpSeq only names the file), so CompactEach
// runs it while the writer takes batches.
func (w *Writer) mergeRun(ctx context.Context, key partKey, run []ManifestEntry, tmpSeq uint64) (_ *merged, err error) {
	for _, e := range run {
		if err := checkCommitted(w.cfg.Root, e); err != nil {
			return nil, fmt.Errorf("archive: compact: %w", err)
		}
	}
	of, err := w.createTmpSeq(key, tmpSeq)
	if err != nil {
		return nil, fmt.Errorf("archive: compact: %w", err)
	}
	m := &merged{of: of, run: run}
	defer func() {
		if err != nil {
			m.discard()
		}
	}()
	of.buf = bufio.NewWriterSize(of.hash, 1<<20)
	var want, got int64
	minT, maxT := run[0].MinTime, run[0].MaxTime
	m.replaces = make([]ReplacedFile, 0, len(run))
	for _, e := range run {
		want += e.Rows
		if e.MinTime.Before(minT) {
			minT = e.MinTime
		}
		if e.MaxTime.After(maxT) {
			maxT = e.MaxTime
		}
		m.replaces = append(m.replaces, ReplacedFile{Path: e.Path, SHA256: e.SHA256, Bytes: e.Bytes, Rows: e.Rows})
	}
	all := windowOf(time.Time{}, time.Time{}) // every row of the inputs
	var closeErr error
	if key.table == "flows" {
		if of.flows, err = newFlowWriter(of.buf, w.cfg.RowGroupRows, pagesBetter, fileMetadata(key, run[0].CollectorVersion, run[0].ConfigHash)); err != nil {
			return nil, fmt.Errorf("archive: compact: %w", err)
		}
		var buf []FlowRow
		cp := new(copier)
		for _, e := range run {
			p := filepath.Join(w.cfg.Root, filepath.FromSlash(e.Path))
			if !compactByRows {
				n, err := of.flows.copyFlowFile(ctx, p, cp)
				got += n
				if err == nil {
					continue
				}
				if !errors.Is(err, errNotCopyable) {
					return nil, fmt.Errorf("archive: compact: copy %s: %w", e.Path, err)
				}
			}
			// A file of another schema: through rows, by column name.
			if buf == nil {
				buf = make([]FlowRow, copyBatch)
			}
			err := scanFile(p, buf, "time", all, func(rows []FlowRow) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				got += int64(len(rows))
				if err := of.flows.Write(rows); err != nil {
					return fmt.Errorf("archive: write %s: %w", of.tmp, err)
				}
				clear(rows) // scanFile reads into the buffer again
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("archive: compact: read %s: %w", e.Path, err)
			}
		}
		closeErr = of.flows.Close()
	} else {
		opts := w.statsOptions(key, pagesBetter, run[0].CollectorVersion, run[0].ConfigHash)
		var err error
		if key.table == "losses" {
			got, err = copyRows[LossRow](ctx, w.cfg.Root, run, of.buf, opts, "detected")
		} else {
			got, err = copyRows[StatRow](ctx, w.cfg.Root, run, of.buf, opts, "minute")
		}
		if err != nil {
			return nil, err
		}
	}
	if closeErr != nil {
		return nil, fmt.Errorf("archive: compact: close %s: %w", of.tmp, closeErr)
	}
	if got != want {
		return nil, fmt.Errorf("archive: compact: %d rows read from %d files whose manifest entries say %d", got, len(run), want)
	}
	if err := of.buf.Flush(); err != nil {
		return nil, fmt.Errorf("archive: compact: write %s: %w", of.tmp, err)
	}
	of.rows, of.minT, of.maxT = got, minT.UnixMicro(), maxT.UnixMicro()
	return m, nil
}

// copyRows copies the rows of the run's files, in order, into a new
// Parquet file of rows T written to out (a table written by parquet-go's
// generic writer: stats, losses).
func copyRows[T any](ctx context.Context, root string, run []ManifestEntry, out io.Writer, opts []parquet.WriterOption, timeCol string) (got int64, err error) {
	pw := parquet.NewGenericWriter[T](out, opts...)
	buf := make([]T, 4096)
	all := windowOf(time.Time{}, time.Time{})
	for _, e := range run {
		err := scanFile(filepath.Join(root, filepath.FromSlash(e.Path)), buf, timeCol, all, func(rows []T) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			got += int64(len(rows))
			_, err := pw.Write(rows)
			return err
		})
		if err != nil {
			return got, fmt.Errorf("archive: compact: read %s: %w", e.Path, err)
		}
	}
	if err := pw.Close(); err != nil {
		return got, fmt.Errorf("archive: compact: close: %w", err)
	}
	return got, nil
}

// commitMerged commits a compaction's output: its commit record names the
// files it replaces, which are then deleted. Its inputs must still be there
// (retention may have deleted the day since mergeRun); if they are not, the
// output is discarded.
func (w *Writer) commitMerged(m *merged, now time.Time, res *CompactResult) (err error) {
	of, run := m.of, m.run
	recorded := false // from its commit record on, the file is recovery's
	defer func() {
		if !recorded {
			m.discard()
		}
	}()
	for _, e := range run {
		fi, err := os.Stat(filepath.Join(w.cfg.Root, filepath.FromSlash(e.Path)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile: nothing to replace
		}
		if err != nil {
			return fmt.Errorf("archive: compact: %w", err)
		}
		if fi.Size() != e.Bytes {
			return fmt.Errorf("archive: compact: %s: %d bytes, manifest says %d: not replacing a file that changed since it was committed (run flowaudit verify)", e.Path, fi.Size(), e.Bytes)
		}
	}
	rec := commitRecord{Seq: w.seq + 1, Time: now.UTC(), Checkpoints: w.committed}
	if err := w.finishFile(of, &rec); err != nil {
		return err
	}
	rec.Files[0].Op, rec.Files[0].Replaces = "compaction", m.replaces
	rec.Files[0].CollectorVersion, rec.Files[0].ConfigHash = run[0].CollectorVersion, run[0].ConfigHash
	if err := w.writeCommitRecord(&rec); err != nil {
		return err
	}
	recorded, w.seq = true, rec.Seq // the record is durable: its seq is taken
	if err := w.apply(&rec); err != nil {
		w.pending = &rec // the next Compact finishes it
		return err
	}
	w.pruneCommitRecords()
	res.Inputs += len(run)
	res.Outputs++
	res.Rows += of.rows
	w.m.compactedFiles.Add(float64(len(run)))
	return nil
}

// checkCommitted checks that a committed file still has its manifest
// entry's size and SHA-256.
func checkCommitted(root string, e ManifestEntry) error {
	f, err := os.Open(filepath.Join(root, filepath.FromSlash(e.Path)))
	if err != nil {
		return err
	}
	defer f.Close()
	n, sum, err := digest(f)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	if n != e.Bytes || sum != e.SHA256 {
		return fmt.Errorf("%s: %d bytes with sha256 %s, manifest says %d bytes with %s: not compacting a file that changed since it was committed (run flowaudit verify)", e.Path, n, short(sum), e.Bytes, short(e.SHA256))
	}
	return nil
}
