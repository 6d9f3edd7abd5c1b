package serve

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

// The benchmarks' archive: FLOWAUDIT_SERVE_BENCH_ARCHIVE names a directory
// to keep it in (made there on first use, with FLOWAUDIT_SERVE_BENCH_FLOWS
// flows, default 300,000, of 3 nodes at 100 flows/s each from
// 2026-01-01), else a temporary one.
var benchArchive struct {
	once sync.Once
	root string
	err  error
}

func benchRoot(b *testing.B) string {
	benchArchive.once.Do(func() {
		root := os.Getenv("FLOWAUDIT_SERVE_BENCH_ARCHIVE")
		if root == "" {
			root, benchArchive.err = os.MkdirTemp("", "flowaudit-serve-bench")
			if benchArchive.err != nil {
				return
			}
		}
		benchArchive.root = root
		if archive.IsArchive(root) {
			return
		}
		n := 300_000
		if s := os.Getenv("FLOWAUDIT_SERVE_BENCH_FLOWS"); s != "" {
			n, benchArchive.err = strconv.Atoi(s)
		}
		if benchArchive.err == nil {
			benchArchive.err = makeBenchArchive(root, n)
		}
	})
	if benchArchive.err != nil {
		b.Fatal(benchArchive.err)
	}
	return benchArchive.root
}

func makeBenchArchive(root string, n int) error {
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		return err
	}
	g, err := gen.New(gen.Config{Seed: 1, Nodes: 3, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		return err
	}
	b := &flow.Batch{}
	for done := 0; done < n; {
		b.Reset()
		for b.Len() < 4096 && done < n {
			if f := g.Next().GetFlow(); f != nil {
				// A slot of a batch reset is reused as it was: merged
				// into, its lists would grow from flow to flow.
				dst := b.Next()
				dst.Reset()
				proto.Merge(dst, f)
				done++
			}
		}
		if err := w.Write(b); err != nil {
			return err
		}
	}
	return w.Close()
}

// benchStream is a GetFlows stream that marshals each response as gRPC does,
// and notes when the first flow came and the heap's peak.
type benchStream struct {
	grpc.ServerStream
	ctx   context.Context
	buf   []byte
	n     int
	start time.Time
	first time.Duration
	peak  uint64
	ms    runtime.MemStats
}

func (s *benchStream) Context() context.Context { return s.ctx }

func (s *benchStream) Send(r *observerpb.GetFlowsResponse) error {
	// Flows are counted, not the lost_events and node_status events of
	// the window's holes that follow them.
	if r.GetFlow() != nil {
		if s.n == 0 {
			s.first = time.Since(s.start)
		}
		s.n++
		if s.n%4096 == 0 {
			s.sample()
		}
	}
	var err error
	s.buf, err = proto.MarshalOptions{}.MarshalAppend(s.buf[:0], r)
	return err
}

// sample notes the heap in use (live and not yet collected).
func (s *benchStream) sample() {
	runtime.ReadMemStats(&s.ms)
	s.peak = max(s.peak, s.ms.HeapInuse)
}

func runBench(b *testing.B, req *observerpb.GetFlowsRequest) {
	root := benchRoot(b)
	s, err := New(Config{Roots: []string{root}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var flows int
	var first time.Duration
	var peak uint64
	var cpu time.Duration
	for range b.N {
		// The heap's peak is the query's: what came before is collected.
		b.StopTimer()
		runtime.GC()
		b.StartTimer()
		cpu0 := cpuTime()
		st := &benchStream{ctx: context.Background(), start: time.Now()}
		if err := s.GetFlows(req, st); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - cpu0
		st.sample()
		if st.n == 0 {
			b.Fatal("no flow")
		}
		flows += st.n
		first += st.first
		peak = max(peak, st.peak)
	}
	b.ReportMetric(float64(flows)/b.Elapsed().Seconds(), "flows/s")
	if cpu > 0 {
		// The machine's load inflates wall time, not the CPU time.
		b.ReportMetric(float64(flows)/cpu.Seconds(), "flows/cpu-s")
	}
	b.ReportMetric(float64(flows)/float64(b.N), "flows/op")
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "ms-first")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkGetFlowsAll streams the whole archive (hubble observe --all).
func BenchmarkGetFlowsAll(b *testing.B) {
	runBench(b, &observerpb.GetFlowsRequest{})
}

// BenchmarkGetFlowsNamespace streams the flows from or to one namespace
// (hubble observe --all --namespace kube-system).
func BenchmarkGetFlowsNamespace(b *testing.B) {
	runBench(b, &observerpb.GetFlowsRequest{Whitelist: []*flowpb.FlowFilter{{SourcePod: []string{"kube-system/"}}, {DestinationPod: []string{"kube-system/"}}}})
}

// BenchmarkGetFlowsNamespaceDay streams the flows from or to one namespace
// of the whole day (UTC) of the archive's first flow (hubble observe
// --namespace kube-system --since --until).
func BenchmarkGetFlowsNamespaceDay(b *testing.B) {
	day := firstPodFlow(b).GetTime().AsTime().Truncate(24 * time.Hour)
	runBench(b, &observerpb.GetFlowsRequest{
		Since: timestamppb.New(day), Until: timestamppb.New(day.Add(24*time.Hour - time.Nanosecond)),
		Whitelist: []*flowpb.FlowFilter{{SourcePod: []string{"kube-system/"}}, {DestinationPod: []string{"kube-system/"}}},
	})
}

// BenchmarkGetFlowsNamespaceDocsMask is BenchmarkGetFlowsNamespace with
// the field mask of Cilium's documentation (fieldmask.DocsExample), as a
// client that shows a table of flows asks for them.
func BenchmarkGetFlowsNamespaceDocsMask(b *testing.B) {
	runBench(b, &observerpb.GetFlowsRequest{
		Whitelist: []*flowpb.FlowFilter{{SourcePod: []string{"kube-system/"}}, {DestinationPod: []string{"kube-system/"}}},
		FieldMask: &fieldmaskpb.FieldMask{Paths: fieldmask.ParsePaths(fieldmask.DocsExample)},
	})
}

// BenchmarkGetFlowsPointQuery: one node, one pod's flows, one minute, two
// minutes after the archive's first flow of the pod (hubble observe
// --node-name N --pod NS/POD --since --until).
func BenchmarkGetFlowsPointQuery(b *testing.B) {
	f0 := firstPodFlow(b)
	t := f0.GetTime().AsTime().Add(2 * time.Minute)
	runPointQuery(b, f0, t, t.Add(time.Minute))
}

// BenchmarkGetFlowsPointQueryDay: one node, one pod's flows, the whole day
// (UTC) of the archive's first flow of the pod.
func BenchmarkGetFlowsPointQueryDay(b *testing.B) {
	f0 := firstPodFlow(b)
	day := f0.GetTime().AsTime().Truncate(24 * time.Hour)
	runPointQuery(b, f0, day, day.Add(24*time.Hour-time.Nanosecond))
}

func runPointQuery(b *testing.B, f0 *flowpb.Flow, since, until time.Time) {
	pod := f0.GetSource().GetNamespace() + "/" + f0.GetSource().GetPodName()
	b.Logf("pod %s, node %s, since %s, until %s", pod, f0.GetNodeName(), since.Format(time.RFC3339Nano), until.Format(time.RFC3339Nano))
	runBench(b, &observerpb.GetFlowsRequest{
		Since: timestamppb.New(since), Until: timestamppb.New(until),
		Whitelist: []*flowpb.FlowFilter{{SourcePod: []string{pod}, NodeName: []string{f0.GetNodeName()}}, {DestinationPod: []string{pod}, NodeName: []string{f0.GetNodeName()}}},
	})
}

// firstPodFlow is the archive's first flow from a pod.
func firstPodFlow(b *testing.B) *flowpb.Flow {
	root := benchRoot(b)
	sc, err := archive.OpenScanner(root)
	if err != nil {
		b.Fatal(err)
	}
	var f0 *flowpb.Flow
	var builder archive.FlowBuilder
	err = sc.ScanFlows(context.Background(), archive.ScanOptions{}, func(rows []archive.FlowRow) error {
		for i := range rows {
			f := &flowpb.Flow{}
			if err := builder.Flow(&rows[i], f); err != nil {
				return err
			}
			if f.GetSource().GetPodName() != "" {
				f0 = proto.Clone(f).(*flowpb.Flow)
				return context.Canceled
			}
		}
		return nil
	})
	if f0 == nil {
		b.Fatal(err)
	}
	return f0
}

// BenchmarkGetFlowsLast20 is a bare `hubble observe`: the newest 20 flows.
func BenchmarkGetFlowsLast20(b *testing.B) {
	runBench(b, &observerpb.GetFlowsRequest{Number: 20})
}
