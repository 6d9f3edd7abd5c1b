package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// fakeObserver serves GetFlows from a list of responses, as an agent or
// Relay does: since selects by time, follow waits for more. fail makes the
// stream after n responses fail.
type fakeObserver struct {
	observerpb.UnimplementedObserverServer
	mu      sync.Mutex
	resps   []*observerpb.GetFlowsResponse
	more    chan struct{}
	failAt  int // fail the current stream after sending this many (0: never)
	streams int
	// statuses counts the ServerStatus calls.
	statuses int
	sinces   []time.Time
}

func (o *fakeObserver) add(rs ...*observerpb.GetFlowsResponse) {
	o.mu.Lock()
	o.resps = append(o.resps, rs...)
	o.mu.Unlock()
	select {
	case o.more <- struct{}{}:
	default:
	}
}

func (o *fakeObserver) GetFlows(req *observerpb.GetFlowsRequest, srv observerpb.Observer_GetFlowsServer) error {
	o.mu.Lock()
	o.streams++
	o.sinces = append(o.sinces, req.GetSince().AsTime())
	failAt := o.failAt
	o.failAt = 0
	o.mu.Unlock()
	sent, i := 0, 0
	for {
		o.mu.Lock()
		rs := o.resps[i:]
		o.mu.Unlock()
		for _, r := range rs {
			i++
			if f := r.GetFlow(); f != nil && req.GetSince() != nil && f.GetTime().AsTime().Before(req.GetSince().AsTime()) {
				continue
			}
			if err := srv.Send(r); err != nil {
				return err
			}
			if sent++; failAt > 0 && sent == failAt {
				return errors.New("injected failure")
			}
		}
		select {
		case <-srv.Context().Done():
			return nil
		case <-o.more:
		}
	}
}

// ServerStatus reports the responses it holds as the ring's flows.
func (o *fakeObserver) ServerStatus(context.Context, *observerpb.ServerStatusRequest) (*observerpb.ServerStatusResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.statuses++
	return &observerpb.ServerStatusResponse{NumFlows: uint64(len(o.resps))}, nil
}

// serve starts o on a unix socket and returns its address.
func serve(t *testing.T, o *fakeObserver) (string, func()) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hubble.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	observerpb.RegisterObserverServer(srv, o)
	go func() { _ = srv.Serve(ln) }()
	return "unix://" + sock, srv.Stop
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// TestGRPCSourceRestartedServerWithAnEarlierFlow: a restarted agent whose
// first flow is stamped before the latest read from its predecessor (flows
// are out of order) has still lost what followed that latest flow: the gap
// is recorded once a later flow arrives, and spans the early flow too.
func TestGRPCSourceRestartedServerWithAnEarlierFlow(t *testing.T) {
	o := &fakeObserver{more: make(chan struct{}, 1)}
	o.add(flowsOf("c/n1", 0, 100)...)
	addr, stop := serve(t, o)
	src := newTestSource(t, addr, nil)
	var c streamed
	runUntil(t, src, flow.Checkpoint{}, &c, 100)
	stop()
	// The new ring: a flow stamped at flow 50's time, never read, then
	// flows from 101 on (flow 100, the old ring's newest, is lost).
	early := flowResp("c/n1", 50)
	early.GetFlow().Uuid = "c/n1-early"
	o2 := &fakeObserver{more: make(chan struct{}, 1)}
	o2.add(append([]*observerpb.GetFlowsResponse{early}, flowsOf("c/n1", 101, 200)...)...)
	sock := addr[len("unix://"):]
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	observerpb.RegisterObserverServer(srv, o2)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	src2 := newTestSource(t, addr, map[string]int{})
	var c2 streamed
	runUntil(t, src2, c.cp, &c2, 100)
	if len(c2.uuids) != 100 || len(c2.losses) != 1 {
		t.Fatalf("%d flows, losses %+v", len(c2.uuids), c2.losses)
	}
	l := c2.losses[0]
	lost := flowResp("c/n1", 100).GetFlow().GetTime().AsTime()
	if l.Reason != flow.LossStreamDown || l.From.After(lost) || l.To.Before(lost) {
		t.Errorf("gap %+v: want a stream_down gap holding flow 100's time %v", l, lost)
	}
}

func flowResp(node string, i int) *observerpb.GetFlowsResponse {
	ts := timestamppb.New(t0.Add(time.Duration(i) * 10 * time.Millisecond))
	return &observerpb.GetFlowsResponse{NodeName: node, Time: ts, ResponseTypes: &observerpb.GetFlowsResponse_Flow{Flow: &flowpb.Flow{
		Time: ts, NodeName: node, Uuid: fmt.Sprintf("%s-%06d", node, i), Verdict: flowpb.Verdict_FORWARDED,
	}}}
}

func flowsOf(node string, from, to int) []*observerpb.GetFlowsResponse {
	var out []*observerpb.GetFlowsResponse
	for i := from; i < to; i++ {
		out = append(out, flowResp(node, i))
	}
	return out
}

// collect runs src until want flows (distinct or not) arrived, and returns
// the uuids in order, the losses and the last checkpoint.
type streamed struct {
	mu     sync.Mutex
	uuids  []string
	losses []flow.Loss
	cp     flow.Checkpoint
	nodes  []string
	lost   []uint64 // the lost events handed over, by count
}

func (c *streamed) emit(lb *LineBatch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if lb.Format != FormatProto && len(lb.Lines) > 0 {
		return errors.New("not protobuf")
	}
	for _, l := range lb.Lines {
		var r observerpb.GetFlowsResponse
		if err := proto.Unmarshal(l, &r); err != nil {
			return err
		}
		if f := r.GetFlow(); f != nil {
			c.uuids = append(c.uuids, f.GetUuid())
		}
		if le := r.GetLostEvents(); le != nil {
			c.lost = append(c.lost, le.GetNumEventsLost())
		}
	}
	c.losses = append(c.losses, lb.Losses...)
	if lb.Checkpoint.Source != "" {
		c.cp = lb.Checkpoint
	}
	if len(lb.Nodes) > 0 {
		c.nodes = slices.Clone(lb.Nodes)
	}
	return nil
}

func (c *streamed) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.uuids)
}

func runUntil(t *testing.T, src *GRPCSource, from flow.Checkpoint, c *streamed, want int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, from, c.emit) }()
	deadline := time.Now().Add(10 * time.Second)
	for c.count() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond) // anything more would show
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if c.count() < want {
		t.Fatalf("%d flows, want %d", c.count(), want)
	}
}

func newTestSource(t *testing.T, addr string, archived map[string]int) *GRPCSource {
	t.Helper()
	cfg := GRPCConfig{Address: addr, FlushEvery: 10 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	if archived != nil {
		cfg.Archived = func(_ context.Context, since time.Time, fn func(node, uuid string, t int64)) error {
			for u, i := range archived {
				r := flowResp("c/n1", i)
				if !r.GetFlow().GetTime().AsTime().Before(since) {
					fn("c/n1", u, r.GetFlow().GetTime().AsTime().UnixNano())
				}
			}
			return nil
		}
	}
	src, err := NewGRPCSource(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestGRPCSourceResumesExactlyOnce: a stream read to its end; then a run
// resumed from its checkpoint, against a server that still has those flows
// and more, reads each of the new ones once, drops the ones the archive
// holds (asked for since shortly before the latest), and records no gap.
func TestGRPCSourceResumesExactlyOnce(t *testing.T) {
	o := &fakeObserver{more: make(chan struct{}, 1)}
	o.add(flowsOf("c/n1", 0, 1000)...)
	addr, stop := serve(t, o)
	defer stop()
	src := newTestSource(t, addr, nil)
	var c streamed
	runUntil(t, src, flow.Checkpoint{}, &c, 1000)
	if len(c.uuids) != 1000 || len(c.losses) != 0 || len(c.nodes) != 1 || c.nodes[0] != "c/n1" {
		t.Fatalf("%d flows, losses %+v, nodes %v", len(c.uuids), c.losses, c.nodes)
	}
	o.add(flowsOf("c/n1", 1000, 1500)...)
	archived := map[string]int{}
	for i := 0; i < 1000; i++ {
		archived[fmt.Sprintf("c/n1-%06d", i)] = i
	}
	src2 := newTestSource(t, addr, archived)
	var c2 streamed
	runUntil(t, src2, c.cp, &c2, 500)
	want := make([]string, 0, 500)
	for i := 1000; i < 1500; i++ {
		want = append(want, fmt.Sprintf("c/n1-%06d", i))
	}
	if !slices.Equal(c2.uuids, want) || len(c2.losses) != 0 {
		t.Fatalf("resumed run: %d flows (first %v), losses %+v", len(c2.uuids), c2.uuids[:min(3, len(c2.uuids))], c2.losses)
	}
	o.mu.Lock()
	since := o.sinces[len(o.sinces)-1]
	o.mu.Unlock()
	latest := flowResp("c/n1", 999).GetFlow().GetTime().AsTime()
	if !since.Equal(latest.Add(-minOverlap)) {
		t.Errorf("resumed from %v, want the latest flow %v less %v", since, latest, minOverlap)
	}
}

// TestGRPCSourceReportsWhatTheServerNoLongerHad: the server lost its ring
// (an agent restarted) while no one read it: the first flow after resuming
// is later than the latest read, and what came between is a stream_down
// gap of unknown amount bounded by the two flows.
func TestGRPCSourceReportsWhatTheServerNoLongerHad(t *testing.T) {
	o := &fakeObserver{more: make(chan struct{}, 1)}
	o.add(flowsOf("c/n1", 0, 100)...)
	addr, stop := serve(t, o)
	src := newTestSource(t, addr, nil)
	var c streamed
	runUntil(t, src, flow.Checkpoint{}, &c, 100)
	stop()
	// The agent restarts: a new ring, flows from 300 on (100-299 lost).
	o2 := &fakeObserver{more: make(chan struct{}, 1)}
	o2.add(flowsOf("c/n1", 300, 400)...)
	sock := addr[len("unix://"):]
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	observerpb.RegisterObserverServer(srv, o2)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	src2 := newTestSource(t, addr, map[string]int{})
	var c2 streamed
	runUntil(t, src2, c.cp, &c2, 100)
	if len(c2.uuids) != 100 || len(c2.losses) != 1 {
		t.Fatalf("%d flows, losses %+v", len(c2.uuids), c2.losses)
	}
	l := c2.losses[0]
	if l.Reason != flow.LossStreamDown || l.Amount != flow.AmountUnknown || l.Node != "c/n1" || !l.Bounded ||
		!l.From.Equal(flowResp("c/n1", 99).GetFlow().GetTime().AsTime()) || !l.To.Equal(flowResp("c/n1", 300).GetFlow().GetTime().AsTime()) {
		t.Errorf("gap %+v: want from flow 99 to flow 300", l)
	}
}

// TestGRPCSourceReconnectsWithoutDuplicates: the stream fails in the
// middle; the source reconnects, the server sends again from since, and
// each flow is handed over once, with no gap (the server still had them).
func TestGRPCSourceReconnectsWithoutDuplicates(t *testing.T) {
	o := &fakeObserver{more: make(chan struct{}, 1), failAt: 600}
	o.add(flowsOf("c/n1", 0, 1000)...)
	addr, stop := serve(t, o)
	defer stop()
	src := newTestSource(t, addr, nil)
	var c streamed
	runUntil(t, src, flow.Checkpoint{}, &c, 1000)
	seen := map[string]int{}
	for _, u := range c.uuids {
		seen[u]++
	}
	if len(c.uuids) != 1000 || len(seen) != 1000 || len(c.losses) != 0 {
		t.Fatalf("%d flows, %d distinct, losses %+v", len(c.uuids), len(seen), c.losses)
	}
	o.mu.Lock()
	streams := o.streams
	o.mu.Unlock()
	if streams < 2 {
		t.Fatalf("%d streams: the failure was not injected", streams)
	}
}

// TestGRPCSourceRelayNodeErrors: Relay reports a node in error; when it
// re-attaches the agent it sends its flows again from the original since:
// those read before are dropped; the other node is unaffected; a node
// whose agent came back without the flows after its latest has a gap.
func TestGRPCSourceRelayNodeErrors(t *testing.T) {
	o := &fakeObserver{more: make(chan struct{}, 1)}
	status := func(state relaypb.NodeState, nodes ...string) *observerpb.GetFlowsResponse {
		return &observerpb.GetFlowsResponse{NodeName: "relay", Time: timestamppb.Now(), ResponseTypes: &observerpb.GetFlowsResponse_NodeStatus{
			NodeStatus: &relaypb.NodeStatusEvent{StateChange: state, NodeNames: nodes, Message: "connection refused"}}}
	}
	o.add(status(relaypb.NodeState_NODE_CONNECTED, "c/a", "c/b"))
	var all []*observerpb.GetFlowsResponse
	for i := 0; i < 200; i++ {
		all = append(all, flowResp("c/a", i), flowResp("c/b", i))
	}
	o.add(all...)
	o.add(status(relaypb.NodeState_NODE_ERROR, "c/a"), status(relaypb.NodeState_NODE_ERROR, "c/b"))
	// c/a re-attached with its ring: from the original since again, then
	// new flows; c/b's agent restarted: only later flows.
	o.add(flowsOf("c/a", 0, 300)...)
	o.add(flowsOf("c/b", 250, 300)...)
	addr, stop := serve(t, o)
	defer stop()
	if _, err := NewGRPCSource(GRPCConfig{Address: "relay://" + addr[len("unix://"):], FlushEvery: 10 * time.Millisecond}, nil, nil); err == nil {
		t.Fatalf("a relay:// address of a socket path accepted")
	}
	src := newTestSource(t, addr, nil) // the same stream over the socket
	var c streamed
	runUntil(t, src, flow.Checkpoint{}, &c, 550)
	seen := map[string]int{}
	for _, u := range c.uuids {
		seen[u]++
	}
	if len(c.uuids) != 550 || len(seen) != 550 {
		t.Fatalf("%d flows, %d distinct: want 300 of c/a and 250 of c/b, once", len(c.uuids), len(seen))
	}
	if len(c.losses) != 1 || c.losses[0].Node != "c/b" || !c.losses[0].To.Equal(flowResp("c/b", 250).GetFlow().GetTime().AsTime()) {
		t.Fatalf("losses %+v: want c/b's gap to flow 250", c.losses)
	}
}

// TestGRPCSourceRequest: the filters and mask pushed down are sent as
// given; with a Relay node, every whitelist filter is restricted to it,
// or, when one names nodes itself, the node alone is sent.
func TestGRPCSourceRequest(t *testing.T) {
	allow := []*flowpb.FlowFilter{{SourcePod: []string{"kube-system/"}}, {Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}}
	deny := []*flowpb.FlowFilter{{DestinationPort: []string{"53"}}}
	since := t0.Add(time.Minute)
	for _, tc := range []struct {
		node  string
		allow []*flowpb.FlowFilter
		want  []*flowpb.FlowFilter
	}{
		{"", nil, nil},
		{"", allow, allow},
		{"c/a", nil, []*flowpb.FlowFilter{{NodeName: []string{"c/a"}}}},
		{"c/a", allow, []*flowpb.FlowFilter{{SourcePod: []string{"kube-system/"}, NodeName: []string{"c/a"}}, {Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}, NodeName: []string{"c/a"}}}},
		{"c/a", append(slices.Clone(allow), &flowpb.FlowFilter{NodeName: []string{"c/*"}}), []*flowpb.FlowFilter{{NodeName: []string{"c/a"}}}},
	} {
		addr := "relay://127.0.0.1:4245"
		src, err := NewGRPCSource(GRPCConfig{Address: addr, Node: tc.node, Whitelist: tc.allow, Blacklist: deny, FieldMask: []string{"time", "node_name", "uuid", "verdict"}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		req := src.request(since)
		want := &observerpb.GetFlowsRequest{Follow: true, Since: timestamppb.New(since), Whitelist: tc.want, Blacklist: deny}
		want.FieldMask = req.FieldMask
		if !proto.Equal(req, want) || !slices.Equal(req.GetFieldMask().GetPaths(), []string{"time", "node_name", "uuid", "verdict"}) {
			t.Errorf("node %q, allow %v: request %v, want %v", tc.node, tc.allow, req, want)
		}
	}
	if proto.Equal(allow[0], &flowpb.FlowFilter{SourcePod: []string{"kube-system/"}, NodeName: []string{"c/a"}}) {
		t.Errorf("the configured filter was modified")
	}
}

// TestGRPCSourceGapNamesRelaysReports: Relay reports a node in error and
// the collector restarts before the node's next flow: the checkpoint keeps
// why the node was unverified, and the gap its next flow shows names
// Relay's NODE_ERROR from before the restart and its NODE_UNAVAILABLE
// after it, dated from the first.
func TestGRPCSourceGapNamesRelaysReports(t *testing.T) {
	status := func(state relaypb.NodeState, nodes ...string) *observerpb.GetFlowsResponse {
		return &observerpb.GetFlowsResponse{NodeName: "relay", Time: timestamppb.Now(), ResponseTypes: &observerpb.GetFlowsResponse_NodeStatus{
			NodeStatus: &relaypb.NodeStatusEvent{StateChange: state, NodeNames: nodes, Message: "connection refused"}}}
	}
	o := &fakeObserver{more: make(chan struct{}, 1)}
	o.add(flowsOf("c/n1", 0, 100)...)
	o.add(status(relaypb.NodeState_NODE_ERROR, "c/n1"))
	addr, stop := serve(t, o)
	src := newTestSource(t, addr, nil)
	var c streamed
	before := time.Now()
	runUntil(t, src, flow.Checkpoint{}, &c, 100)
	stop()
	if !strings.Contains(c.cp.Position, "NODE_ERROR") {
		t.Fatalf("checkpoint %s: want the node's NODE_ERROR", c.cp.Position)
	}
	o2 := &fakeObserver{more: make(chan struct{}, 1)}
	o2.add(status(relaypb.NodeState_NODE_UNAVAILABLE, "c/n1"))
	o2.add(flowsOf("c/n1", 300, 400)...)
	addr2, stop2 := serve(t, o2)
	defer stop2()
	src2 := newTestSource(t, addr2, map[string]int{})
	src2.id = src.id
	var c2 streamed
	restarted := time.Now()
	runUntil(t, src2, c.cp, &c2, 100)
	if len(c2.losses) != 1 {
		t.Fatalf("losses %+v", c2.losses)
	}
	l := c2.losses[0]
	for _, want := range []string{"Relay reported NODE_ERROR: connection refused", "then the collector restarted", "Relay reported NODE_UNAVAILABLE"} {
		if !strings.Contains(l.Detail, want) {
			t.Errorf("gap detail %q: want %q", l.Detail, want)
		}
	}
	if l.Time.Before(before) || !l.Time.Before(restarted) {
		t.Errorf("gap detected at %v: want Relay's report, between %v and %v", l.Time, before, restarted)
	}
}

// ringSeekLost is the lost event Cilium's agent-side observer opens a
// stream with when asked for a since older than every flow of its full
// ring (newRingReader): 1 slot of its ring buffer.
func ringSeekLost() *observerpb.GetFlowsResponse {
	return &observerpb.GetFlowsResponse{NodeName: "c/n1", Time: timestamppb.New(t0), ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{
		LostEvents: &flowpb.LostEvent{Source: flowpb.LostEventSource_HUBBLE_RING_BUFFER, NumEventsLost: 1}}}
}

// restartOn serves a new fakeObserver with rs on the socket of addr; the
// function returned stops it.
func restartOn(t *testing.T, addr string, rs ...*observerpb.GetFlowsResponse) func() {
	t.Helper()
	o := &fakeObserver{more: make(chan struct{}, 1)}
	o.add(rs...)
	ln, err := net.Listen("unix", addr[len("unix://"):])
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	observerpb.RegisterObserverServer(srv, o)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return srv.Stop
}

// TestGRPCSourceRingSeekLostEvent: a stream that opens with the agent's
// ring-buffer lost event of 1 is settled by its first flow. Followed by a
// flow read before, the event lost nothing (the overwritten slot was
// older, and read) and is dropped; followed by a new flow, it is handed
// over as Hubble reported it, beside the stream_down gap.
func TestGRPCSourceRingSeekLostEvent(t *testing.T) {
	o := &fakeObserver{more: make(chan struct{}, 1)}
	o.add(flowsOf("c/n1", 0, 300)...)
	addr, stop := serve(t, o)
	src := newTestSource(t, addr, nil)
	var c streamed
	runUntil(t, src, flow.Checkpoint{}, &c, 300)
	stop()

	// The ring still holds flows read before (150-299): nothing was lost.
	stop = restartOn(t, addr, append([]*observerpb.GetFlowsResponse{ringSeekLost()}, flowsOf("c/n1", 150, 450)...)...)
	archived := map[string]int{}
	for i := 0; i < 300; i++ {
		archived[fmt.Sprintf("c/n1-%06d", i)] = i
	}
	var c2 streamed
	runUntil(t, newTestSource(t, addr, archived), c.cp, &c2, 150)
	if len(c2.uuids) != 150 || c2.uuids[0] != "c/n1-000300" || len(c2.lost) != 0 || len(c2.losses) != 0 {
		t.Fatalf("%d flows (first %v), lost events %v, losses %+v: want flows 300-449 and no loss", len(c2.uuids), c2.uuids[:min(1, len(c2.uuids))], c2.lost, c2.losses)
	}

	stop()
	// The ring no longer holds them (450-599 never read): Hubble's 1 is
	// handed over, and the stream_down gap spans what was lost.
	restartOn(t, addr, append([]*observerpb.GetFlowsResponse{ringSeekLost()}, flowsOf("c/n1", 600, 700)...)...)
	for i := 300; i < 450; i++ {
		archived[fmt.Sprintf("c/n1-%06d", i)] = i
	}
	var c3 streamed
	runUntil(t, newTestSource(t, addr, archived), c2.cp, &c3, 100)
	if len(c3.uuids) != 100 || !slices.Equal(c3.lost, []uint64{1}) || len(c3.losses) != 1 || c3.losses[0].Reason != flow.LossStreamDown {
		t.Fatalf("%d flows, lost events %v, losses %+v: want flows 600-699, Hubble's 1 and a stream_down gap", len(c3.uuids), c3.lost, c3.losses)
	}
}

// TestGRPCSourceQuietServerIsUp: Cilium's GetFlows sends its headers with
// its first response; an agent with nothing to send answers ServerStatus,
// and the stream shows as up. While its ring is empty (a fresh agent) the
// stream is not opened (Cilium's seek of an empty ring starts a ring
// behind, see awaitFlows); once it holds a flow, it is, and the flow is
// read. Once the server is gone, down.
func TestGRPCSourceQuietServerIsUp(t *testing.T) {
	o := &fakeObserver{more: make(chan struct{}, 1)}
	addr, stop := serve(t, o)
	m := NewMetrics(nil)
	src, err := NewGRPCSource(GRPCConfig{Address: addr, FlushEvery: 10 * time.Millisecond, BackoffMin: time.Hour, BackoffMax: time.Hour}, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	up := func() float64 { return testutil.ToFloat64(m.grpcUp.WithLabelValues(src.ID())) }
	calls := func() (streams, statuses int) {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.streams, o.statuses
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c streamed
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, flow.Checkpoint{}, c.emit) }()
	waitFor(t, "the quiet agent up", func() bool { return up() == 1 })
	waitFor(t, "the empty ring asked again", func() bool { _, n := calls(); return n >= 3 })
	if streams, _ := calls(); streams != 0 || c.count() != 0 {
		t.Fatalf("%d streams, %d flows while the ring is empty: want none", streams, c.count())
	}
	o.add(flowsOf("c/n1", 0, 3)...)
	waitFor(t, "the flows", func() bool { return c.count() == 3 })
	if streams, _ := calls(); streams != 1 || up() != 1 {
		t.Fatalf("%d streams, up %v: want one stream, up", streams, up())
	}
	stop()
	waitFor(t, "the stream down", func() bool { return up() == 0 })
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestGRPCSourceRelayLateNodeError: Relay holds a node's error for its
// aggregation window while it attaches the restarted agent again, so the
// report comes after the new agent's flows: the gap is recorded between
// the node's last flow before the error's time and its first after it,
// and the node's flows go on without another gap.
func TestGRPCSourceRelayLateNodeError(t *testing.T) {
	o := &fakeObserver{more: make(chan struct{}, 1)}
	o.add(flowsOf("c/a", 0, 100)...)
	o.add(flowsOf("c/b", 0, 100)...)
	// c/a's agent died at flow 120's time with flows 100..149 unread; its
	// successor's flows from 150 on come before Relay's report.
	o.add(flowsOf("c/a", 150, 200)...)
	errAt := flowResp("c/a", 120).GetFlow().GetTime()
	o.add(&observerpb.GetFlowsResponse{NodeName: "relay", Time: errAt, ResponseTypes: &observerpb.GetFlowsResponse_NodeStatus{
		NodeStatus: &relaypb.NodeStatusEvent{StateChange: relaypb.NodeState_NODE_ERROR, NodeNames: []string{"c/a"}, Message: "EOF"}}})
	o.add(flowsOf("c/a", 200, 300)...)
	addr, stop := serve(t, o)
	defer stop()
	src := newTestSource(t, addr, nil)
	var c streamed
	runUntil(t, src, flow.Checkpoint{}, &c, 350)
	if len(c.uuids) != 350 {
		t.Fatalf("%d flows, want 350", len(c.uuids))
	}
	if len(c.losses) != 1 {
		t.Fatalf("losses %+v: want one gap of c/a", c.losses)
	}
	l := c.losses[0]
	last, next := flowResp("c/a", 99).GetFlow().GetTime().AsTime(), flowResp("c/a", 150).GetFlow().GetTime().AsTime()
	if l.Node != "c/a" || l.Reason != flow.LossStreamDown || l.Amount != flow.AmountUnknown || l.From.After(last) || l.To.Before(next) ||
		l.To.After(flowResp("c/a", 151).GetFlow().GetTime().AsTime()) || !strings.Contains(l.Detail, "Relay reported NODE_ERROR: EOF") {
		t.Errorf("gap %+v: want c/a's stream_down gap from flow 99 to flow 150", l)
	}
	if !slices.Contains(c.nodes, "c/a") {
		t.Errorf("nodes vouched for %v: c/a's flows go on", c.nodes)
	}
}
