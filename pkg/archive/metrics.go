package archive

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	rows          prometheus.Counter
	bytes         prometheus.Counter
	files         *prometheus.CounterVec
	commitSeconds prometheus.Histogram
	writeErrors   *prometheus.CounterVec
	openFiles     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		rows: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "rows_written_total",
			Help: "Flow rows written into archive files (committed or still open)."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "bytes_written_total",
			Help: "Bytes of committed archive files."}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "files_committed_total",
			Help: "Archive files committed, by table (flows, stats)."}, []string{"table"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "commit_duration_seconds",
			Help: "Time to commit a group of files (close, fsync, commit record, rename, manifests).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "write_errors_total",
			Help: "Failed archive writes or commits, by kind."}, []string{"kind"}),
		openFiles: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "flowaudit", Subsystem: "archive", Name: "open_files",
			Help: "Archive files being written (not yet committed)."}),
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.bytes, m.files, m.commitSeconds, m.writeErrors, m.openFiles)
	}
	return m
}
