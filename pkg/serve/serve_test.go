package serve

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

var start = time.Date(2026, 1, 1, 22, 0, 0, 0, time.UTC)

// testFlows generates n flows of three nodes, from 22:00 on a day into the
// next one.
func testFlows(t testing.TB, seed int64, from time.Time, n int) []*flowpb.Flow {
	g, err := gen.New(gen.Config{Seed: seed, Nodes: 3, Rate: 0.5, Start: from, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	var out []*flowpb.Flow
	for len(out) < n {
		if f := g.Next().GetFlow(); f != nil {
			out = append(out, proto.Clone(f).(*flowpb.Flow))
		}
	}
	return out
}

// writeFlows commits flows to the archive w in batches of 500.
func writeFlows(t testing.TB, w *archive.Writer, flows []*flowpb.Flow) {
	for i := 0; i < len(flows); i += 500 {
		b := &flow.Batch{}
		for _, src := range flows[i:min(i+500, len(flows))] {
			proto.Merge(b.Next(), src)
		}
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func startServer(t testing.TB, cfg Config) observerpb.ObserverClient {
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	s.Register(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return observerpb.NewObserverClient(conn)
}

func getFlows(t testing.TB, c observerpb.ObserverClient, req *observerpb.GetFlowsRequest) []*flowpb.Flow {
	t.Helper()
	stream, err := c.GetFlows(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var out []*flowpb.Flow
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if f := resp.GetFlow(); f != nil {
			if !proto.Equal(resp.GetTime(), f.GetTime()) || resp.GetNodeName() != f.GetNodeName() {
				t.Fatalf("response time/node %v %q, flow's %v %q", resp.GetTime(), resp.GetNodeName(), f.GetTime(), f.GetNodeName())
			}
			out = append(out, f)
		}
	}
}

// expect is what the request selects from flows, by the filter program and
// Hubble's rules, in time order.
func expect(t testing.TB, flows []*flowpb.Flow, req *observerpb.GetFlowsRequest) []*flowpb.Flow {
	t.Helper()
	p, err := filter.Compile(req.GetWhitelist(), req.GetBlacklist())
	if err != nil {
		t.Fatal(err)
	}
	var out []*flowpb.Flow
	for _, f := range flows {
		ts := f.GetTime().AsTime()
		if req.GetSince() != nil && ts.Before(req.GetSince().AsTime()) {
			continue
		}
		if req.GetUntil() != nil && ts.After(req.GetUntil().AsTime()) {
			continue
		}
		if p.MatchFlow(f) {
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b *flowpb.Flow) int { return a.GetTime().AsTime().Compare(b.GetTime().AsTime()) })
	if n := int(req.GetNumber()); n > 0 && n < len(out) {
		if req.GetFirst() {
			out = out[:n]
		} else {
			out = out[len(out)-n:]
		}
	}
	if paths := req.GetFieldMask().GetPaths(); len(paths) > 0 {
		m, err := fieldmask.Compile(paths)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range out {
			dst := &flowpb.Flow{}
			m.Copy(dst, f)
			out[i] = proto.Clone(dst).(*flowpb.Flow)
		}
	}
	return out
}

func uuids(fs []*flowpb.Flow) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.GetUuid()
	}
	return out
}

func sameFlows(t *testing.T, name string, got, want []*flowpb.Flow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d flows, want %d", name, len(got), len(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("%s: flow %d:\n got %v\nwant %v", name, i, got[i], want[i])
		}
	}
}

func TestGetFlows(t *testing.T) {
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root, RowGroupRows: 300, MaxFileRows: 1000}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	flows := testFlows(t, 1, start, 6000)
	writeFlows(t, w, flows)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c := startServer(t, Config{Roots: []string{root}, Version: "test"})
	mid := flows[2500].GetTime()
	late := flows[4000].GetTime()
	node := flows[0].GetNodeName()
	for name, req := range map[string]*observerpb.GetFlowsRequest{
		"all":            {},
		"first 25":       {Number: 25, First: true},
		"last 25":        {Number: 25},
		"last 5000":      {Number: 5000},
		"since until":    {Since: mid, Until: late},
		"since first 7":  {Since: mid, Number: 7, First: true},
		"until last 7":   {Until: late, Number: 7},
		"dropped":        {Whitelist: []*flowpb.FlowFilter{{Verdict: []flowpb.Verdict{flowpb.Verdict_DROPPED}}}},
		"node last 30":   {Number: 30, Whitelist: []*flowpb.FlowFilter{{NodeName: []string{node}}}},
		"not kube dns":   {Blacklist: []*flowpb.FlowFilter{{DestinationPort: []string{"53"}}}, Number: 100, First: true},
		"mask":           {Number: 40, FieldMask: &fieldmaskpb.FieldMask{Paths: []string{"time", "source.pod_name", "verdict"}}},
		"either ns last": {Number: 12, Whitelist: []*flowpb.FlowFilter{{SourcePod: []string{"kube-system/"}}, {DestinationPod: []string{"kube-system/"}}}},
	} {
		got := getFlows(t, c, req)
		want := expect(t, flows, req)
		if len(want) == 0 {
			t.Fatalf("%s: the test selects no flow", name)
		}
		sameFlows(t, name, got, want)
	}
	if got := getFlows(t, c, &observerpb.GetFlowsRequest{Since: timestamppb.New(start.Add(100 * 24 * time.Hour))}); len(got) != 0 {
		t.Fatalf("a window after the archive: %d flows", len(got))
	}
	if _, err := c.GetFlows(context.Background(), &observerpb.GetFlowsRequest{First: true, Follow: true}); err != nil {
		t.Fatal(err)
	}
}

func TestServerStatusAndNodes(t *testing.T) {
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	flows := testFlows(t, 2, start, 1000)
	writeFlows(t, w, flows)
	w.Close()
	c := startServer(t, Config{Roots: []string{root}, Version: "v-test"})
	st, err := c.ServerStatus(context.Background(), &observerpb.ServerStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.NumFlows != 1000 || st.MaxFlows != 1000 || st.NumConnectedNodes.GetValue() != 3 || st.Version != "v-test" {
		t.Fatalf("status %v", st)
	}
	var oldest, newest time.Time
	for _, f := range flows {
		if ts := f.GetTime().AsTime(); oldest.IsZero() || ts.Before(oldest) {
			oldest = ts
		}
		if ts := f.GetTime().AsTime(); ts.After(newest) {
			newest = ts
		}
	}
	if got := time.Duration(st.UptimeNs); got.Truncate(time.Microsecond) != newest.Sub(oldest).Truncate(time.Microsecond) && got != newest.Sub(oldest) {
		t.Fatalf("uptime %s, the archive's span %s", got, newest.Sub(oldest))
	}
	nodes, err := c.GetNodes(context.Background(), &observerpb.GetNodesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string]uint64{}
	for _, f := range flows {
		perNode[f.GetNodeName()]++
	}
	if len(nodes.Nodes) != 3 {
		t.Fatalf("nodes %v", nodes)
	}
	for _, n := range nodes.Nodes {
		if n.NumFlows != perNode[n.Name] {
			t.Fatalf("node %s: %d flows, want %d", n.Name, n.NumFlows, perNode[n.Name])
		}
	}
	ns, err := c.GetNamespaces(context.Background(), &observerpb.GetNamespacesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, f := range flows {
		if newest.Sub(f.GetTime().AsTime()) <= time.Hour {
			for _, ep := range []*flowpb.Endpoint{f.GetSource(), f.GetDestination()} {
				if ep.GetNamespace() != "" {
					want[ep.GetClusterName()+"/"+ep.GetNamespace()] = true
				}
			}
		}
	}
	if len(ns.Namespaces) != len(want) || len(want) == 0 {
		t.Fatalf("namespaces %v, want %v", ns.Namespaces, want)
	}
	for _, n := range ns.Namespaces {
		if !want[n.Cluster+"/"+n.Namespace] {
			t.Fatalf("namespace %v not expected", n)
		}
	}
}

// TestFollow: a follower sees every flow committed after it asked, once,
// while the writer keeps committing.
func TestFollow(t *testing.T) {
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Add(-time.Minute)
	flows := testFlows(t, 3, now, 3000)
	writeFlows(t, w, flows[:1000])
	c := startServer(t, Config{Roots: []string{root}, Poll: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := c.GetFlows(ctx, &observerpb.GetFlowsRequest{Follow: true, Number: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	recv := func(n int) {
		for range n {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			got[resp.GetFlow().GetUuid()]++
		}
	}
	recv(10) // the last 10 of the history
	writeFlows(t, w, flows[1000:2000])
	writeFlows(t, w, flows[2000:])
	recv(2000)
	for _, f := range flows[:990] {
		if got[f.GetUuid()] != 0 {
			t.Fatalf("flow %s of the history before the last 10 was sent", f.GetUuid())
		}
	}
	for _, f := range flows[990:] {
		if got[f.GetUuid()] != 1 {
			t.Fatalf("flow %s sent %d times", f.GetUuid(), got[f.GetUuid()])
		}
	}
	w.Close()
}

// TestRowsOutOfOrderInAFile: a file whose rows go back in time between the
// batches written into it (the writer sorts each batch) still gives every
// flow of the window, last-N included.
func TestRowsOutOfOrderInAFile(t *testing.T) {
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root, RowGroupRows: 700}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	flows := testFlows(t, 6, start, 2000)
	var even, odd []*flowpb.Flow
	for i, f := range flows {
		if i%2 == 0 {
			even = append(even, f)
		} else {
			odd = append(odd, f)
		}
	}
	for _, part := range [][]*flowpb.Flow{even, odd} {
		b := &flow.Batch{}
		for _, f := range part {
			proto.Merge(b.Next(), f)
		}
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c := startServer(t, Config{Roots: []string{root}})
	bySet := func(fs []*flowpb.Flow) []string {
		ids := uuids(fs)
		slices.Sort(ids)
		return ids
	}
	for name, req := range map[string]*observerpb.GetFlowsRequest{
		"until":   {Until: flows[1200].GetTime()},
		"since":   {Since: flows[700].GetTime()},
		"last 50": {Number: 50},
	} {
		got, want := bySet(getFlows(t, c, req)), bySet(expect(t, flows, req))
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %d flows, want %d", name, len(got), len(want))
		}
	}
}

func TestDateOfID(t *testing.T) {
	for id, want := range map[string]string{
		"/a/b\x00flows/date=2026-03-01/node=c%2Fn1/part-1.parquet": "2026-03-01",
		"/a/date=2025-01-01/b\x00flows/date=2026-03-01/node=n/x":   "2026-03-01",
		"/a\x00flows/x.parquet":                                    "",
	} {
		if got := dateOfID(id); got != want {
			t.Errorf("dateOfID(%q) = %q, want %q", id, got, want)
		}
	}
}
