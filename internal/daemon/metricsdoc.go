package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/serve"
)

// recorder is a Registerer that remembers the collectors it registered, so
// that docs/metrics.md is generated from what the daemon really registers.
type recorder struct {
	reg *prometheus.Registry
	mu  sync.Mutex
	cs  []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.cs = append(r.cs, c)
	r.mu.Unlock()
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// MetricDoc describes one metric family.
type MetricDoc struct {
	Name, Type, Help string
	Labels           []string
}

var descRE = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: ("(?:[^"\\]|\\.)*"), unit: "(?:[^"\\]|\\.)*", constLabels: \{[^}]*\}, variableLabels: \{([^}]*)\}\}$`)

// Metrics lists every flowaudit_* metric a daemon registers (its own, the
// pipeline's, the sources' and the archive's), sorted by name.
func Metrics() ([]MetricDoc, error) {
	dir, err := os.MkdirTemp("", "flowaudit-metrics-doc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg := Default()
	cfg.Node = "doc"
	cfg.Archive.Dir = filepath.Join(dir, "archive")
	cfg.Sources = []SourceConfig{{File: filepath.Join(dir, "events.log")}}
	d, err := New(cfg, Options{})
	if err != nil {
		return nil, err
	}
	w, err := archive.Open(archive.Config{Root: cfg.Archive.Dir, MaxFileBytes: 1, MaxFileRows: 1, MaxFileAge: 1, RowGroupRows: 1}, zap.NewNop(), d.rec)
	if err != nil {
		return nil, err
	}
	defer w.Abort()

	return docsOf(d.rec.cs)
}

// docsOf describes the flowaudit_* metrics of cs, sorted by name.
func docsOf(cs []prometheus.Collector) ([]MetricDoc, error) {
	var out []MetricDoc
	for _, c := range cs {
		typ := collectorType(c)
		descs := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(descs); close(descs) }()
		for desc := range descs {
			m := descRE.FindStringSubmatch(desc.String())
			if m == nil {
				return nil, fmt.Errorf("metrics doc: cannot parse %s", desc)
			}
			name, _ := strconv.Unquote(m[1])
			help, _ := strconv.Unquote(m[2])
			if !strings.HasPrefix(name, "flowaudit_") {
				continue // the Go runtime's and the process's standard metrics
			}
			var labels []string
			if m[3] != "" {
				labels = strings.Split(m[3], ",")
			}
			out = append(out, MetricDoc{Name: name, Type: typ, Help: help, Labels: labels})
		}
	}
	slices.SortFunc(out, func(a, b MetricDoc) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// collectorType names a collector's metric type.
func collectorType(c prometheus.Collector) string {
	switch c.(type) {
	case *prometheus.CounterVec:
		return "counter"
	case *prometheus.GaugeVec:
		return "gauge"
	case *prometheus.HistogramVec:
		return "histogram"
	case *prometheus.SummaryVec:
		return "summary"
	}
	ms := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ms); close(ms) }()
	typ := "untyped"
	for m := range ms {
		var pb dto.Metric
		if m.Write(&pb) != nil {
			continue
		}
		switch {
		case pb.Counter != nil:
			typ = "counter"
		case pb.Gauge != nil:
			typ = "gauge"
		case pb.Histogram != nil:
			typ = "histogram"
		case pb.Summary != nil:
			typ = "summary"
		}
	}
	return typ
}

// MetricsMarkdown renders docs/metrics.md.
func MetricsMarkdown() (string, error) {
	ms, err := Metrics()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# Metrics\n\n")
	b.WriteString("<!-- Generated from the daemon's registry by `make metrics-docs`; TestMetricsDocUpToDate fails when it is stale. -->\n\n")
	b.WriteString("`flowaudit run` serves these on `/metrics` (with the Go runtime's `go_*` and the process's `process_*` metrics). ")
	b.WriteString("`source` is the source's ID (`file:<path>` or `synthetic:<name>`): a handful per node.\n\n")
	table(&b, ms)
	sm, err := docsOf(serve.Collectors())
	if err != nil {
		return "", err
	}
	b.WriteString("\n## `flowaudit serve`\n\n")
	b.WriteString("`flowaudit serve --metrics-listen ADDR` serves these on `/metrics` (with the `go_*` and `process_*` metrics).\n\n")
	table(&b, sm)
	return b.String(), nil
}

func table(b *strings.Builder, ms []MetricDoc) {
	b.WriteString("| Metric | Type | Labels | Description |\n|---|---|---|---|\n")
	for _, m := range ms {
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", m.Name, m.Type, strings.Join(m.Labels, ", "), strings.ReplaceAll(m.Help, "|", `\|`))
	}
}
