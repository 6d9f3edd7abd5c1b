package gen

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// Config describes the simulated cluster and its traffic.
type Config struct {
	Seed    int64
	Cluster string    // default "prod-kr1"
	Nodes   int       // default 3
	Start   time.Time // simulated time of the first event; default 2026-01-01T00:00:00Z
	// Rate is flows per second per node (simulated time); default 100.
	Rate float64
	// DropRatio and AuditRatio are the shares of DROPPED and AUDIT flows;
	// 0 means the default (0.03, 0.01), < 0 none.
	DropRatio, AuditRatio float64
	// LostEventEvery and AgentEventEvery put one lost_events / agent_event line
	// every N events on average; 0 means the default (5000, 2000), < 0 never.
	LostEventEvery, AgentEventEvery int
	// Outages are spans in which a node's events are not written, as when
	// its collector was down and the exporter's files rotated away before it
	// came back. The generator still draws those events, so the rest of the
	// stream is the same with or without them.
	Outages []Outage
	// ProbeEvery, when > 0, adds the kubelet's health probes: every node
	// probes one of its pods (in turn) every ProbeEvery, as clusters do
	// whatever their load, so that every minute of a node holds flows even
	// at a low Rate. 0 leaves them out (and the stream as it was).
	ProbeEvery time.Duration
}

// Outage is a node's span [From, To) whose events are not written.
type Outage struct {
	Node     string // the node's name, plain ("node-02") or "cluster/node"
	From, To time.Time
}

// ParseOutage reads NODE,FROM,TO (times in RFC 3339, TO after FROM).
func ParseOutage(s string) (Outage, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 || parts[0] == "" {
		return Outage{}, fmt.Errorf("gen: outage %q: want NODE,FROM,TO", s)
	}
	var o Outage
	o.Node = parts[0]
	var err error
	if o.From, err = time.Parse(time.RFC3339Nano, parts[1]); err != nil {
		return Outage{}, fmt.Errorf("gen: outage %q: from: %w", s, err)
	}
	if o.To, err = time.Parse(time.RFC3339Nano, parts[2]); err != nil {
		return Outage{}, fmt.Errorf("gen: outage %q: to: %w", s, err)
	}
	if !o.To.After(o.From) {
		return Outage{}, fmt.Errorf("gen: outage %q: TO must be after FROM", s)
	}
	return o, nil
}

func (c *Config) setDefaults() error {
	if c.Cluster == "" {
		c.Cluster = "prod-kr1"
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if c.Rate == 0 {
		c.Rate = 100
	}
	switch {
	case c.DropRatio == 0:
		c.DropRatio = 0.03
	case c.DropRatio < 0:
		c.DropRatio = 0
	}
	switch {
	case c.AuditRatio == 0:
		c.AuditRatio = 0.01
	case c.AuditRatio < 0:
		c.AuditRatio = 0
	}
	if c.LostEventEvery == 0 {
		c.LostEventEvery = 5000
	}
	if c.AgentEventEvery == 0 {
		c.AgentEventEvery = 2000
	}
	switch {
	case c.Nodes < 1 || c.Nodes > 10000:
		return fmt.Errorf("gen: nodes %d out of range 1..10000", c.Nodes)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0): // NaN too
		return fmt.Errorf("gen: rate %v: want a finite number > 0", c.Rate)
	case !(c.DropRatio+c.AuditRatio <= 1): // NaN too
		return errors.New("gen: drop and audit ratios must be in [0,1] and sum to at most 1")
	case c.ProbeEvery < 0:
		return fmt.Errorf("gen: probe interval %s: want 0 (none) or more", c.ProbeEvery)
	}
	for _, o := range c.Outages {
		known := false
		for i := 1; i <= c.Nodes; i++ {
			n := fmt.Sprintf("node-%02d", i)
			known = known || o.Node == n || o.Node == c.Cluster+"/"+n
		}
		if !known {
			return fmt.Errorf("gen: outage of node %q: the cluster has node-01..node-%02d", o.Node, c.Nodes)
		}
		if !o.To.After(o.From) {
			return fmt.Errorf("gen: outage of node %q: it ends at %s, not after it starts at %s", o.Node, o.To, o.From)
		}
	}
	return nil
}

type pod struct {
	ns, name, app, sa string
	node              int
	ip, ip6           string
	id                uint32
	identity          uint32
	labels            []string
	workload          *flowpb.Workload
	ports             []uint32 // ports it listens on
	http              bool
}

// Generator produces a deterministic stream of Hubble events.
type Generator struct {
	cfg   Config
	rng   *rand.Rand
	now   time.Time
	step  time.Duration // mean gap between events across the cluster
	nodes []string      // plain node names
	pods  []*pod
	byNs  map[string][]*pod
	dns   []*pod
	apis  []*pod
	n     uint64
	// pending reply of the last request, emitted next (reply pairs)
	pending *flowpb.Flow
	// With probes: the time of the next regular event, drawn ahead (peeked)
	// so that a probe due before it goes first; the next probe's time and
	// node; the pod each node probes next.
	upcoming  time.Time
	peeked    bool
	nextProbe time.Time
	probeNode int
	probeTurn []int
	last      *flowpb.Flow // the flow of the last line (LastFlow)
}

var namespaces = []string{
	"kube-system", "monitoring", "logging", "ingress-nginx", "cert-manager", "payments", "payments-gateway",
	"core-banking", "core-ledger", "cards", "loans", "deposits", "fx", "treasury", "risk", "fraud-detection",
	"aml", "kyc", "customer", "mobile-api", "web-portal", "internet-banking", "notification", "batch", "reporting",
	"data-platform", "kafka", "redis", "postgres", "vault", "istio-system", "argocd", "backoffice", "hr", "crm",
	"open-banking", "partner-api", "audit", "sandbox", "default",
}

var apps = []string{"api", "worker", "gateway", "frontend", "scheduler", "consumer", "db", "cache", "auth", "ledger"}

var worldNames = []string{
	"api.openbanking.or.kr", "www.kftc.or.kr", "s3.ap-northeast-2.amazonaws.com", "sts.amazonaws.com",
	"api.github.com", "registry.k8s.io", "quay.io", "hooks.slack.com", "api.toss.im", "fcm.googleapis.com",
	"ocsp.digicert.com", "time.google.com", "login.microsoftonline.com", "update.microsoft.com",
}

var dropReasons = []flowpb.DropReason{
	flowpb.DropReason_POLICY_DENIED, flowpb.DropReason_POLICY_DENIED, flowpb.DropReason_POLICY_DENIED,
	flowpb.DropReason_POLICY_DENIED, flowpb.DropReason_CT_MAP_INSERTION_FAILED, flowpb.DropReason_STALE_OR_UNROUTABLE_IP,
	flowpb.DropReason_INVALID_SOURCE_IP, flowpb.DropReason_UNSUPPORTED_L3_PROTOCOL, flowpb.DropReason_AUTH_REQUIRED,
}

// New returns a generator for cfg.
func New(cfg Config) (*Generator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	g := &Generator{
		cfg:  cfg,
		rng:  rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		now:  cfg.Start,
		byNs: map[string][]*pod{},
	}
	if cfg.Rate > 0 {
		g.step = time.Duration(float64(time.Second) / (cfg.Rate * float64(cfg.Nodes)))
	}
	for i := 0; i < cfg.Nodes; i++ {
		g.nodes = append(g.nodes, fmt.Sprintf("node-%02d", i+1))
	}
	g.buildPods()
	if cfg.ProbeEvery > 0 {
		g.nextProbe = cfg.Start
		g.probeTurn = make([]int, cfg.Nodes)
	}
	return g, nil
}

func (g *Generator) buildPods() {
	r := g.rng
	ident := uint32(10000)
	for nsi, ns := range namespaces {
		n := 4 + r.IntN(10)
		for i := 0; i < n; i++ {
			app := apps[r.IntN(len(apps))]
			if ns == "kube-system" && i == 0 {
				app = "coredns"
			}
			name := fmt.Sprintf("%s-%s", strings.Split(ns, "-")[0], app)
			hash := fmt.Sprintf("%08x", r.Uint32())
			p := &pod{
				ns:       ns,
				app:      name,
				sa:       name,
				node:     r.IntN(len(g.nodes)),
				id:       uint32(100 + r.IntN(4000)),
				identity: ident + uint32(nsi*40+i),
				ports:    []uint32{8080},
			}
			p.name = fmt.Sprintf("%s-%s-%s", name, hash[:6], randSuffix(r))
			p.ip = fmt.Sprintf("10.%d.%d.%d", 100+p.node, r.IntN(250), 2+r.IntN(250))
			if r.IntN(10) == 0 {
				p.ip6 = fmt.Sprintf("fd00:10:%x::%x", 100+p.node, r.IntN(65000)+1)
			}
			switch app {
			case "db":
				p.ports = []uint32{5432}
			case "cache":
				p.ports = []uint32{6379}
			case "coredns":
				p.ports = []uint32{53}
			case "api", "gateway", "frontend", "auth":
				p.ports = []uint32{8080, 443}
				p.http = true
			}
			kind := "Deployment"
			if app == "db" || app == "cache" {
				kind = "StatefulSet"
			}
			p.workload = &flowpb.Workload{Name: name, Kind: kind}
			p.labels = []string{
				"k8s:app=" + name,
				"k8s:app.kubernetes.io/name=" + name,
				"k8s:app.kubernetes.io/part-of=" + strings.Split(ns, "-")[0],
				"k8s:app.kubernetes.io/version=v" + fmt.Sprint(1+r.IntN(4)) + "." + fmt.Sprint(r.IntN(20)),
				"k8s:app.kubernetes.io/managed-by=argocd",
				"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=" + ns,
				"k8s:io.cilium.k8s.namespace.labels.team=" + strings.Split(ns, "-")[0],
				"k8s:io.cilium.k8s.policy.cluster=" + g.cfg.Cluster,
				"k8s:io.cilium.k8s.policy.serviceaccount=" + p.sa,
				"k8s:io.kubernetes.pod.namespace=" + ns,
				"k8s:pod-template-hash=" + hash[:6],
				"k8s:tier=" + []string{"frontend", "backend", "data"}[r.IntN(3)],
			}
			if r.IntN(2) == 0 {
				p.labels = append(p.labels, "k8s:security.bank.example/zone="+[]string{"dmz", "internal", "restricted"}[r.IntN(3)])
			}
			if r.IntN(3) == 0 {
				p.labels = append(p.labels, "k8s:compliance.bank.example/pci=true", "k8s:version=canary")
			}
			slices.Sort(p.labels)
			if app == "coredns" {
				p.labels = []string{
					"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=kube-system",
					"k8s:io.cilium.k8s.policy.cluster=" + g.cfg.Cluster,
					"k8s:io.cilium.k8s.policy.serviceaccount=coredns",
					"k8s:io.kubernetes.pod.namespace=kube-system",
					"k8s:k8s-app=kube-dns",
				}
				p.workload = &flowpb.Workload{Name: "coredns", Kind: "Deployment"}
				g.dns = append(g.dns, p)
			}
			if p.http {
				g.apis = append(g.apis, p)
			}
			g.pods = append(g.pods, p)
			g.byNs[ns] = append(g.byNs[ns], p)
		}
	}
}

func randSuffix(r *rand.Rand) string {
	const letters = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}

// NodeNames returns the flows' node names ("cluster/node").
func (g *Generator) NodeNames() []string {
	out := make([]string, len(g.nodes))
	for i, n := range g.nodes {
		out[i] = g.cfg.Cluster + "/" + n
	}
	return out
}

// Now returns the simulated time of the last event.
func (g *Generator) Now() time.Time { return g.now }

// AppendLine appends the next event as an events.log line.
func (g *Generator) AppendLine(dst []byte) ([]byte, error) {
	ev := g.Next()
	g.last = ev.GetFlow()
	return hubblejson.AppendEventLine(dst, ev)
}

// LastFlow is the flow of the last line AppendLine appended (nil: that line
// was another kind of event). It is valid until the next call.
func (g *Generator) LastFlow() *flowpb.Flow { return g.last }

// tick advances simulated time by an exponential gap, at nanosecond
// precision, sometimes landing on whole milliseconds or microseconds so that
// every timestamp width Hubble prints appears.
func (g *Generator) tick() *timestamppb.Timestamp {
	if g.cfg.ProbeEvery > 0 {
		g.now = g.peek()
		g.peeked = false
	} else if g.step > 0 {
		g.now = g.now.Add(time.Duration(g.rng.ExpFloat64() * float64(g.step)))
	}
	t := g.now
	switch g.rng.IntN(50) {
	case 0:
		t = t.Truncate(time.Second)
	case 1:
		t = t.Truncate(time.Millisecond)
	case 2:
		t = t.Truncate(time.Microsecond)
	}
	return timestamppb.New(t)
}

func (g *Generator) uuid() string {
	a, b := g.rng.Uint64(), g.rng.Uint64()
	a = a&^0xf000 | 0x4000
	b = b&^(0xc<<60) | 0x8<<60
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// Next returns the next event, in simulated time order, leaving out those
// of a node inside one of its outages.
func (g *Generator) Next() *observerpb.ExportEvent {
	for {
		ev := g.next()
		if !g.inOutage(ev) {
			return ev
		}
	}
}

func (g *Generator) inOutage(ev *observerpb.ExportEvent) bool {
	if len(g.cfg.Outages) == 0 {
		return false
	}
	node, t := ev.GetNodeName(), ev.GetTime().AsTime()
	for _, o := range g.cfg.Outages {
		if (node == o.Node || node == g.cfg.Cluster+"/"+o.Node || g.cfg.Cluster+"/"+node == o.Node) &&
			!t.Before(o.From) && t.Before(o.To) {
			return true
		}
	}
	return false
}

// peek is the time of the next regular event, drawn as tick draws it and
// kept for tick.
func (g *Generator) peek() time.Time {
	if !g.peeked {
		g.upcoming = g.now
		if g.step > 0 {
			g.upcoming = g.now.Add(time.Duration(g.rng.ExpFloat64() * float64(g.step)))
		}
		g.peeked = true
	}
	return g.upcoming
}

func (g *Generator) next() *observerpb.ExportEvent {
	if g.cfg.ProbeEvery > 0 && g.nextProbe.Before(g.peek()) {
		if f := g.probe(); f != nil {
			g.n++
			return flowEvent(f)
		}
	}
	g.n++
	if p := g.pending; p != nil {
		g.pending = nil
		p.Time = g.tick()
		p.Uuid = g.uuid()
		return flowEvent(p)
	}
	if e := g.cfg.LostEventEvery; e > 0 && g.rng.IntN(e) == 0 {
		return g.lostEvent()
	}
	if e := g.cfg.AgentEventEvery; e > 0 && g.rng.IntN(e) == 0 {
		return g.agentEvent()
	}
	return flowEvent(g.flow())
}

func flowEvent(f *flowpb.Flow) *observerpb.ExportEvent {
	return &observerpb.ExportEvent{Time: f.Time, NodeName: f.NodeName, ResponseTypes: &observerpb.ExportEvent_Flow{Flow: f}}
}

func (g *Generator) lostEvent() *observerpb.ExportEvent {
	node := g.nodes[g.rng.IntN(len(g.nodes))]
	le := &flowpb.LostEvent{Source: flowpb.LostEventSource_PERF_EVENT_RING_BUFFER, NumEventsLost: uint64(1 + g.rng.IntN(300)), Cpu: wrapperspb.Int32(int32(g.rng.IntN(16)))}
	if g.rng.IntN(3) == 0 {
		le = &flowpb.LostEvent{Source: flowpb.LostEventSource_OBSERVER_EVENTS_QUEUE, NumEventsLost: uint64(1 + g.rng.IntN(5000))}
	}
	return &observerpb.ExportEvent{Time: g.tick(), NodeName: node, ResponseTypes: &observerpb.ExportEvent_LostEvents{LostEvents: le}}
}

func (g *Generator) agentEvent() *observerpb.ExportEvent {
	node := g.nodes[g.rng.IntN(len(g.nodes))]
	p := g.pods[g.rng.IntN(len(g.pods))]
	var ae *flowpb.AgentEvent
	if g.rng.IntN(2) == 0 {
		ae = &flowpb.AgentEvent{Type: flowpb.AgentEventType_IPCACHE_UPSERTED, Notification: &flowpb.AgentEvent_IpcacheUpdate{IpcacheUpdate: &flowpb.IPCacheNotification{
			Cidr: p.ip + "/32", Identity: p.identity, HostIp: fmt.Sprintf("172.18.0.%d", 2+p.node), Namespace: p.ns, PodName: p.name,
		}}}
	} else {
		ae = &flowpb.AgentEvent{Type: flowpb.AgentEventType_ENDPOINT_REGENERATE_SUCCESS, Notification: &flowpb.AgentEvent_EndpointRegenerate{EndpointRegenerate: &flowpb.EndpointRegenNotification{
			Id: uint64(p.id), Labels: p.labels[:2],
		}}}
	}
	return &observerpb.ExportEvent{Time: g.tick(), NodeName: node, ResponseTypes: &observerpb.ExportEvent_AgentEvent{AgentEvent: ae}}
}
