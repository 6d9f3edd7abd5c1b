package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Retention is how long each table keeps its partitions; 0 keeps them
// forever. Stats are small and are what proves coverage, so operators often
// keep them longer than flows.
type Retention struct {
	Flows, Stats time.Duration
	// Hold, when set, keeps a node's partitions of a date it reports true
	// for (not yet shipped to object storage), whatever their age.
	Hold func(node, date string) bool
}

// RetentionResult is what one ApplyRetention removed.
type RetentionResult struct {
	Partitions int   // (table, date, node) partitions deleted
	Files      int   // Parquet files deleted
	Bytes      int64 // their size
	Rows       int64 // their rows, from the manifest
	Held       int   // partitions old enough but kept by Retention.Hold
}

// ApplyRetention deletes the date partitions, of every node, whose whole UTC
// day is older than now minus the table's retention. Each deletion is first
// recorded in the node's manifest chain, in the deleted day's manifest file:
// one "retention" entry per (table, date, node) naming the partition
// directory and the rows and bytes that the manifest's commit entries give for
// it (and another for rows committed into it after its deletion), so that verify and an auditor can tell data removed by policy from data
// that went missing. The entry is written (and fsynced) before any file is
// removed; after a crash in between, the next run finds the entry and
// finishes the deletion. Manifest files are kept.
func (w *Writer) ApplyRetention(now time.Time, r Retention) (res RetentionResult, err error) {
	err = w.locked(func() (err error) {
		res, err = w.applyRetention(now, r)
		return err
	})
	return res, err
}

func (w *Writer) applyRetention(now time.Time, r Retention) (res RetentionResult, err error) {
	defer func() {
		if err != nil {
			w.m.writeErrors.WithLabelValues("retention").Inc()
		}
	}()
	for _, t := range []struct {
		table string
		keep  time.Duration
	}{{"flows", r.Flows}, {"stats", r.Stats}, {"losses", r.Stats}} {
		if t.keep <= 0 {
			continue
		}
		cutoff := now.UTC().Add(-t.keep)
		dates, err := dateDirs(filepath.Join(w.cfg.Root, t.table))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("archive: retention: %w", err)
		}
		for _, d := range dates {
			if d.day.Add(24 * time.Hour).After(cutoff) {
				continue
			}
			dateDir := filepath.Join(w.cfg.Root, t.table, d.name)
			names, nodes, err := nodeDirs(dateDir)
			if err != nil {
				return res, fmt.Errorf("archive: retention: %w", err)
			}
			for i, part := range nodes {
				if _, open := w.files[partKey{table: t.table, date: d.date, node: part}]; open {
					continue // a backfill is writing into it right now
				}
				if r.Hold != nil && r.Hold(UnsanitizeNode(part), d.date) {
					res.Held++
					continue
				}
				if err := w.retire(t.table, d.date, UnsanitizeNode(part), filepath.Join(dateDir, names[i]), &res); err != nil {
					return res, err
				}
			}
			// The date directory goes when its last node is gone.
			if os.Remove(dateDir) == nil {
				_ = syncDir(filepath.Dir(dateDir))
			}
		}
	}
	if res.Partitions > 0 {
		w.m.retentionPartitions.Add(float64(res.Partitions))
		w.m.retentionBytes.Add(float64(res.Bytes))
	}
	return res, nil
}

// retire records and deletes one partition.
func (w *Writer) retire(table, date, node, dir string, res *RetentionResult) error {
	rel := filepath.ToSlash(filepath.Join(table, "date="+date, "node="+SanitizeNode(node)))
	entries, err := readManifest(manifestPath(w.cfg.Root, node, date))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archive: retention %s: %w", rel, err)
	}
	// An entry records the commits before it: a run that finds one with no
	// commit after it finishes a deletion a crash interrupted; commits
	// after it (flows of the day that arrived once it was deleted, a
	// node catching up) are a new deletion, recorded by an entry of their
	// own.
	recorded := false
	e := ManifestEntry{Op: "retention", Path: rel, Table: table, Seq: w.seq,
		CollectorVersion: w.cfg.CollectorVersion, ConfigHash: w.cfg.ConfigHash}
	for _, x := range entries {
		switch {
		case x.Op == "retention" && x.Path == rel:
			recorded = true
			e.Rows, e.Bytes, e.MinTime, e.MaxTime = 0, 0, time.Time{}, time.Time{}
		case x.Op == "commit" && x.Table == table && strings.HasPrefix(x.Path, rel+"/"):
			recorded = false
			e.Rows += x.Rows
			e.Bytes += x.Bytes
			if e.MinTime.IsZero() || x.MinTime.Before(e.MinTime) {
				e.MinTime = x.MinTime
			}
			if x.MaxTime.After(e.MaxTime) {
				e.MaxTime = x.MaxTime
			}
		}
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("archive: retention %s: %w", rel, err)
	}
	if !recorded {
		if err := w.appendManifest(e, node, date); err != nil {
			return fmt.Errorf("archive: retention %s: %w", rel, err)
		}
		res.Partitions++
		res.Rows += e.Rows
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name())
		if info, err := f.Info(); err == nil {
			res.Bytes += info.Size()
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("archive: retention: remove %s: %w", p, err)
		}
		res.Files++
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("archive: retention: remove %s: %w", dir, err)
	}
	return syncDir(filepath.Dir(dir))
}
