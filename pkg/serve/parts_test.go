package serve

import (
	"fmt"
	"slices"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// TestFiltersOfFieldsReadInPart: a filter of an endpoint's or the IP
// header's fields is judged first on those fields' columns alone; a flow
// whose message holds none of them (an endpoint of labels only) has the
// message all the same, and the filters that ask for it (an identity of
// 0 is an endpoint's, not an absent one's) select it as from the whole
// flow, in the allowlist and in the denylist; under a field mask, which
// reads the columns of its fields and of the filters' whole.
func TestFiltersOfFieldsReadInPart(t *testing.T) {
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root, RowGroupRows: 300}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	flows := testFlows(t, 3, start, 1500)
	at := func(i int) *timestamppb.Timestamp {
		return timestamppb.New(start.Add(time.Duration(i)*time.Second + 500*time.Millisecond))
	}
	node := flows[0].GetNodeName()
	for i := range 60 {
		f := &flowpb.Flow{Time: at(i), NodeName: node, Verdict: flowpb.Verdict_FORWARDED, Uuid: "part-" + string(rune('a'+i%26)) + string(rune('a'+i/26))}
		switch i % 4 {
		case 0: // an endpoint of labels only
			f.Source = &flowpb.Endpoint{Labels: []string{"reserved:world"}}
			f.Destination = &flowpb.Endpoint{Workloads: []*flowpb.Workload{{Name: "api", Kind: "Deployment"}}}
			f.IP = &flowpb.IP{Encrypted: true}
		case 1: // no endpoint, no IP
		case 2:
			f.Source = &flowpb.Endpoint{Namespace: "parts", PodName: "one"}
			f.IP = &flowpb.IP{Source: "10.9.0.1", IpVersion: flowpb.IPVersion_IPv4}
		case 3:
			f.Destination = &flowpb.Endpoint{Identity: 7, Labels: []string{"k8s:app=x"}}
		}
		flows = append(flows, f)
	}
	slices.SortStableFunc(flows, func(a, b *flowpb.Flow) int { return a.GetTime().AsTime().Compare(b.GetTime().AsTime()) })
	writeFlows(t, w, flows)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c := startServer(t, Config{Roots: []string{root}, Version: "test"})
	for name, req := range map[string]*observerpb.GetFlowsRequest{
		"source identity 0":           {Whitelist: []*flowpb.FlowFilter{{SourceIdentity: []uint32{0}}}},
		"not source identity 0":       {Blacklist: []*flowpb.FlowFilter{{SourceIdentity: []uint32{0}}}},
		"either identity 0":           {Whitelist: []*flowpb.FlowFilter{{SourceIdentity: []uint32{0}, DestinationIdentity: []uint32{0}}}},
		"destination identity 0 or 7": {Whitelist: []*flowpb.FlowFilter{{DestinationIdentity: []uint32{0, 7}, IpVersion: []flowpb.IPVersion{flowpb.IPVersion_IP_NOT_USED}}}},
		"namespace":                   {Whitelist: []*flowpb.FlowFilter{{SourcePod: []string{"parts/"}}, {DestinationPod: []string{"kube-system/"}}}},
		"not ip version unknown":      {Blacklist: []*flowpb.FlowFilter{{IpVersion: []flowpb.IPVersion{flowpb.IPVersion_IP_NOT_USED}, SourceIdentity: []uint32{0}}}},
	} {
		for _, mask := range [][]string{nil, {"time", "verdict", "destination.pod_name"}, {"time", "source.labels", "IP.destination", "node_name"}} {
			if mask != nil {
				req.FieldMask = &fieldmaskpb.FieldMask{Paths: mask}
			}
			got := getFlows(t, c, req)
			want := expect(t, flows, req)
			if len(want) == 0 {
				t.Fatalf("%s: the test selects no flow", name)
			}
			sameFlows(t, fmt.Sprint(name, " ", mask), got, want)
		}
	}
}
