package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/filter"
)

// Config configures a Server.
type Config struct {
	// Roots are the archive roots served as one archive (directories or
	// s3:// locations).
	Roots []string
	// Poll is how often a follow request looks for newly committed files
	// (default 1 s).
	Poll time.Duration
	// Access maps a client identity (its certificate's subject common name)
	// to the namespaces whose flows it may see; nil: every client sees
	// everything. With a map, a client it does not name is refused.
	Access map[string][]string
	// Version is reported by ServerStatus and GetNodes.
	Version string
	Log     *zap.Logger
	// Registry, when set, registers serve's metrics (ServerOptions counts
	// the requests).
	Registry prometheus.Registerer
}

// Server implements Hubble's observer.Observer service over an archive.
// It only reads: it takes no lock and writes nothing, so it runs beside the
// daemon writing the archive and beside report.
type Server struct {
	observerpb.UnimplementedObserverServer
	cfg     Config
	scanner *archive.Scanner
	log     *zap.Logger
	access  map[string]*filter.Program
	m       *metrics

	mu      sync.Mutex
	summary *summary
	// nsCounts: for each set of namespaces a client is limited to, what
	// each committed file (root and path) holds of them.
	nsCounts map[string]map[string]fileCount
}

// New opens the archive roots for serving.
func New(cfg Config) (*Server, error) {
	sc, err := archive.OpenScanner(cfg.Roots...)
	if err != nil {
		return nil, err
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("serve: metrics: %w", err)
	}
	s := &Server{cfg: cfg, scanner: sc, log: cfg.Log, m: m}
	if cfg.Access != nil {
		s.access = map[string]*filter.Program{}
		for id, nss := range cfg.Access {
			p, err := namespaceProgram(nss)
			if err != nil {
				return nil, fmt.Errorf("serve: access of %q: %w", id, err)
			}
			s.access[id] = p
		}
	}
	return s, nil
}

// namespaceProgram is the filter that passes the flows from or to a pod of
// one of the namespaces, as `hubble observe --namespace` builds it; "*"
// passes everything (nil).
func namespaceProgram(nss []string) (*filter.Program, error) {
	if slices.Contains(nss, "*") {
		return nil, nil
	}
	if len(nss) == 0 {
		return nil, errors.New("no namespace")
	}
	var pods []string
	for _, ns := range nss {
		if ns == "" {
			return nil, errors.New("empty namespace")
		}
		pods = append(pods, ns+"/")
	}
	return filter.Compile([]*flowpb.FlowFilter{{SourcePod: pods}, {DestinationPod: pods}}, nil)
}

// clientAccess returns the program restricting what the calling client may
// see (nil: nothing is restricted), or PermissionDenied.
func (s *Server) clientAccess(ctx context.Context) (*filter.Program, []string, error) {
	if s.access == nil {
		return nil, nil, nil
	}
	id, ok := clientIdentity(ctx)
	if !ok {
		return nil, nil, status.Error(codes.PermissionDenied, "flowaudit serve: namespace access needs a client certificate")
	}
	p, ok := s.access[id]
	if !ok {
		return nil, nil, status.Errorf(codes.PermissionDenied, "flowaudit serve: client %q may see no namespace", id)
	}
	return p, s.cfg.Access[id], nil
}

// summary is what ServerStatus and GetNodes report, from the manifests.
type summary struct {
	at     time.Time
	rows   uint64
	nodes  map[string]*observerpb.Node
	oldest time.Time
	newest time.Time
	files  []archive.Vouched // the flows files counted
}

// span is the time the archive's flows cover (ns), reported as the uptime:
// a client that divides the flows by it (hubble status, hubble list nodes,
// when no rate is reported) gets the archive's mean rate.
func (sum *summary) span() uint64 {
	if sum.oldest.IsZero() || !sum.newest.After(sum.oldest) {
		return 0
	}
	return uint64(sum.newest.Sub(sum.oldest))
}

// summaryTTL bounds how often the manifests are read for ServerStatus and
// GetNodes (Hubble UI asks for both every few seconds).
const summaryTTL = 10 * time.Second

func (s *Server) getSummary() (*summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.summary != nil && time.Since(s.summary.at) < summaryTTL {
		return s.summary, nil
	}
	rep, err := archive.VerifyRoots(s.cfg.Roots, archive.VerifyOptions{SizesOnly: true})
	if err != nil {
		return nil, err
	}
	sum := &summary{at: time.Now(), nodes: map[string]*observerpb.Node{}}
	nodes, err := s.scanner.Nodes()
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		sum.nodes[n.Name] = &observerpb.Node{Name: n.Name, Version: s.cfg.Version, State: relaypb.NodeState_NODE_CONNECTED}
	}
	for _, v := range rep.Intact {
		if v.Table != "flows" {
			continue
		}
		sum.files = append(sum.files, v)
		sum.rows += uint64(v.Rows)
		if n := sum.nodes[v.Node]; n != nil {
			n.NumFlows += uint64(v.Rows)
		}
		if !v.MinTime.IsZero() && (sum.oldest.IsZero() || v.MinTime.Before(sum.oldest)) {
			sum.oldest = v.MinTime
		}
		if v.MaxTime.After(sum.newest) {
			sum.newest = v.MaxTime
		}
	}
	for _, n := range sum.nodes {
		n.MaxFlows, n.SeenFlows = n.NumFlows, n.NumFlows
		n.UptimeNs = sum.span()
	}
	s.summary = sum
	return sum, nil
}

// ServerStatus reports the flows the archive holds (num, max and seen flows
// are all the committed rows: the archive drops none to make room), the
// time they cover as the uptime, the nodes with a manifest chain as
// connected, and the rate of the last minute's archived flows (stats).
//
// A client limited to namespaces sees the flows from or to them only, and
// no rate: the stats table counts the flows of every namespace.
func (s *Server) ServerStatus(ctx context.Context, _ *observerpb.ServerStatusRequest) (*observerpb.ServerStatusResponse, error) {
	_, allowed, err := s.clientAccess(ctx)
	if err != nil {
		return nil, err
	}
	sum, err := s.summaryFor(ctx, allowed)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "flowaudit serve: %v", err)
	}
	var rate float64
	if !restricted(allowed) {
		if rate, err = s.flowsRate(ctx, time.Now()); err != nil {
			return nil, status.Errorf(codes.Internal, "flowaudit serve: %v", err)
		}
	}
	return &observerpb.ServerStatusResponse{
		NumFlows: sum.rows, MaxFlows: sum.rows, SeenFlows: sum.rows,
		UptimeNs:            sum.span(),
		NumConnectedNodes:   wrapperspb.UInt32(uint32(len(sum.nodes))),
		NumUnavailableNodes: wrapperspb.UInt32(0),
		Version:             s.cfg.Version,
		FlowsRate:           rate,
	}, nil
}

// flowsRate is the flows archived per second in the last whole minute
// before now, from the stats table.
func (s *Server) flowsRate(ctx context.Context, now time.Time) (float64, error) {
	to := now.Truncate(time.Minute)
	var kept uint64
	err := s.scanner.ScanStats(ctx, archive.ScanOptions{From: to.Add(-time.Minute), To: to}, func(rows []archive.StatRow) error {
		for _, r := range rows {
			kept += r.FlowsKept
		}
		return nil
	})
	return float64(kept) / 60, err
}

// GetNodes lists the nodes with a manifest chain in the archive, each with
// the flows the archive holds of it (for a client limited to namespaces,
// of those namespaces).
func (s *Server) GetNodes(ctx context.Context, _ *observerpb.GetNodesRequest) (*observerpb.GetNodesResponse, error) {
	_, allowed, err := s.clientAccess(ctx)
	if err != nil {
		return nil, err
	}
	sum, err := s.summaryFor(ctx, allowed)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "flowaudit serve: %v", err)
	}
	out := &observerpb.GetNodesResponse{}
	for _, n := range sum.nodes {
		out.Nodes = append(out.Nodes, &observerpb.Node{Name: n.Name, Version: n.Version, State: n.State, UptimeNs: n.UptimeNs, NumFlows: n.NumFlows, MaxFlows: n.MaxFlows, SeenFlows: n.SeenFlows})
	}
	slices.SortFunc(out.Nodes, func(a, b *observerpb.Node) int { return compareStrings(a.Name, b.Name) })
	return out, nil
}

// namespaceWindow is how far back GetNamespaces looks, as Hubble's agent
// forgets a namespace it has not seen a flow of for an hour.
const namespaceWindow = time.Hour

// GetNamespaces lists the namespaces of the flows of the last hour before
// the newest archived flow (those the client may see).
func (s *Server) GetNamespaces(ctx context.Context, _ *observerpb.GetNamespacesRequest) (*observerpb.GetNamespacesResponse, error) {
	_, allowed, err := s.clientAccess(ctx)
	if err != nil {
		return nil, err
	}
	sum, err := s.getSummary()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "flowaudit serve: %v", err)
	}
	out := &observerpb.GetNamespacesResponse{}
	if sum.newest.IsZero() {
		return out, nil
	}
	type nsRow struct {
		Time            int64   `parquet:"time,timestamp(microsecond:utc)"`
		SourceCluster   *string `parquet:"source_cluster_name,optional"`
		SourceNamespace *string `parquet:"source_namespace,optional"`
		DestCluster     *string `parquet:"destination_cluster_name,optional"`
		DestNamespace   *string `parquet:"destination_namespace,optional"`
	}
	seen := map[[2]string]bool{}
	add := func(cluster, ns *string) {
		if ns == nil || (allowed != nil && !slices.Contains(allowed, "*") && !slices.Contains(allowed, *ns)) {
			return
		}
		k := [2]string{derefString(cluster), *ns}
		if !seen[k] {
			seen[k] = true
			out.Namespaces = append(out.Namespaces, &observerpb.Namespace{Cluster: k[0], Namespace: k[1]})
		}
	}
	o := archive.ScanOptions{From: sum.newest.Add(-namespaceWindow), To: sum.newest.Add(time.Microsecond)}
	err = archive.ScanFlowsAs(ctx, s.scanner, o, func(r *nsRow) int64 { return r.Time }, func(rows []nsRow) error {
		for i := range rows {
			add(rows[i].SourceCluster, rows[i].SourceNamespace)
			add(rows[i].DestCluster, rows[i].DestNamespace)
		}
		return nil
	})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "flowaudit serve: %v", err)
	}
	slices.SortFunc(out.Namespaces, func(a, b *observerpb.Namespace) int {
		if c := compareStrings(a.Cluster, b.Cluster); c != 0 {
			return c
		}
		return compareStrings(a.Namespace, b.Namespace)
	})
	return out, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func derefString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
