package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline counters, shared by every pipeline of a process and
// labelled by source ID (a handful per node: low cardinality).
type Metrics struct {
	events       *prometheus.CounterVec
	kept         *prometheus.CounterVec
	denied       *prometheus.CounterVec
	decodeErrors *prometheus.CounterVec
	lostEvents   *prometheus.CounterVec
	queueBatches *prometheus.GaugeVec
	queueBytes   *prometheus.GaugeVec
	sinkSeconds  *prometheus.HistogramVec
	lastCommit   *prometheus.GaugeVec
}

// NewMetrics creates the pipeline metrics and registers them with reg (nil:
// not registered, for tests and one-shot commands).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	src := []string{"source"}
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "events_decoded_total",
			Help: "Events decoded, by source and kind (flow, non_flow).",
		}, []string{"source", "kind"}),
		kept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "flows_kept_total",
			Help: "Flows that passed the allow/deny filter and were handed to the archive.",
		}, src),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "flows_denied_total",
			Help: "Flows dropped by the user's allow/deny filter.",
		}, src),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "decode_errors_total",
			Help: "Event lines that could not be decoded (skipped, and counted in the stats table); a line the filter denies is decoded only as far as the fields it reads (docs/architecture.md).",
		}, src),
		lostEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "lost_events_total",
			Help: "Events accounted as lost, by source and reason (hubble_lost_events, decode_error, rotation_gap, truncated, line_too_long).",
		}, []string{"source", "reason"}),
		queueBatches: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "queue_batches",
			Help: "Batches waiting for the archive writer (0 without a queue: queue.maxBytes 0).",
		}, src),
		queueBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "queue_bytes",
			Help: "Event bytes read but not yet accepted by the archive writer (bounded by queue.maxBytes; 0 without a queue).",
		}, src),
		sinkSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "archive_write_duration_seconds",
			Help:    "Time the archive writer took per batch, including any file commits.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, src),
		lastCommit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "last_written_flow_timestamp_seconds",
			Help: "Time of the last flow of the last batch the archive writer accepted, by source.",
		}, src),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.kept, m.denied, m.decodeErrors, m.lostEvents, m.queueBatches, m.queueBytes, m.sinkSeconds, m.lastCommit)
	}
	return m
}

// sourceMetrics are one pipeline's children of Metrics, resolved once.
type sourceMetrics struct {
	flows, nonFlow      prometheus.Counter
	kept, denied        prometheus.Counter
	decodeErrors        prometheus.Counter
	lost                *prometheus.CounterVec
	queueBatches        prometheus.Gauge
	queueBytes          prometheus.Gauge
	sinkSeconds         prometheus.Observer
	lastWrittenFlowTime prometheus.Gauge
}

func (m *Metrics) forSource(id string) sourceMetrics {
	return sourceMetrics{
		flows:               m.events.WithLabelValues(id, "flow"),
		nonFlow:             m.events.WithLabelValues(id, "non_flow"),
		kept:                m.kept.WithLabelValues(id),
		denied:              m.denied.WithLabelValues(id),
		decodeErrors:        m.decodeErrors.WithLabelValues(id),
		lost:                m.lostEvents.MustCurryWith(prometheus.Labels{"source": id}),
		queueBatches:        m.queueBatches.WithLabelValues(id),
		queueBytes:          m.queueBytes.WithLabelValues(id),
		sinkSeconds:         m.sinkSeconds.WithLabelValues(id),
		lastWrittenFlowTime: m.lastCommit.WithLabelValues(id),
	}
}
