package encode

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// encRandString mixes HTML-escaped bytes, control characters, U+2028/U+2029
// and non-ASCII text, the cases where JSON encoders differ.
func encRandString(r *rand.Rand) string {
	parts := []string{"<", ">", "&", "\u2028", "\u2029", "\x00", "\x01", "\t", "\n", "\x1f", "\x7f", "\"", "\\", "é", "한국", "😀", "a", "b/c", " ", "\xff"}
	var sb strings.Builder
	for n := r.IntN(8); n > 0; n-- {
		sb.WriteString(parts[r.IntN(len(parts))])
	}
	return sb.String()
}

func encRandNanos(r *rand.Rand) int32 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return int32(r.IntN(1000)) * 1_000_000
	case 2:
		return int32(r.IntN(1_000_000)) * 1000
	default:
		return int32(r.IntN(1_000_000_000))
	}
}

func TestRandomFlowsMatchCiliumEncoder(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	var got []byte
	for i := 0; i < 20_000; i++ {
		ts := &timestamppb.Timestamp{Seconds: r.Int64N(4_000_000_000), Nanos: encRandNanos(r)}
		f := &flowpb.Flow{
			Time:             ts,
			Uuid:             encRandString(r),
			NodeName:         encRandString(r),
			Verdict:          flowpb.Verdict(r.IntN(12)),
			DropReasonDesc:   flowpb.DropReason(r.IntN(200)),
			IP:               &flowpb.IP{Source: encRandString(r), Destination: encRandString(r), IpVersion: flowpb.IPVersion(r.IntN(4))},
			Source:           &flowpb.Endpoint{ID: r.Uint32(), Identity: r.Uint32(), Namespace: encRandString(r), Labels: []string{encRandString(r), encRandString(r)}, PodName: encRandString(r)},
			Summary:          encRandString(r),
			IsReply:          wrapperspb.Bool(r.IntN(2) == 0),
			TrafficDirection: flowpb.TrafficDirection(r.IntN(5)),
			DestinationNames: []string{encRandString(r)},
			Interface:        &flowpb.NetworkInterface{Index: r.Uint32(), Name: encRandString(r)},
		}
		switch r.IntN(3) {
		case 0:
			f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: r.Uint32N(65536), Flags: &flowpb.TCPFlags{SYN: r.IntN(2) == 0, ACK: true}}}}
		case 1:
			f.L7 = &flowpb.Layer7{Type: flowpb.L7FlowType(r.IntN(6)), LatencyNs: r.Uint64(), Record: &flowpb.Layer7_Http{Http: &flowpb.HTTP{Code: r.Uint32N(600), Method: encRandString(r), Url: encRandString(r), Headers: []*flowpb.HTTPHeader{{Key: encRandString(r), Value: encRandString(r)}}}}}
		default:
			f.L7 = &flowpb.Layer7{Record: &flowpb.Layer7_Dns{Dns: &flowpb.DNS{Query: encRandString(r), Ips: []string{encRandString(r)}, Rcode: r.Uint32N(24), Qtypes: []string{"A"}}}}
		}
		ev := &observerpb.ExportEvent{Time: ts, NodeName: f.NodeName, ResponseTypes: &observerpb.ExportEvent_Flow{Flow: f}}
		want.Reset()
		werr := enc.Encode(ev)
		var gerr error
		got, gerr = hubblejson.AppendEventLine(got[:0], ev)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("flow %d: cilium err %v, ours %v", i, werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("flow %d differs:\n got %s\nwant %s", i, got, want.Bytes())
		}
	}
}
