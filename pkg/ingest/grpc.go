package ingest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// GRPCConfig configures a GRPCSource.
type GRPCConfig struct {
	// Address is the server: unix:///var/run/cilium/hubble.sock (the node's
	// agent), grpc://HOST:4244 (an agent's TCP listener, TLS required) or
	// relay://HOST:PORT (Hubble Relay; TLS when TLS.CA is set).
	Address string
	TLS     TLSConfig
	// Node, for Relay, keeps only this node's flows (pushed to Relay as a
	// node_name filter); empty: the whole cluster.
	Node string
	// FieldMask, when not empty, is sent as the request's field_mask: the
	// server then sends only these fields. The caller includes every field
	// its filter reads and its archive keeps, and time, node_name and uuid,
	// so that what is archived does not change.
	FieldMask []string
	// Whitelist and Blacklist, when set, are sent as the request's
	// whitelist and blacklist: the server then sends only the flows they
	// let through (Hubble applies them to the whole flow, before the field
	// mask). The pipeline's own filter decides what is archived whatever
	// the server does; these save the wire only. With Node, each whitelist
	// filter is sent restricted to that node; if one names nodes itself,
	// only the node filter is sent.
	Whitelist, Blacklist []*flowpb.FlowFilter
	// IdleEvery, BatchLines: as FileConfig's. BatchBytes caps the bytes of
	// a batch's messages (default 1 MiB, as a file batch never spans more
	// than its 1 MiB read buffer): what the pipeline and the archive hold
	// per batch follows it. FlushEvery bounds how long a received message
	// waits for a batch to fill (default 100ms).
	IdleEvery  time.Duration
	BatchLines int
	BatchBytes int
	FlushEvery time.Duration
	// RingMessages bounds the messages received and not yet handed over
	// (default 8192).
	RingMessages int
	// StatusEvery is how often the server is asked for its status while
	// a stream is open, to tell a quiet server from a dead one (default 30s).
	StatusEvery time.Duration
	// Archived, when set, lists the flows the archive already holds with a
	// time at or after since: a source resuming from a checkpoint asks the
	// server for the flows since shortly before it, and drops those
	// (hubble-spec §6: Relay sorts only approximately, and re-sends a
	// re-attached agent's flows from the original since).
	Archived func(ctx context.Context, since time.Time, fn func(node, uuid string, timeNs int64)) error
	// BackoffMin and BackoffMax bound the reconnect delay (default 100ms, 30s).
	BackoffMin, BackoffMax time.Duration
}

// TLSConfig is the client side of a TLS connection to Hubble.
type TLSConfig struct {
	CA, Cert, Key string // PEM files; Cert and Key for mTLS
	ServerName    string // default: the address's host
}

// GRPCSource reads flows from Hubble's gRPC API (observer.Observer/GetFlows
// in follow mode). It hands the pipeline each GetFlowsResponse's bytes as
// received (LineBatch.Format FormatProto), so that they are decoded on the
// plan like events.log lines, and keeps, per node, the latest flow time and
// the most its flows were out of time order: the checkpoint it emits.
//
// Exactly once: on (re)connecting it asks for the flows since the earliest
// node's latest time, less the overlap (twice the disorder seen, at least
// 2 s), and drops a flow of a node older than that node's latest less the
// overlap, or within it and already read (by uuid: those read in this run,
// or for a resumed run those the archive holds).
//
// Every gap explained: after a (re)connect, or a node Relay reported in
// error or unavailable, the node is unverified until its first flow: the
// server was asked for flows since before the node's latest, so if it still
// had that flow it sends it again; if its first flow is later, what came
// between (an agent restarted, its ring overrun while no one read it) is a
// stream_down loss from the latest flow to that one, of unknown amount.
// Hubble's own lost_events are handed over as they come.
type GRPCSource struct {
	cfg    GRPCConfig
	id     string
	target string // grpc.NewClient's target
	relay  bool
	tls    *tls.Config
	log    *zap.Logger
	m      *Metrics
	seed   maphash.Seed
}

// CheckGRPCAddress checks a gRPC source's address as NewGRPCSource does,
// without reading any file: withCA says a CA is configured, node is the
// Relay node filter.
func CheckGRPCAddress(addr string, withCA bool, node string) error {
	u, err := url.Parse(addr)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" || u.Host != "" {
			return fmt.Errorf("%q: want unix:///ABSOLUTE/PATH", addr)
		}
		if withCA {
			return fmt.Errorf("%q: the agent's unix socket has no TLS", addr)
		}
	case "grpc", "relay":
		if u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("%q: want %s://HOST:PORT", addr, u.Scheme)
		}
		if u.Scheme == "grpc" && !withCA {
			return fmt.Errorf("%q: an agent's TCP listener needs TLS: give its CA (and a client certificate for mTLS)", addr)
		}
	default:
		return fmt.Errorf("%q: want unix:///PATH, grpc://HOST:PORT or relay://HOST:PORT", addr)
	}
	if node != "" && u.Scheme != "relay" {
		return fmt.Errorf("%q: a node applies to relay:// only (an agent serves its own node)", addr)
	}
	return nil
}

// NewGRPCSource prepares a source for cfg.Address; nothing is dialled until
// Run. The TLS files are read here, so a missing or bad one is refused now.
func NewGRPCSource(cfg GRPCConfig, log *zap.Logger, m *Metrics) (*GRPCSource, error) {
	s := &GRPCSource{cfg: cfg, log: nopLogger(log), m: m, seed: maphash.MakeSeed()}
	if s.m == nil {
		s.m = NewMetrics(nil)
	}
	if s.cfg.BatchLines <= 0 {
		s.cfg.BatchLines = 4096
	}
	if s.cfg.BatchBytes <= 0 {
		s.cfg.BatchBytes = 1 << 20
	}
	if s.cfg.FlushEvery <= 0 {
		s.cfg.FlushEvery = 100 * time.Millisecond
	}
	if s.cfg.RingMessages <= 0 {
		s.cfg.RingMessages = 8192
	}
	if s.cfg.StatusEvery <= 0 {
		s.cfg.StatusEvery = 30 * time.Second
	}
	if s.cfg.BackoffMin <= 0 {
		s.cfg.BackoffMin = 100 * time.Millisecond
	}
	if s.cfg.BackoffMax <= 0 {
		s.cfg.BackoffMax = 30 * time.Second
	}
	if err := CheckGRPCAddress(cfg.Address, cfg.TLS.CA != "", cfg.Node); err != nil {
		return nil, fmt.Errorf("ingest: gRPC source: %w", err)
	}
	u, _ := url.Parse(cfg.Address)
	host := u.Hostname()
	if u.Scheme == "unix" {
		s.target = "unix://" + u.Path
	} else {
		s.target = "dns:///" + u.Host
		s.relay = u.Scheme == "relay"
	}
	if cfg.TLS.CA != "" {
		var err error
		if s.tls, err = clientTLS(cfg.TLS, host); err != nil {
			return nil, fmt.Errorf("ingest: gRPC source %q: %w", cfg.Address, err)
		}
	} else if cfg.TLS.Cert != "" || cfg.TLS.Key != "" {
		return nil, fmt.Errorf("ingest: gRPC source %q: a client certificate needs the server's CA", cfg.Address)
	}
	s.id = "grpc:" + cfg.Address
	if cfg.Node != "" {
		s.id += "#" + cfg.Node
	}
	return s, nil
}

func clientTLS(c TLSConfig, host string) (*tls.Config, error) {
	pem, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("TLS CA %s: no PEM certificate", c.CA)
	}
	t := &tls.Config{RootCAs: pool, ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if t.ServerName == "" {
		t.ServerName = host
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, errors.New("TLS: give both the client certificate and its key")
	}
	if c.Cert != "" {
		// Read on every handshake: the certificates Cilium's Helm chart
		// mounts are rotated in place.
		if _, err := tls.LoadX509KeyPair(c.Cert, c.Key); err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		t.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
			return &cert, err
		}
	}
	return t, nil
}

// ID is "grpc:<address>" (with "#<node>" for a Relay source of one node).
func (s *GRPCSource) ID() string { return s.id }

// grpcPos is a gRPC source's checkpoint position.
type grpcPos struct {
	Nodes map[string]nodePos `json:"nodes,omitempty"`
}

type nodePos struct {
	Latest   int64 `json:"t"`           // latest flow time (ns)
	Disorder int64 `json:"d,omitempty"` // most a flow lagged behind the latest before it (ns)
	// Why and WhyAt: the node was unverified (Relay reported it in error,
	// the stream failed) when the checkpoint was taken: the gap its next
	// flow may show started then, for that reason, not at the restart.
	Why   string `json:"why,omitempty"`
	WhyAt int64  `json:"at,omitempty"`
}

// minOverlap is the least overlap a resume asks for before a node's latest
// flow: Relay releases flows from its sort buffer after a second without
// input (hubble-spec §6.3), so a node's flows can be that much out of order.
const minOverlap = 2 * time.Second

// nodeState is what the source knows of one node.
type nodeState struct {
	name     string
	latest   int64 // latest flow time (ns)
	disorder int64
	// unverified: since a (re)connect or a Relay error, the node's first
	// flow tells whether the server still had what came after latest
	// (why: the event that made it so).
	unverified bool
	why        string
	whyAt      int64
	// dedupe: during an overlap, the flows read in it, by uuid hash.
	overlapUntil int64 // flows up to this time are checked (ns); 0: none
}

// recentFlow is one flow read, kept for the overlap of a reconnect.
type recentFlow struct {
	node   *nodeState
	timeNs int64
	hash   uint64
}

// grpcRun is the state of one Run, owned by the emitting goroutine but
// for since, which the receiving goroutine reads under mu.
type grpcRun struct {
	s     *GRPCSource
	ring  *msgRing
	emit  func(*LineBatch) error
	nodes map[string]*nodeState
	// recent is a ring of the flows last read (node, time, uuid hash), from
	// which a reconnect's overlap set is built; seen is that set.
	recent     []recentFlow
	recentNext int
	seen       map[uint64]struct{}
	lb         LineBatch
	env        envelope
	mu         sync.Mutex
	since      time.Time // what a reconnect asks for (zero: the server's whole ring)
	lastEmit   time.Time
	dups       uint64
	// atStart: no message yet on the current stream. held: a copy of the
	// agent's ring lost event of 1 that opened the stream, until the next
	// flow shows whether it lost anything (see seekLost).
	atStart   bool
	held      []byte
	holding   bool
	artefacts uint64
}

// recentFlows is the most flows the overlap of a reconnect can check by
// uuid: 2 s of Relay's overlap at 128k flows/s. The ring starts at
// recentFlowsMin and doubles when the flow it would overwrite is still
// inside its node's overlap, so that a node's memory follows its rate.
const (
	recentFlows    = 1 << 18
	recentFlowsMin = 1 << 12
)

// Run streams from the server until ctx is done; see Source.
func (s *GRPCSource) Run(ctx context.Context, from flow.Checkpoint, emit func(*LineBatch) error) error {
	if from.Source != "" && from.Source != s.id {
		return fmt.Errorf("ingest: %s: checkpoint of another source %q", s.id, from.Source)
	}
	var pos grpcPos
	if from.Position != "" {
		if err := json.Unmarshal([]byte(from.Position), &pos); err != nil {
			return fmt.Errorf("ingest: %s: bad checkpoint %q: %w", s.id, from.Position, err)
		}
	}
	run := &grpcRun{
		s: s, emit: emit, nodes: map[string]*nodeState{},
		ring:   newMsgRing(s.cfg.RingMessages, s.cfg.BatchLines),
		recent: make([]recentFlow, recentFlowsMin), seen: map[uint64]struct{}{},
	}
	run.lb.Format = FormatProto
	for name, p := range pos.Nodes {
		run.nodes[name] = &nodeState{name: name, latest: p.Latest, disorder: p.Disorder, why: p.Why, whyAt: p.WhyAt}
	}
	if len(run.nodes) > 0 {
		run.since = run.resumeSince()
		if s.cfg.Archived != nil {
			// The flows the archive holds in the overlap: a resumed run
			// has no memory of its own.
			err := s.cfg.Archived(ctx, run.since, func(node, uuid string, t int64) {
				if n := run.nodes[node]; n != nil && t >= n.latest-overlap(n) {
					run.seen[maphash.String(s.seed, uuid)] = struct{}{}
				}
			})
			if err != nil {
				return fmt.Errorf("ingest: %s: read the archive's flows since %s: %w", s.id, run.since.UTC().Format(time.RFC3339Nano), err)
			}
		}
		for _, n := range run.nodes {
			if n.why != "" {
				if !strings.HasSuffix(n.why, "; then the collector restarted") {
					n.why += "; then the collector restarted"
				}
			} else {
				n.why, n.whyAt = "the collector restarted", time.Now().UnixNano()
			}
			n.unverified = true
			n.overlapUntil = n.latest
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); run.receive(rctx) }()
	err := run.emitLoop(ctx)
	cancel()
	wg.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// overlap is how far before a node's latest flow a resume asks, and
// checks by uuid.
func overlap(n *nodeState) int64 { return max(2*n.disorder, int64(minOverlap)) }

// resumeSince is the time a (re)connect asks flows from: the earliest
// node's latest flow less its overlap (mu held or before the receiver runs).
func (run *grpcRun) resumeSince() time.Time {
	var since int64
	for _, n := range run.nodes {
		if n.latest == 0 {
			continue
		}
		if t := n.latest - overlap(n); since == 0 || t < since {
			since = t
		}
	}
	if since == 0 {
		return time.Time{}
	}
	return time.Unix(0, since)
}

// receive connects, streams into the ring and reconnects with backoff until
// ctx is done.
func (run *grpcRun) receive(ctx context.Context) {
	s := run.s
	backoff := s.cfg.BackoffMin
	for ctx.Err() == nil {
		start := time.Now()
		err := run.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		s.m.grpcUp.WithLabelValues(s.id).Set(0)
		s.m.grpcReconnects.WithLabelValues(s.id).Inc()
		if !run.ring.put(ctx, ctlDown, err.Error(), time.Now().UnixNano()) {
			return
		}
		if time.Since(start) > s.cfg.BackoffMax {
			backoff = s.cfg.BackoffMin // it ran a while: a new failure
		}
		wait := time.Duration(rand.Int64N(int64(backoff))) + backoff/2 // jitter
		s.log.Warn("ingest: gRPC stream failed; reconnecting", zap.String("source", s.id), zap.Error(err), zap.Duration("in", wait))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, s.cfg.BackoffMax)
	}
}

// stream runs one connection: it returns why it ended.
func (run *grpcRun) stream(ctx context.Context) error {
	s := run.s
	creds := insecure.NewCredentials()
	if s.tls != nil {
		creds = credentials.NewTLS(s.tls)
	}
	conn, err := grpc.NewClient(s.target, s.dialOptions(creds)...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", s.cfg.Address, err)
	}
	defer conn.Close()
	client := observerpb.NewObserverClient(conn)
	var live sync.WaitGroup
	defer live.Wait() // after cancel: the gauge is not set up after the stream ended
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if !s.relay {
		if err := run.awaitFlows(sctx, client); err != nil {
			return streamErr(sctx, err)
		}
	}
	run.mu.Lock()
	since := run.since
	run.mu.Unlock()
	req := s.request(since)
	st, err := conn.NewStream(sctx, &grpc.StreamDesc{StreamName: "GetFlows", ServerStreams: true},
		"/observer.Observer/GetFlows", grpc.ForceCodecV2(rawCodec{}))
	if err != nil {
		return streamErr(sctx, fmt.Errorf("GetFlows on %s: %w", s.cfg.Address, err))
	}
	if err := st.SendMsg(req); err != nil {
		return streamErr(sctx, fmt.Errorf("GetFlows on %s: %w", s.cfg.Address, err))
	}
	if err := st.CloseSend(); err != nil {
		return streamErr(sctx, fmt.Errorf("GetFlows on %s: %w", s.cfg.Address, err))
	}
	// Liveness: a stream with nothing to say and a dead server look alike;
	// the server answers ServerStatus or the stream is given up. Cilium's
	// GetFlows sends its headers with its first response, which a quiet
	// server may not send for long: the stream is up once the server has
	// answered ServerStatus on the same connection (an agent's before the
	// stream opened: awaitFlows), or has sent a message.
	live.Add(1)
	go func() {
		defer live.Done()
		status := func() bool {
			c, done := context.WithTimeout(sctx, s.cfg.StatusEvery/2)
			_, err := client.ServerStatus(c, &observerpb.ServerStatusRequest{})
			done()
			if err != nil && sctx.Err() == nil {
				cancel(fmt.Errorf("server status: %w", err))
			}
			return err == nil && sctx.Err() == nil
		}
		if s.relay {
			if !status() {
				return
			}
			s.m.grpcUp.WithLabelValues(s.id).Set(1)
		}
		t := time.NewTicker(s.cfg.StatusEvery)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			if !status() {
				return
			}
		}
	}()
	first := true
	for {
		slot, ok := run.ring.slot(sctx)
		if !ok {
			return streamErr(sctx, sctx.Err())
		}
		slot.ctl = ctlNone
		rm := rawMsg{slot: slot}
		if err := st.RecvMsg(&rm); err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("the server ended the stream")
			}
			return streamErr(sctx, fmt.Errorf("GetFlows on %s: %w", s.cfg.Address, err))
		}
		if first {
			// Up once the server answers: a control slot before the first
			// message (the message's slot is taken back first).
			first = false
			data, msg := slot.data, slot.buf
			slot.data, slot.buf = nil, nil
			if !run.ring.put(sctx, ctlUp, "", time.Now().UnixNano()) {
				data.Free()
				return streamErr(sctx, sctx.Err())
			}
			s.m.grpcUp.WithLabelValues(s.id).Set(1)
			slot, ok = run.ring.slot(sctx)
			if !ok {
				data.Free()
				return streamErr(sctx, sctx.Err())
			}
			slot.ctl, slot.data, slot.buf = ctlNone, data, msg
		}
		run.ring.publish()
	}
}

// emptyRingPoll is how often an agent whose ring is empty is asked again.
const emptyRingPoll = 100 * time.Millisecond

// awaitFlows returns once the agent's ring holds a flow, the stream then up
// (ServerStatus answered). Cilium's observer seeks a since from its ring's
// last write less two (LastWriteParallel in pkg/hubble/container/ring.go,
// v1.18), which on an empty ring wraps around: the reader then waits until
// the writer has filled the ring but for one slot, reports the ring's last
// two slots as lost (two ring-buffer lost events of 1, for flows it hands
// over later), and reads from the ring's first slot, a whole ring behind
// the writer. A fresh agent (restarted, or its first start) has an empty
// ring; with one flow in it the seek starts at that flow. Flows written
// meanwhile wait in the ring; the stream asks for them with since.
func (run *grpcRun) awaitFlows(ctx context.Context, client observerpb.ObserverClient) error {
	s := run.s
	for waited := false; ; waited = true {
		c, done := context.WithTimeout(ctx, s.cfg.StatusEvery/2)
		st, err := client.ServerStatus(c, &observerpb.ServerStatusRequest{})
		done()
		if err != nil {
			return fmt.Errorf("server status of %s: %w", s.cfg.Address, err)
		}
		s.m.grpcUp.WithLabelValues(s.id).Set(1)
		if st.GetNumFlows() > 0 {
			if waited {
				s.log.Info("ingest: the agent's ring holds a flow: opening the stream", zap.String("source", s.id))
			}
			return nil
		}
		if !waited {
			s.log.Info("ingest: the agent's ring is empty (a fresh agent): the stream opens once it holds a flow",
				zap.String("source", s.id))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(emptyRingPoll):
		}
	}
}

// request is the GetFlows request of a stream asking for the flows since
// since (zero: all the server holds).
func (s *GRPCSource) request(since time.Time) *observerpb.GetFlowsRequest {
	req := &observerpb.GetFlowsRequest{Follow: true, Whitelist: s.cfg.Whitelist, Blacklist: s.cfg.Blacklist}
	if since.IsZero() {
		// Everything the server's ring holds, then what comes.
		req.Since = timestamppb.New(time.Unix(1, 0))
	} else {
		req.Since = timestamppb.New(since)
	}
	if s.cfg.Node != "" {
		req.Whitelist = nodeWhitelist(s.cfg.Node, s.cfg.Whitelist)
	}
	if len(s.cfg.FieldMask) > 0 {
		req.FieldMask = &fieldmaskpb.FieldMask{Paths: s.cfg.FieldMask}
	}
	return req
}

// nodeWhitelist is allow restricted to node's flows: filters are ORed and
// a filter's fields ANDed, so each filter gets the node. A filter that
// names nodes of its own cannot take another node list; the node alone is
// then sent, which lets through more than allow, never less.
func nodeWhitelist(node string, allow []*flowpb.FlowFilter) []*flowpb.FlowFilter {
	only := []*flowpb.FlowFilter{{NodeName: []string{node}}}
	out := make([]*flowpb.FlowFilter, 0, len(allow))
	for _, f := range allow {
		if len(f.GetNodeName()) > 0 {
			return only
		}
		c := proto.Clone(f).(*flowpb.FlowFilter)
		c.NodeName = []string{node}
		out = append(out, c)
	}
	if len(out) == 0 {
		return only
	}
	return out
}

// streamErr prefers the cause the liveness check gave for cancelling.
func streamErr(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

// rawMsg receives one message's bytes into a ring slot.
type rawMsg struct{ slot *ringSlot }

// rawCodec marshals requests with proto and hands responses over as bytes:
// the pipeline decodes them on its plan, once.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("ingest: cannot marshal %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	r, ok := v.(*rawMsg)
	if !ok {
		return fmt.Errorf("ingest: cannot unmarshal into %T", v)
	}
	r.slot.hold(data)
	return nil
}
