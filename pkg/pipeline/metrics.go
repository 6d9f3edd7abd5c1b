package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's counters. Labels are low-cardinality only.
type Metrics struct {
	events       *prometheus.CounterVec
	kept         prometheus.Counter
	denied       prometheus.Counter
	decodeErrors prometheus.Counter
	lostEvents   *prometheus.CounterVec
	queueBatches prometheus.Gauge
	sinkSeconds  prometheus.Histogram
}

// NewMetrics creates the pipeline metrics and registers them with reg (nil:
// not registered, for tests and one-shot commands).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "events_decoded_total",
			Help: "Events decoded, by kind (flow, non_flow).",
		}, []string{"kind"}),
		kept: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "flows_kept_total",
			Help: "Flows that passed the allow/deny filter and were handed to the archive.",
		}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "flows_denied_total",
			Help: "Flows dropped by the user's allow/deny filter.",
		}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "decode_errors_total",
			Help: "Event lines that could not be decoded (skipped and counted in the stats table).",
		}),
		lostEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "lost_events_total",
			Help: "Events accounted as lost, by reason (hubble_lost_events, decode_error, rotation_gap, truncated, line_too_long).",
		}, []string{"reason"}),
		queueBatches: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "queue_batches",
			Help: "Batches waiting for the archive writer.",
		}),
		sinkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "flowaudit", Subsystem: "pipeline", Name: "archive_write_duration_seconds",
			Help:    "Time the archive writer took per batch (including commits).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.kept, m.denied, m.decodeErrors, m.lostEvents, m.queueBatches, m.sinkSeconds)
	}
	return m
}
