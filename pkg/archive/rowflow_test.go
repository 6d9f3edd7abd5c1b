package archive

import (
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// TestFlowBuilderInvertsFillRow: a flow's row turned back into a Flow is the
// flow, for generated flows and for one that sets every message the schema
// stores (tunnel, Kafka, extensions, policies, workloads, TCP flags).
func TestFlowBuilderInvertsFillRow(t *testing.T) {
	g, err := gen.New(gen.Config{Seed: 7, Nodes: 2, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	ext, err := anypb.New(wrapperspb.String("x"))
	if err != nil {
		t.Fatal(err)
	}
	flows := []*flowpb.Flow{{
		Time: &timestamppb.Timestamp{Seconds: -3, Nanos: 5}, Uuid: "u", Verdict: flowpb.Verdict_DROPPED, DropReasonDesc: flowpb.DropReason_POLICY_DENIED,
		Tunnel:  &flowpb.Tunnel{Protocol: flowpb.Tunnel_VXLAN, IP: &flowpb.IP{Source: "1.1.1.1", Destination: "2.2.2.2"}, L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: 5, DestinationPort: 8472}}}},
		L4:      &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 1, DestinationPort: 2, Flags: &flowpb.TCPFlags{}}}},
		L7:      &flowpb.Layer7{Type: flowpb.L7FlowType_REQUEST, Record: &flowpb.Layer7_Kafka{Kafka: &flowpb.Kafka{ErrorCode: 3, ApiKey: "produce", Topic: "t"}}},
		Source:  &flowpb.Endpoint{Namespace: "a", Workloads: []*flowpb.Workload{{Name: "w", Kind: "Deployment"}, {Name: "v", Kind: "Job"}}},
		IsReply: wrapperspb.Bool(false), TraceContext: &flowpb.TraceContext{Parent: &flowpb.TraceParent{TraceId: "t"}},
		EgressDeniedBy: []*flowpb.Policy{{Name: "p", Namespace: "n", Labels: []string{"k=v"}, Revision: 4, Kind: "CiliumNetworkPolicy"}},
		Extensions:     ext, Interface: &flowpb.NetworkInterface{Index: 2, Name: "eth0"}, File: &flowpb.FileInfo{Name: "bpf.c", Line: 9},
	}}
	for len(flows) < 3000 {
		if f := g.Next().GetFlow(); f != nil {
			flows = append(flows, f)
		}
	}
	var sl rowSlab
	var b FlowBuilder
	got := &flowpb.Flow{}
	for i, f := range flows {
		r := toRow(f, &sl)
		if err := b.Flow(&r, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, f) {
			t.Fatalf("flow %d:\n got %v\nwant %v", i, got, f)
		}
	}
}
