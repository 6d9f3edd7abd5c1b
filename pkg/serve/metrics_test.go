package serve

import (
	"context"
	"net"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// TestMetrics: the requests, their errors and the flows sent are counted.
func TestMetrics(t *testing.T) {
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root, RowGroupRows: 300, MaxFileRows: 1000}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	flows := testFlows(t, 3, start, 1200)
	writeFlows(t, w, flows)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := New(Config{Roots: []string{root}, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(s.ServerOptions()...)
	s.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := observerpb.NewObserverClient(conn)

	req := &observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_FORWARDED}}}}
	got := getFlows(t, c, req)
	if len(got) == 0 {
		t.Fatal("no flow")
	}
	bad := &observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{{HttpUrl: []string{"("}}}}
	stream, err := c.GetFlows(context.Background(), bad)
	if err == nil {
		_, err = stream.Recv()
	}
	if err == nil {
		t.Fatal("an invalid regexp was accepted")
	}
	if _, err := c.ServerStatus(context.Background(), &observerpb.ServerStatusRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{s.m.requests.WithLabelValues("GetFlows"), 2},
		{s.m.requests.WithLabelValues("ServerStatus"), 1},
		{s.m.errors.WithLabelValues("GetFlows", "InvalidArgument"), 1},
		{s.m.flowsSent, float64(len(got))},
	} {
		if v := testutil.ToFloat64(tc.c); v != tc.want {
			t.Errorf("%v: %v, want %v", tc.c, v, tc.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "flowaudit_serve_requests_total", "flowaudit_serve_flows_sent_total"); err != nil || n != 3 {
		t.Errorf("registry: %d series (%v), want 3", n, err)
	}
}
