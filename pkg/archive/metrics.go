package archive

import (
	"errors"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	rows          prometheus.Counter
	bytes         prometheus.Counter
	files         *prometheus.CounterVec
	commitSeconds prometheus.Histogram
	writeErrors   *prometheus.CounterVec
	openFiles     prometheus.Gauge
	// lastCommittedFlow is per source: the newest flow time committed.
	lastCommittedFlow *prometheus.GaugeVec

	retentionPartitions prometheus.Counter
	retentionBytes      prometheus.Counter
	compactedFiles      prometheus.Counter
	// With a row log: the age of the oldest row not yet in a closed file,
	// and the time of the log's fsyncs.
	unpublishedSeconds prometheus.Gauge
	logSyncSeconds     prometheus.Histogram
	// OpenWait: 1 while it waits for another writer to release the root,
	// and how long each wait lasted.
	lockWaiting     prometheus.Gauge
	lockWaitSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		rows: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "rows_written_total",
			Help: "Flow rows written into archive files (committed or still open); the rows a restart replays from the row log are not counted again."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "bytes_written_total",
			Help: "Bytes of committed archive files."}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "files_committed_total",
			Help: "Archive files committed, by table (flows, stats)."}, []string{"table"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "commit_duration_seconds",
			Help: "Time to commit a group of files (close, fsync, commit record, rename, manifests).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "write_errors_total",
			Help: "Failed archive writes or commits, by kind: no_space (the filesystem is full or over quota), io (any other write, fsync or rename error), compaction, retention."}, []string{"kind"}),
		openFiles: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "open_files",
			Help: "Archive files being written (not yet committed)."}),
		retentionPartitions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "retention_partitions_deleted_total",
			Help: "Date partitions (table, date, node) deleted by retention, each recorded in the manifest first."}),
		retentionBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "retention_bytes_deleted_total",
			Help: "Bytes of archive files deleted by retention."}),
		lastCommittedFlow: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "last_committed_flow_timestamp_seconds",
			Help: "Time of the newest flow of each source that a commit made durable (Unix seconds): the archive holds that source's evidence up to here."}, []string{"source"}),
		compactedFiles: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "compaction_files_merged_total",
			Help: "Committed files of closed days merged into larger files by compaction, then deleted once the manifest chain recorded it."}),
		unpublishedSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "visibility_delay_seconds",
			Help: "Age of the oldest row that is durable in the row log but not yet in a closed Parquet file (readers see it once its file is cut, at most archive.maxFileAge after it was written); 0 right after a cut."}),
		logSyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "log_sync_duration_seconds",
			Help: "Time to fsync the row log (a commit that does not cut the files).", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)}),
		lockWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "writer_lock_waiting",
			Help: "1 while the daemon waits for another process (the collector it replaces in an upgrade, an import) to release the archive root's writer lock: a standby that reads nothing yet."}),
		lockWaitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "writer_lock_wait_seconds",
			Help: "How long the daemon waited for another process to release the archive root's writer lock before it took it (an upgrade's overlap of the old and the new collector).", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}),
	}
	if reg != nil {
		// A daemon reopens the archive after an I/O error with the same
		// registry: it keeps counting into the collectors registered first.
		m.rows = register(reg, m.rows)
		m.bytes = register(reg, m.bytes)
		m.files = register(reg, m.files)
		m.commitSeconds = register(reg, m.commitSeconds)
		m.writeErrors = register(reg, m.writeErrors)
		m.openFiles = register(reg, m.openFiles)
		m.lastCommittedFlow = register(reg, m.lastCommittedFlow)
		m.retentionPartitions = register(reg, m.retentionPartitions)
		m.retentionBytes = register(reg, m.retentionBytes)
		m.compactedFiles = register(reg, m.compactedFiles)
		m.unpublishedSeconds = register(reg, m.unpublishedSeconds)
		m.logSyncSeconds = register(reg, m.logSyncSeconds)
		m.lockWaiting = register(reg, m.lockWaiting)
		m.lockWaitSeconds = register(reg, m.lockWaitSeconds)
	}
	return m
}

// register registers c, or returns the identical collector registered before.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

// writeErrorKind is the write_errors_total kind of a failed write: a full
// disk or quota is named as such, for the alert to say why without the logs.
func writeErrorKind(err error) string {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return "no_space"
	}
	return "io"
}
