//go:build unix

package grpc

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	v1 "github.com/cilium/cilium/pkg/hubble/api/v1"
	"github.com/cilium/cilium/pkg/hubble/container"
	"github.com/cilium/cilium/pkg/hubble/exporter"
	"github.com/cilium/cilium/pkg/hubble/observer"
	"github.com/cilium/cilium/pkg/hubble/observer/observeroption"
	observerTypes "github.com/cilium/cilium/pkg/hubble/observer/types"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// BenchmarkAgentSide is what one flow costs the agent on each path, in
// Cilium v1.18.4's own code, the I/O left out of both: the exporter
// (exporter.Export: the JSON encoding of the event, written to
// io.Discard), against serving GetFlows (the observer reading its ring and
// building each response, and the protobuf marshalling gRPC's codec does
// for Send, into a reused buffer). Both with no filter and no mask, as a
// collector reading everything asks.
func BenchmarkAgentSide(b *testing.B) {
	g, err := gen.New(gen.Config{Seed: 13, Nodes: 1, Cluster: "prod-kr1", Rate: 1000, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	const n = 60_000 // within the observer's largest ring (65,535)
	flows := make([]*flowpb.Flow, 0, n)
	for len(flows) < n {
		if f := g.Next().GetFlow(); f != nil {
			flows = append(flows, f)
		}
	}

	b.Run("exporter", func(b *testing.B) {
		exp, err := exporter.NewExporter(slog.New(slog.DiscardHandler),
			exporter.WithNewWriterFunc(func() (io.WriteCloser, error) { return nopWriteCloser{io.Discard}, nil }))
		if err != nil {
			b.Fatal(err)
		}
		defer exp.Stop()
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		defer cpuPerOp(b)()
		for i := 0; i < b.N; i++ {
			f := flows[i%n]
			if err := exp.Export(ctx, &v1.Event{Timestamp: f.GetTime(), Event: f}); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("grpc-serve", func(b *testing.B) {
		capacity, err := container.NewCapacity(1<<16 - 1)
		if err != nil {
			b.Fatal(err)
		}
		obs, err := observer.NewLocalServer(flowParser{}, observer.NewNamespaceManager(), slog.New(slog.DiscardHandler), observeroption.WithMaxFlows(capacity))
		if err != nil {
			b.Fatal(err)
		}
		go obs.Start()
		defer close(obs.GetEventsChannel())
		for _, f := range flows {
			obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: f.GetNodeName(), Payload: f}
		}
		obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: flows[0].GetNodeName(), Payload: flows[0]}
		for {
			st, err := obs.ServerStatus(context.Background(), &observerpb.ServerStatusRequest{})
			if err != nil {
				b.Fatal(err)
			}
			if st.GetSeenFlows() > n {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		s := &marshalStream{ctx: context.Background()}
		b.ReportAllocs()
		b.ResetTimer()
		defer cpuPerOp(b)()
		for done := 0; done < b.N; {
			want := min(n, b.N-done)
			s.sent = 0
			if err := obs.GetFlows(&observerpb.GetFlowsRequest{Number: uint64(want)}, s); err != nil {
				b.Fatal(err)
			}
			if s.sent != want {
				b.Fatalf("%d flows served, want %d", s.sent, want)
			}
			done += want
		}
	})
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// marshalStream is the server side of a GetFlows stream that does what
// gRPC's codec does with each response (proto.Marshal) and sends nothing.
type marshalStream struct {
	grpc.ServerStream
	ctx  context.Context
	buf  []byte
	sent int
}

func (s *marshalStream) Send(r *observerpb.GetFlowsResponse) error {
	var err error
	s.buf, err = proto.MarshalOptions{}.MarshalAppend(s.buf[:0], r)
	s.sent++
	return err
}

func (s *marshalStream) Context() context.Context { return s.ctx }

// cpuPerOp reports the process's user + system time per operation from now
// until the returned func runs: on a shared machine, the figure that
// waiting for a core does not inflate.
func cpuPerOp(b *testing.B) func() {
	start := cpuNow()
	return func() { b.ReportMetric(float64(cpuNow()-start)/float64(b.N), "cpu-ns/op") }
}

func cpuNow() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
