package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flowaudit/flowaudit/internal/buildinfo"
)

// metrics are the daemon's own metrics; the pipeline, ingest and archive
// packages register theirs in the same registry.
type metrics struct {
	sourceUp        *prometheus.GaugeVec
	fileDirMissing  *prometheus.GaugeVec
	reloads         *prometheus.CounterVec
	lastReloadOK    prometheus.Gauge
	restartRequired prometheus.Gauge
	restarts        prometheus.Counter
	lastCommit      prometheus.Gauge
	verifyFindings  prometheus.Gauge
	verifyLastRun   prometheus.Gauge
	// maintenanceRunning: 1 while retention or compaction runs, by task.
	maintenanceRunning *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, d *Daemon) *metrics {
	m := &metrics{
		sourceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "source", Name: "up",
			Help: "1 while the source is being read, 0 while it is not (starting, failed, the archive being reopened, or a file source's directory missing)."}, []string{"source"}),
		fileDirMissing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "source", Name: "file_directory_missing",
			Help: "1 while the directory of a file source's path does not exist (checked every 10s): nothing to read, a wrong hubble-export-file-path, an exporter that is off, or a volume not mounted; the source waits for it."}, []string{"source"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "config", Name: "reloads_total",
			Help: "Configuration reloads (SIGHUP or file change), by result (success, failure)."}, []string{"result"}),
		lastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "config", Name: "last_reload_successful",
			Help: "1 if the last configuration reload was applied (or none happened), 0 if it was rejected."}),
		restartRequired: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "config", Name: "restart_required",
			Help: "1 when a reloaded configuration changed settings that only a restart applies (sources, archive, listen, debugListen, node)."}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "daemon", Name: "archive_sessions_failed_total",
			Help: "Times the archive failed (disk full, I/O error) or a source stopped, and the daemon reopened the archive and resumed from the last committed checkpoint."}),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "last_commit_timestamp_seconds",
			Help: "Wall-clock time of the last successful archive commit (an fsync of the row log, or a cut of the files)."}),
		verifyFindings: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "verify", Name: "findings",
			Help: "Findings (missing, extra, modified or truncated files, broken chain or signature) of the daemon's last verification of its closed days."}),
		verifyLastRun: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "verify", Name: "last_run_timestamp_seconds",
			Help: "When the daemon last verified its closed days."}),
		maintenanceRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "maintenance_running",
			Help: "1 while the daemon's archive maintenance task (retention, compaction) runs, 0 otherwise; it runs every archive.maintenanceInterval."}, []string{"task"}),
	}
	for _, task := range []string{"retention", "compaction"} {
		m.maintenanceRunning.WithLabelValues(task).Set(0)
	}
	m.lastReloadOK.Set(1)
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "flowaudit", Name: "build_info",
		Help: "1, labelled with the version, commit and Go version of the binary."}, []string{"version", "commit", "goversion"})
	buildInfo.WithLabelValues(buildinfo.Version, buildinfo.Commit, buildinfo.GoVersion()).Set(1)
	degraded := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "daemon", Name: "degraded",
		Help: "1 while the archive is failing (the daemon retries with backoff and the sources wait), 0 otherwise."}, func() float64 {
		if d.degraded.Load() {
			return 1
		}
		return 0
	})
	diskFree := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "disk_free_bytes",
		Help: "Bytes available to the daemon on the archive's file system (-1: unknown)."}, func() float64 {
		free, _, err := diskUsage(d.archiveDir())
		if err != nil {
			return -1
		}
		return float64(free)
	})
	diskSize := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "disk_size_bytes",
		Help: "Size of the archive's file system (-1: unknown)."}, func() float64 {
		_, size, err := diskUsage(d.archiveDir())
		if err != nil {
			return -1
		}
		return float64(size)
	})
	reg.MustRegister(m.sourceUp, m.fileDirMissing, m.reloads, m.lastReloadOK, m.restartRequired, m.restarts, m.lastCommit,
		m.verifyFindings, m.verifyLastRun, m.maintenanceRunning, buildInfo, degraded, diskFree, diskSize,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (d *Daemon) archiveDir() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.Archive.Dir
}
