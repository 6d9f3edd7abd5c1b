package archive

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
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
func (w *Writer) Compact(now time.Time) (res CompactResult, err error) {
	defer func() {
		if err != nil {
			w.m.writeErrors.WithLabelValues("compaction").Inc()
		}
	}()
	if w.closed {
		return res, errors.New("archive: compact: writer is closed")
	}
	if w.pending != nil {
		if err := w.apply(w.pending); err != nil {
			return res, err
		}
		w.pending = nil
	}
	for _, table := range []string{"flows", "stats"} {
		dates, err := dateDirs(filepath.Join(w.cfg.Root, table))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("archive: compact: %w", err)
		}
		for _, d := range dates {
			if d.day.Add(24*time.Hour + compactSettle).After(now) {
				continue
			}
			_, nodes, err := nodeDirs(filepath.Join(w.cfg.Root, table, d.name))
			if err != nil {
				return res, fmt.Errorf("archive: compact: %w", err)
			}
			for _, part := range nodes {
				key := partKey{table: table, date: d.date, node: part}
				if _, open := w.files[key]; open {
					continue // a backfill is writing into it right now
				}
				if err := w.compactPartition(key, now, &res); err != nil {
					return res, err
				}
			}
		}
	}
	return res, nil
}

// compactPartition compacts one (table, date, node) partition.
func (w *Writer) compactPartition(key partKey, now time.Time, res *CompactResult) error {
	node := UnsanitizeNode(key.node)
	entries, err := readManifest(manifestPath(w.cfg.Root, node, key.date))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing committed here
	}
	if err != nil {
		return err
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
		return fmt.Errorf("archive: compact: %w", err)
	}
	var inputs []ManifestEntry
	for _, n := range names {
		rel := path.Join(dirRel, n.Name())
		if replaced[rel] {
			// A compaction whose deletions a crash interrupted.
			if err := os.Remove(filepath.Join(w.cfg.Root, filepath.FromSlash(rel))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("archive: compact: %w", err)
			}
			continue
		}
		// Only committed files: anything else is verify's to report.
		if e, ok := committed[rel]; ok && strings.HasPrefix(n.Name(), "part-") {
			inputs = append(inputs, e)
		}
	}
	slices.SortFunc(inputs, func(a, b ManifestEntry) int { return strings.Compare(a.Path, b.Path) })
	// Runs of consecutive files of one configuration, within the file limits.
	maxRows := w.cfg.CompactMaxRows
	if maxRows <= 0 {
		maxRows = w.cfg.MaxFileRows
	}
	var run []ManifestEntry
	var rows, size int64
	flush := func() error {
		defer func() { run, rows, size = nil, 0, 0 }()
		if len(run) < 2 {
			return nil
		}
		return w.compactRun(key, run, now, res)
	}
	for _, e := range inputs {
		if len(run) > 0 && (rows+e.Rows > int64(maxRows) || size+e.Bytes > w.cfg.MaxFileBytes ||
			e.CollectorVersion != run[0].CollectorVersion || e.ConfigHash != run[0].ConfigHash) {
			if err := flush(); err != nil {
				return err
			}
		}
		run = append(run, e)
		rows += e.Rows
		size += e.Bytes
	}
	return flush()
}

// compactRun merges run (files of one partition, in time order) into one
// file and commits it.
func (w *Writer) compactRun(key partKey, run []ManifestEntry, now time.Time, res *CompactResult) (err error) {
	for _, e := range run {
		if err := checkCommitted(w.cfg.Root, e); err != nil {
			return fmt.Errorf("archive: compact: %w", err)
		}
	}
	of, err := w.createTmp(key)
	if err != nil {
		return fmt.Errorf("archive: compact: %w", err)
	}
	recorded := false // from its commit record on, the file is recovery's
	defer func() {
		if err != nil && !recorded {
			_ = of.f.Close()
			_ = os.Remove(of.tmp)
		}
	}()
	of.buf = bufio.NewWriterSize(of.hash, 1<<20)
	var want, got int64
	minT, maxT := run[0].MinTime, run[0].MaxTime
	replaces := make([]ReplacedFile, 0, len(run))
	for _, e := range run {
		want += e.Rows
		if e.MinTime.Before(minT) {
			minT = e.MinTime
		}
		if e.MaxTime.After(maxT) {
			maxT = e.MaxTime
		}
		replaces = append(replaces, ReplacedFile{Path: e.Path, SHA256: e.SHA256, Bytes: e.Bytes, Rows: e.Rows})
	}
	all := windowOf(time.Time{}, time.Time{}) // every row of the inputs
	var closeErr error
	if key.table == "flows" {
		if of.flows, err = newFlowWriter(of.buf, w.cfg.RowGroupRows, fileMetadata(key, run[0].CollectorVersion, run[0].ConfigHash)); err != nil {
			return fmt.Errorf("archive: compact: %w", err)
		}
		buf := make([]FlowRow, 4096)
		for _, e := range run {
			err := scanFile(filepath.Join(w.cfg.Root, filepath.FromSlash(e.Path)), buf, "time", all, func(rows []FlowRow) error {
				got += int64(len(rows))
				of.rowBuf = rows
				return of.flushRows()
			})
			if err != nil {
				return fmt.Errorf("archive: compact: read %s: %w", e.Path, err)
			}
		}
		closeErr = of.flows.Close()
	} else {
		pw := parquet.NewGenericWriter[StatRow](of.buf, w.statsOptions(key, run[0].CollectorVersion, run[0].ConfigHash)...)
		buf := make([]StatRow, 4096)
		for _, e := range run {
			err := scanFile(filepath.Join(w.cfg.Root, filepath.FromSlash(e.Path)), buf, "minute", all, func(rows []StatRow) error {
				got += int64(len(rows))
				_, err := pw.Write(rows)
				return err
			})
			if err != nil {
				return fmt.Errorf("archive: compact: read %s: %w", e.Path, err)
			}
		}
		closeErr = pw.Close()
	}
	if closeErr != nil {
		return fmt.Errorf("archive: compact: close %s: %w", of.tmp, closeErr)
	}
	if got != want {
		return fmt.Errorf("archive: compact: %d rows read from %d files whose manifest entries say %d", got, len(run), want)
	}
	if err := of.buf.Flush(); err != nil {
		return fmt.Errorf("archive: compact: write %s: %w", of.tmp, err)
	}
	of.rows, of.minT, of.maxT = got, minT.UnixMicro(), maxT.UnixMicro()
	rec := commitRecord{Seq: w.seq + 1, Time: now.UTC(), Checkpoints: w.committed}
	if err := w.finishFile(of, &rec); err != nil {
		return err
	}
	rec.Files[0].Op, rec.Files[0].Replaces = "compaction", replaces
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
	res.Partitions++
	res.Inputs += len(run)
	res.Outputs++
	res.Rows += got
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

// replacedFiles returns the paths that compaction entries of the manifest
// at path replaced. A manifest without compaction entries is not parsed.
func replacedFiles(manifest string) (map[string]bool, error) {
	b, err := os.ReadFile(manifest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: manifest %s: %w", manifest, err)
	}
	if !bytes.Contains(b, []byte(`"op":"compaction"`)) {
		return nil, nil
	}
	entries, err := parseManifest(manifest, b)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range entries {
		for _, r := range e.Replaces {
			out[r.Path] = true
		}
	}
	return out, nil
}
