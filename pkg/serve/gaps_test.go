package serve

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
)

// TestGapEvents: the minutes a node's collector did not run (no stats row)
// come as a node_status NODE_UNAVAILABLE, and the losses table's rows as
// lost_events, after the flows of the window; the flows are all sent.
func TestGapEvents(t *testing.T) {
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	const node = "c/n1"
	b := &flow.Batch{}
	flows := 0
	for m := range 20 {
		if m >= 5 && m < 8 {
			continue // the collector was down
		}
		min := t0.Add(time.Duration(m) * time.Minute)
		b.AddStat(node, min.Unix(), flow.Counts{})
		for s := 0; s < 60; s += 20 {
			f := b.Next()
			f.Reset()
			f.Time, f.NodeName, f.Uuid = timestamppb.New(min.Add(time.Duration(s)*time.Second)), node, strconv.Itoa(m*100+s)
			f.Verdict = flowpb.Verdict_FORWARDED
			flows++
		}
	}
	b.Losses = append(b.Losses, flow.Loss{Node: node, Time: t0.Add(12 * time.Minute), Reason: flow.LossHubbleLostEvents, Detail: "PERF_EVENT_RING_BUFFER", Events: 12, Amount: flow.AmountExact})
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c := startServer(t, Config{Roots: []string{root}})
	stream, err := c.GetFlows(context.Background(), &observerpb.GetFlowsRequest{Since: timestamppb.New(t0), Until: timestamppb.New(t0.Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	var got []*observerpb.GetFlowsResponse
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != flows+2 {
		t.Fatalf("%d responses, want %d flows and 2 events", len(got), flows)
	}
	for _, r := range got[:flows] {
		if r.GetFlow() == nil {
			t.Fatalf("not a flow among the flows: %v", r)
		}
	}
	ns := got[flows].GetNodeStatus()
	if ns.GetStateChange() != relaypb.NodeState_NODE_UNAVAILABLE || len(ns.GetNodeNames()) != 1 || ns.GetNodeNames()[0] != node ||
		!got[flows].GetTime().AsTime().Equal(t0.Add(5*time.Minute)) || !strings.Contains(ns.GetMessage(), "10:08:00Z") {
		t.Fatalf("gap: %v", got[flows])
	}
	le := got[flows+1].GetLostEvents()
	if le.GetSource() != flowpb.LostEventSource_PERF_EVENT_RING_BUFFER || le.GetNumEventsLost() != 12 || got[flows+1].GetNodeName() != node {
		t.Fatalf("lost events: %v", got[flows+1])
	}
	// Without since and until the span is that of the flows sent, by their
	// archived time, also under a mask that leaves the time out.
	stream, err = c.GetFlows(context.Background(), &observerpb.GetFlowsRequest{FieldMask: &fieldmaskpb.FieldMask{Paths: []string{"verdict"}}})
	if err != nil {
		t.Fatal(err)
	}
	var events []*observerpb.GetFlowsResponse
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.GetFlow() == nil {
			events = append(events, r)
		} else if r.GetFlow().GetTime() != nil || r.GetFlow().GetVerdict() != flowpb.Verdict_FORWARDED {
			t.Fatalf("a flow masked to its verdict: %v", r.GetFlow())
		}
	}
	if len(events) != 2 || events[0].GetNodeStatus() == nil || events[1].GetLostEvents() == nil {
		t.Fatalf("events of a masked stream's span: %v, want the gap and the lost events", events)
	}
	// A window inside the collected minutes has no gap.
	stream, err = c.GetFlows(context.Background(), &observerpb.GetFlowsRequest{Since: timestamppb.New(t0.Add(13 * time.Minute)), Until: timestamppb.New(t0.Add(18 * time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.GetFlow() == nil {
			t.Fatalf("an event in a window without gaps: %v", r)
		}
	}
}
