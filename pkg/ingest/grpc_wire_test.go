package ingest

import (
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// FuzzScanEnvelope: scanEnvelope never panics, and what it reads of a
// message proto.Unmarshal accepts agrees with it: the kind, a flow's uuid
// and node, a lost event's source and count.
func FuzzScanEnvelope(f *testing.F) {
	for _, r := range []*observerpb.GetFlowsResponse{
		flowResp("c/n1", 7),
		ringSeekLost(),
		{NodeName: "n", ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{LostEvents: &flowpb.LostEvent{
			Source: flowpb.LostEventSource_PERF_EVENT_RING_BUFFER, NumEventsLost: 1 << 40, Cpu: wrapperspb.Int32(3)}}},
		{Time: timestamppb.New(t0), ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{LostEvents: &flowpb.LostEvent{}}},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var e envelope
		err := scanEnvelope(msg, &e)
		var r observerpb.GetFlowsResponse
		if proto.Unmarshal(msg, &r) != nil || err != nil {
			return
		}
		switch {
		case r.GetFlow() != nil:
			if e.kind != flow.KindFlow || string(e.uuid) != r.GetFlow().GetUuid() {
				t.Fatalf("flow: kind %v uuid %q, want %q", e.kind, e.uuid, r.GetFlow().GetUuid())
			}
		case r.GetLostEvents() != nil:
			le := r.GetLostEvents()
			if e.kind != flow.KindLostEvents || e.lostSource != uint64(le.GetSource()) || e.lostCount != le.GetNumEventsLost() {
				t.Fatalf("lost events: kind %v source %d count %d, want %v %d", e.kind, e.lostSource, e.lostCount, le.GetSource(), le.GetNumEventsLost())
			}
		}
	})
}
