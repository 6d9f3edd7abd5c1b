// Command hubble-agent is the agent side of bench/grpc.sh: Cilium v1.18.4's
// agent-side Hubble observer (observer.NewLocalServer, its ring of -ring
// flows) served on a unix socket as cilium-agent serves
// /var/run/cilium/hubble.sock, fed in real time with the flows `flowaudit
// gen --seed N --nodes 1 --lost-events-every -1 --agent-events-every -1`
// writes to events.log. It starts feeding once a client has opened GetFlows
// (what the agent held before a collector's first start is not the
// collector's) and its reader is in place, feeds for -seconds (after two
// flows written before the socket opens: a running agent's ring is never
// empty), then one more flow that lets the observer hand out the last one,
// prints what it fed and the rate it held, and serves until SIGTERM or
// SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	v1 "github.com/cilium/cilium/pkg/hubble/api/v1"
	"github.com/cilium/cilium/pkg/hubble/container"
	"github.com/cilium/cilium/pkg/hubble/observer"
	"github.com/cilium/cilium/pkg/hubble/observer/observeroption"
	observerTypes "github.com/cilium/cilium/pkg/hubble/observer/types"
	nodeTypes "github.com/cilium/cilium/pkg/node/types"
	"github.com/cilium/cilium/pkg/option"
	"google.golang.org/grpc"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// flowParser hands the observer gen's flows whole: the agent's parser turns
// perf events into the same Flow messages.
type flowParser struct{}

func (flowParser) Decode(ev *observerTypes.MonitorEvent) (*v1.Event, error) {
	f := ev.Payload.(*flowpb.Flow)
	return &v1.Event{Timestamp: f.GetTime(), Event: f}, nil
}

func main() {
	sock := flag.String("socket", "", "unix socket to serve Hubble's API on")
	rate := flag.Float64("rate", 20000, "flows per second")
	seconds := flag.Float64("seconds", 30, "how long to feed")
	seed := flag.Int64("seed", 1, "gen's seed")
	ring := flag.Int("ring", 4095, "the observer's ring capacity in flows, as cilium-agent's --hubble-event-buffer-capacity (2^n-1, at most 65535)")
	flag.Parse()
	if err := run(*sock, *rate, time.Duration(*seconds*float64(time.Second)), *seed, *ring); err != nil {
		fmt.Fprintln(os.Stderr, "hubble-agent:", err)
		os.Exit(1)
	}
}

func run(sock string, rate float64, d time.Duration, seed int64, ring int) error {
	if sock == "" {
		return fmt.Errorf("-socket is required")
	}
	option.Config.ClusterName = "prod-kr1"
	nodeTypes.SetName("node-01")
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	capacity, err := container.NewCapacity(ring)
	if err != nil {
		return fmt.Errorf("-ring: %w", err)
	}
	obs, err := observer.NewLocalServer(flowParser{}, observer.NewNamespaceManager(), slog.New(slog.NewTextHandler(io.Discard, nil)),
		observeroption.WithMaxFlows(capacity))
	if err != nil {
		return err
	}
	reader := make(chan struct{})
	var once sync.Once
	srv := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if info.FullMethod == "/observer.Observer/GetFlows" {
			once.Do(func() { close(reader) })
		}
		return h(srv, ss)
	}))
	observerpb.RegisterObserverServer(srv, obs)
	go obs.Start()
	g, err := gen.New(gen.Config{Seed: seed, Nodes: 1, Cluster: "prod-kr1", Rate: rate, Start: time.Now(), LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		return err
	}
	events := obs.GetEventsChannel()
	feed := func(f *flowpb.Flow) {
		events <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: f.GetNodeName(), Payload: f}
	}
	// A running agent's ring is never empty: two flows before the socket
	// opens. On an empty ring the observer's seek for a since starts its
	// reader before slot 0 (LastWriteParallel is the write index less 2),
	// which then waits for the writer to come round and reports the slots
	// between as lost.
	for warm := 0; warm < 2; {
		if f := g.Next().GetFlow(); f != nil {
			feed(f)
			warm++
		}
	}
	go func() { _ = srv.Serve(ln) }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	select {
	case <-reader:
	case <-ctx.Done():
		return nil
	}
	// The first flows only once the stream's ring reader is in place (the
	// interceptor runs before GetFlows seeks).
	time.Sleep(time.Second)
	start, wall := g.Now(), time.Now()
	fed, behind := 0, time.Duration(0)
	for g.Now().Sub(start) < d && ctx.Err() == nil {
		f := g.Next().GetFlow()
		if f == nil {
			continue
		}
		switch ahead := g.Now().Sub(start) - time.Since(wall); {
		case ahead > time.Millisecond:
			time.Sleep(ahead)
		case -ahead > behind:
			behind = -ahead
		}
		feed(f)
		fed++
	}
	elapsed := time.Since(wall)
	for f := g.Next().GetFlow(); ; f = g.Next().GetFlow() {
		if f != nil {
			feed(f) // lets the observer hand out the last flow fed; not counted
			break
		}
	}
	fmt.Printf("fed %d flows in %.2f s: %.0f flows/s (asked %.0f), at most %v behind schedule\n",
		fed, elapsed.Seconds(), float64(fed)/elapsed.Seconds(), rate, behind.Round(time.Millisecond))
	<-ctx.Done()
	srv.Stop()
	return nil
}
