package archive

// A commit group: every open file flushed, finished, renamed and entered in
// its manifest with the sources' checkpoints, and the stats and losses
// gathered since the last one.

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

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
