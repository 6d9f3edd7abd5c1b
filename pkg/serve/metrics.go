package serve

import (
	"context"
	"path"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// metrics are serve's counters; a Server without Config.Registry keeps
// them unregistered.
type metrics struct {
	requests      *prometheus.CounterVec
	errors        *prometheus.CounterVec
	flowsSent     prometheus.Counter
	groupsSkipped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "serve", Name: "requests_total",
			Help: "gRPC requests served, by method (GetFlows, ServerStatus, GetNodes, GetNamespaces, Check, ...)."}, []string{"method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "serve", Name: "request_errors_total",
			Help: "gRPC requests that ended with an error, by method and gRPC status code (a client that goes away is Canceled)."}, []string{"method", "code"}),
		flowsSent: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "serve", Name: "flows_sent_total",
			Help: "Flows sent to GetFlows clients (lost events and node status events not counted)."}),
		groupsSkipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "flowaudit", Subsystem: "serve", Name: "row_groups_skipped_total",
			Help: "Row groups of the window that GetFlows did not read because their namespace or verdict statistics miss every whitelist filter."}),
	}
	if reg != nil {
		for _, c := range m.collectors() {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.errors, m.flowsSent, m.groupsSkipped}
}

// Collectors are serve's metrics (for docs/metrics.md).
func Collectors() []prometheus.Collector {
	m, _ := newMetrics(nil)
	return m.collectors()
}

// ServerOptions are the options a gRPC server serving s needs: the
// interceptors that count its requests and errors.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			s.count(info.FullMethod, err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			err := h(srv, ss)
			s.count(info.FullMethod, err)
			return err
		}),
	}
}

func (s *Server) count(fullMethod string, err error) {
	method := path.Base(fullMethod)
	s.m.requests.WithLabelValues(method).Inc()
	if err != nil {
		s.m.errors.WithLabelValues(method, status.Code(err).String()).Inc()
	}
}
