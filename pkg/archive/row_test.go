package archive

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// toRow is the row of f (fillRow into a new row).
func toRow(f *flowpb.Flow, sl *rowSlab) FlowRow {
	var r FlowRow
	fillRow(&r, f, sl)
	return r
}

// TestTCPFlagsColumn checks l4_tcp_flags for every combination of the nine
// flags: the set ones, comma separated in Hubble's field order, and "" (not
// NULL) for a TCP header with none set.
func TestTCPFlagsColumn(t *testing.T) {
	var sl rowSlab
	for bits := 0; bits < 1<<9; bits++ {
		on := func(i int) bool { return bits&(1<<i) != 0 }
		f := &flowpb.TCPFlags{FIN: on(0), SYN: on(1), RST: on(2), PSH: on(3), ACK: on(4), URG: on(5), ECE: on(6), CWR: on(7), NS: on(8)}
		var want []string
		for i, name := range []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"} {
			if on(i) {
				want = append(want, name)
			}
		}
		got := sl.tcpFlags(f)
		if got == nil || *got != strings.Join(want, ",") {
			t.Fatalf("flags %09b: got %v, want %q", bits, got, strings.Join(want, ","))
		}
	}
	if sl.tcpFlags(nil) != nil {
		t.Fatal("no TCP flags: want NULL")
	}
}

// TestToRowAllocatesNothing: once the slab has grown, mapping a flow with
// TCP flags, an event type, HTTP headers, labels, workloads and policies
// to its row allocates nothing (the archive's per-flow path).
func TestToRowAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	f := &flowpb.Flow{
		Uuid:      "u",
		Verdict:   flowpb.Verdict_FORWARDED,
		EventType: &flowpb.CiliumEventType{Type: 4, SubType: 3},
		L4:        &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 1, DestinationPort: 2, Flags: &flowpb.TCPFlags{SYN: true, ACK: true}}}},
		Source:    &flowpb.Endpoint{Namespace: "ns", PodName: "p", Labels: []string{"k8s:app=a"}, Workloads: []*flowpb.Workload{{Name: "w", Kind: "Deployment"}}},
		L7: &flowpb.Layer7{Record: &flowpb.Layer7_Http{Http: &flowpb.HTTP{Code: 200, Method: "GET",
			Headers: []*flowpb.HTTPHeader{{Key: "a", Value: "b"}, {Key: "c", Value: "d"}}}}},
		EgressAllowedBy: []*flowpb.Policy{{Name: "p", Namespace: "ns", Labels: []string{"l"}}},
		Tunnel: &flowpb.Tunnel{Protocol: flowpb.Tunnel_VXLAN, IP: &flowpb.IP{Source: "192.0.2.1", Destination: "192.0.2.2"},
			L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: 51234, DestinationPort: 8472}}}},
	}
	var sl rowSlab
	row := func() {
		for i := 0; i < 100; i++ {
			_ = toRow(f, &sl)
		}
		sl.reset()
	}
	row() // grow the slab
	if a := testing.AllocsPerRun(20, row); a != 0 {
		t.Fatalf("%.1f allocations per 100 rows, want 0", a)
	}
	r := toRow(f, &sl)
	if *r.TunnelL4 != `{"UDP":{"source_port":51234,"destination_port":8472}}` {
		t.Fatalf("tunnel_l4 %q", *r.TunnelL4)
	}
	if *r.L4TCPFlags != "SYN,ACK" || *r.EventTypeType != 4 || *r.EventTypeSubType != 3 || len(r.L7HTTPHeaders) != 2 || r.L7HTTPHeaders[1] != (Header{Key: "c", Value: "d"}) {
		t.Fatalf("row: flags %q, event type %d/%d, headers %v", *r.L4TCPFlags, *r.EventTypeType, *r.EventTypeSubType, r.L7HTTPHeaders)
	}
}

// TestRowsInTimeOrder: a batch whose flows are out of time order is written
// sorted by time (seconds, then nanoseconds), flows of equal times in the
// batch's order; an ordered batch as it is.
func TestRowsInTimeOrder(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// uuid i has time times[i]; the expected order is by time, then uuid.
	times := []time.Duration{5 * time.Second, time.Second + 2, time.Second + 1, 0, time.Second + 1, 3 * time.Second, time.Second + 2}
	var b flow.Batch
	for i, d := range times {
		f := b.Next()
		f.Reset()
		f.Uuid, f.NodeName = strconv.Itoa(i), "c/n1"
		f.Time = timestamppb.New(t0.Add(d))
	}
	b.Checkpoint = flow.Checkpoint{Source: "test", Position: "1"}
	if err := w.Write(&b); err != nil {
		t.Fatal(err)
	}
	ordered := batch(100, 110) // in time order already
	for i := range ordered.Flows {
		ordered.Flows[i].NodeName = "c/n1"
		ordered.Flows[i].Time = timestamppb.New(t0.Add(time.Minute + time.Duration(i)*time.Millisecond))
	}
	ordered.Checkpoint.Position = "2"
	if err := w.Write(ordered); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sc, err := OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := sc.ScanFlows(context.Background(), ScanOptions{}, func(rows []FlowRow) error {
		for _, r := range rows {
			got = append(got, *r.UUID)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"3", "2", "4", "1", "6", "5", "0", "100", "101", "102", "103", "104", "105", "106", "107", "108", "109"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("rows in order %v, want %v", got, want)
	}
}

// TestJSONColumnsAsHubbleWritesThem: tunnel_l4 and extensions hold the
// member's JSON exactly as it stands in the line Hubble's exporter writes
// for the flow (compact, proto names), so the same value is the same string
// whichever build archived it (protojson's own output has spaces inserted
// at random, differently from one binary to another).
func TestJSONColumnsAsHubbleWritesThem(t *testing.T) {
	ext, err := anypb.New(wrapperspb.String("audit: x, y"))
	if err != nil {
		t.Fatal(err)
	}
	f := &flowpb.Flow{
		Tunnel: &flowpb.Tunnel{Protocol: flowpb.Tunnel_GENEVE,
			L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 1, DestinationPort: 6081, Flags: &flowpb.TCPFlags{SYN: true}}}}},
		Extensions: ext,
	}
	line, err := hubblejson.AppendFlow(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	var sl rowSlab
	r := toRow(f, &sl)
	for _, c := range []struct {
		col  string
		v    *string
		want string
	}{
		{"tunnel_l4", r.TunnelL4, `"l4":`},
		{"extensions", r.Extensions, `"extensions":`},
	} {
		if c.v == nil {
			t.Fatalf("%s is NULL", c.col)
		}
		if !strings.Contains(string(line), c.want+*c.v) {
			t.Errorf("%s = %s, not as in Hubble's line %s", c.col, *c.v, line)
		}
	}
	if want := `{"@type":"type.googleapis.com/google.protobuf.StringValue","value":"audit: x, y"}`; *r.Extensions != want {
		t.Errorf("extensions = %s, want %s", *r.Extensions, want)
	}
}
