package daemon

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// verifyLoop verifies the two last closed days (UTC) of the archive every
// interval: every committed file's hash and row count, the manifest chains
// and, with a key, the signatures. The result is the verify_findings gauge.
// Today's partitions are left out: files are being committed into them.
func (d *Daemon) verifyLoop(ctx context.Context, interval time.Duration) {
	// The first run waits a little, so that a restarting daemon does not
	// compete with its own catch-up.
	timer := time.NewTimer(min(interval, 2*time.Minute))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		d.verifyOnce()
		timer.Reset(interval)
	}
}

func (d *Daemon) verifyOnce() {
	today := d.opts.Now().UTC().Truncate(24 * time.Hour)
	from := today.Add(-48 * time.Hour)
	dir := d.archiveDir()
	var rep *archive.VerifyReport
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		rep, err = archive.Verify(dir, from, today, d.pubKey)
		if err == nil && rep.OK() {
			break
		}
		// A late flow may have been committed into yesterday while the
		// files were listed: look again before reporting.
		time.Sleep(time.Second)
	}
	d.m.verifyLastRun.Set(float64(d.opts.Now().UnixNano()) / 1e9)
	if err != nil {
		d.m.verifyFindings.Set(1)
		d.log.Error("verification of the archive failed", zap.Time("from", from), zap.Time("to", today), zap.Error(err))
		return
	}
	d.m.verifyFindings.Set(float64(len(rep.Findings)))
	if rep.OK() {
		d.log.Info("archive verified", zap.Time("from", from), zap.Time("to", today), zap.Int("files", rep.Files), zap.Int64("rows", rep.Rows))
		return
	}
	for i, f := range rep.Findings {
		if i == 10 {
			d.log.Error("more findings", zap.Int("total", len(rep.Findings)))
			break
		}
		d.log.Error("archive verification finding", zap.Any("finding", f))
	}
}

// slackWindow is the least time a reader may fall behind without losing
// data that the daemon accepts without a warning.
const slackWindow = 5 * time.Minute

// slackCheck warns, a minute after start, when a file source's exporter
// keeps so few bytes (live file plus backups) that at the observed rate a
// reader that stops for slackWindow loses data.
func (d *Daemon) slackCheck(ctx context.Context) {
	start := d.opts.Now()
	before := make([]int64, len(d.sources))
	for i, s := range d.sources {
		before[i] = s.readB.Load()
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Minute):
	}
	elapsed := d.opts.Now().Sub(start).Seconds()
	for i, s := range d.sources {
		slack := s.rotation.SlackBytes()
		if slack == 0 || elapsed <= 0 {
			continue
		}
		rate := float64(s.readB.Load()-before[i]) / elapsed
		if rate <= 0 {
			continue
		}
		if window := time.Duration(float64(slack) / rate * float64(time.Second)); window < slackWindow {
			d.log.Warn("the exporter's rotation keeps less than 5 minutes of flows at the observed rate: if flowaudit stops longer, flows are deleted before they are archived; raise hubble-export-file-max-backups or -max-size-mb",
				zap.String("source", s.in.ID()), zap.Int("max_size_mb", s.rotation.MaxSizeMB), zap.Int("max_backups", s.rotation.MaxBackups),
				zap.Float64("bytes_per_second", rate), zap.Duration("slack", window.Round(time.Second)))
		}
	}
}

// retentionLoop applies the archive retention of the current configuration,
// then compacts closed days (the writer locked per run, see
// archive.Writer.CompactEach), every archive.maintenanceInterval (the
// first time after at most 2 minutes, so that a restarting daemon does not
// compete with its own catch-up).
func (d *Daemon) retentionLoop(ctx context.Context) {
	timer := time.NewTimer(min(d.maintenanceInterval(), 2*time.Minute))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		d.retentionOnce()
		d.compactOnce(ctx)
		timer.Reset(d.maintenanceInterval())
	}
}

func (d *Daemon) maintenanceInterval() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Duration(d.cfg.Archive.MaintenanceInterval)
}

func (d *Daemon) retentionOnce() {
	d.mu.Lock()
	rc := d.cfg.Archive.Retention
	d.mu.Unlock()
	r := archive.Retention{Flows: time.Duration(rc.Flows), Stats: time.Duration(rc.Stats)}
	if r.Flows <= 0 && r.Stats <= 0 {
		return
	}
	if s := d.shipper.Load(); s != nil {
		// Nothing is deleted before the object store holds it.
		r.Hold = func(node, date string) bool { return !s.Shipped(node, date) }
	}
	sink := d.sink.Load()
	if sink == nil {
		return // the archive is being reopened: next time
	}
	d.m.maintenanceRunning.WithLabelValues("retention").Set(1)
	defer d.m.maintenanceRunning.WithLabelValues("retention").Set(0)
	res, err := sink.w.ApplyRetention(d.opts.Now(), r)
	if errors.Is(err, archive.ErrClosed) {
		return // shutting down or reopening: next time
	}
	if err != nil {
		d.log.Error("archive retention failed; retrying at the next maintenance run", zap.Error(err),
			zap.Int("partitions_deleted", res.Partitions))
		return
	}
	if res.Held > 0 {
		d.log.Warn("archive retention kept old partitions not yet shipped to object storage", zap.Int("partitions", res.Held))
	}
	if res.Partitions > 0 || res.Files > 0 {
		d.log.Info("archive retention deleted old days", zap.Int("partitions", res.Partitions),
			zap.Int("files", res.Files), zap.Int64("bytes", res.Bytes), zap.Int64("rows", res.Rows),
			zap.Stringer("flows", rc.Flows), zap.Stringer("stats", rc.Stats))
	}
}

func (d *Daemon) compactOnce(ctx context.Context) {
	d.mu.Lock()
	on := d.cfg.Archive.Compaction
	d.mu.Unlock()
	if !on {
		return
	}
	sink := d.sink.Load()
	if sink == nil {
		return // the archive is being reopened: next time
	}
	d.m.maintenanceRunning.WithLabelValues("compaction").Set(1)
	defer d.m.maintenanceRunning.WithLabelValues("compaction").Set(0)
	// Run by run, the writer locked for each only: the sources' batches
	// are written between two runs, not after the whole compaction.
	res, err := sink.w.CompactEach(ctx, d.opts.Now())
	if errors.Is(err, archive.ErrClosed) || ctx.Err() != nil {
		return // shutting down or reopening: next time
	}
	if err != nil {
		d.log.Error("archive compaction failed; retrying at the next maintenance run", zap.Error(err),
			zap.Int("files_written", res.Outputs), zap.Int("files_merged", res.Inputs))
		return
	}
	if res.Outputs > 0 {
		d.log.Info("archive compaction merged the files of closed days", zap.Int("partitions", res.Partitions),
			zap.Int("files_merged", res.Inputs), zap.Int("files_written", res.Outputs), zap.Int64("rows", res.Rows))
	}
}
