package chaos_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	v1 "github.com/cilium/cilium/pkg/hubble/api/v1"
	"github.com/cilium/cilium/pkg/hubble/observer"
	observerTypes "github.com/cilium/cilium/pkg/hubble/observer/types"
	nodeTypes "github.com/cilium/cilium/pkg/node/types"
	"github.com/cilium/cilium/pkg/option"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// flowParser is the observer's payload parser for flows handed over whole:
// the agent's parser turns perf events into the same Flow messages.
type flowParser struct{}

func (flowParser) Decode(ev *observerTypes.MonitorEvent) (*v1.Event, error) {
	f := ev.Payload.(*flowpb.Flow)
	return &v1.Event{Timestamp: f.GetTime(), Event: f}, nil
}

// hubbleAgent is Cilium v1.18.4's agent-side Hubble observer
// (observer.NewLocalServer, its ring of 4,095 flows) served on a unix
// socket, as cilium-agent serves /var/run/cilium/hubble.sock. Stopping it
// closes its listener and every stream and drops its ring: from the
// collector's side, what a killed agent does.
type hubbleAgent struct {
	srv  *grpc.Server
	obs  *observer.LocalObserverServer
	done chan struct{}
}

func startHubbleAgent(t *testing.T, sock string) *hubbleAgent {
	t.Helper()
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return serveHubbleAgent(t, ln)
}

// serveHubbleAgent serves the observer on ln, with the server's options.
func serveHubbleAgent(t *testing.T, ln net.Listener, opts ...grpc.ServerOption) *hubbleAgent {
	t.Helper()
	obs, err := observer.NewLocalServer(flowParser{}, observer.NewNamespaceManager(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a := &hubbleAgent{srv: grpc.NewServer(opts...), obs: obs, done: make(chan struct{})}
	observerpb.RegisterObserverServer(a.srv, obs)
	go obs.Start()
	go func() { _ = a.srv.Serve(ln); close(a.done) }()
	return a
}

func (a *hubbleAgent) stop() {
	a.srv.Stop()
	<-a.done
	close(a.obs.GetEventsChannel())
}

func (a *hubbleAgent) feed(f *flowpb.Flow) {
	a.obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: f.GetNodeName(), Payload: f}
}

// socketProxy forwards the connections made to one socket to another (of
// the same network: unix or tcp); cut closes those open, the way a broken
// connection ends a stream while the server and its ring live on.
type socketProxy struct {
	ln    net.Listener
	net   string
	to    string
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, network, addr, to string) *socketProxy {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &socketProxy{ln: ln, net: network, to: to, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *socketProxy) forward(c net.Conn) {
	up, err := net.Dial(p.net, p.to)
	if err != nil {
		c.Close() // the server is down: the client sees the connection refused as a failed stream
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// cut closes every forwarded connection; it returns how many streams it cut.
func (p *socketProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for c := range p.conns {
		c.Close()
	}
	return n
}

// TestGRPCSource: `flowaudit run --source unix://…` follows Cilium's own
// agent-side observer (served on a unix socket, fed with gen's flows in
// real time) while, at random moments from the seed, the agent is killed
// and restarted with an empty ring (sometimes with the daemon SIGKILLed
// while it is down), the daemon is SIGKILLed and restarted, the stream is
// cut with the agent alive, and the daemon is stalled past the agent's
// ring. The check, by uuid with DuckDB against the flows the agent took
// in: each is archived exactly once or lies inside a recorded gap of the
// node; nothing is archived that was not fed; a stream_down gap is of
// unknown amount; Hubble's lost-events rows count at least the flows only
// they explain, and one that holds no missing flow counts 1 (the observer's
// seek artefact, see below); `flowaudit verify` is clean.
func TestGRPCSource(t *testing.T) {
	bin, rng, seed := setup(t)
	option.Config.ClusterName = "prod-kr1"
	nodeTypes.SetName("node-01")
	const node = "prod-kr1/node-01"
	dir := t.TempDir()
	agentSock := filepath.Join(dir, "agent.sock")
	sock := filepath.Join(dir, "hubble.sock")
	arch := filepath.Join(dir, "archive")
	record := filepath.Join(dir, "fed.txt")
	seconds := scale(40, 600)
	faults := scale(12, 200)
	// The agent's ring (4,095 flows) lasts 4 s at 1,000 flows/s: most
	// daemon restarts come back within it; stalls and agent restarts do not.
	r := rate(1000, 1000)

	var mu sync.Mutex
	cur := startHubbleAgent(t, agentSock)
	defer func() {
		mu.Lock()
		if cur != nil {
			cur.stop()
		}
		mu.Unlock()
	}()
	proxy := startProxy(t, "unix", sock, agentSock)

	d := newDaemon(t, bin, "--source", "unix://"+sock, "--archive", arch, "--node", node,
		"--stats-interval", "1s", "--max-file-age", "1s", "--verify-interval", "0", "--log-level", "warn")
	d.start()
	if !d.ready(time.Minute) {
		t.Fatal("not ready")
	}
	// The feeder: gen's flows in real time into the agent that is up (an
	// agent that is down takes nothing in), each recorded as gen's --record
	// does (uuid, time, node, size).
	g, err := gen.New(gen.Config{Seed: int64(seed % 1e6), Nodes: 1, Cluster: "prod-kr1", Rate: float64(r), Start: time.Now(),
		LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(record)
	if err != nil {
		t.Fatal(err)
	}
	rec := bufio.NewWriter(out)
	fed := 0
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		start, wall := g.Now(), time.Now()
		for g.Now().Sub(start) < time.Duration(seconds)*time.Second {
			f := g.Next().GetFlow()
			if f == nil {
				continue
			}
			if d := g.Now().Sub(start) - time.Since(wall); d > time.Millisecond {
				time.Sleep(d)
			}
			mu.Lock()
			if cur != nil {
				cur.feed(f)
				fmt.Fprintf(rec, "%s %d %s %d\n", f.GetUuid(), f.GetTime().AsTime().UnixNano(), f.GetNodeName(), proto.Size(f))
				fed++
			}
			mu.Unlock()
		}
	}()

	// The stream is up once the agent has sent a flow: the daemon's first
	// start asked for all the ring holds, so it holds the first flow fed.
	streamUp := func(within time.Duration) bool {
		for deadline := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
			if m := d.metrics(); m != nil && m["flowaudit_ingest_grpc_stream_up"] == 1 {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
		}
	}
	if !streamUp(time.Minute) {
		t.Fatal("the daemon's stream is not up")
	}

	// The faults, spread over the feeder's run but for its last 5 s (the
	// daemon then reads what is left without a fault).
	mean := time.Duration(seconds-5) * time.Second / time.Duration(faults)
	var actions []string
	counts := map[string]int{}
	deadline := time.Now().Add(time.Duration(seconds-5) * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(mean/2 + time.Duration(rng.Int64N(int64(mean))))
		switch k := rng.IntN(10); {
		case k < 4: // the daemon SIGKILLed and restarted at once
			d.kill()
			d.start()
			counts["daemon kill"]++
			if rng.IntN(4) == 0 {
				actions = append(actions, "kill") // the next fault may land in its startup
				continue
			}
			if !d.ready(time.Minute) {
				t.Fatal("not ready a minute after a restart")
			}
			actions = append(actions, "kill+ready")
		case k < 7: // the agent killed: its ring is lost
			pause := time.Duration(rng.IntN(2000)) * time.Millisecond
			mu.Lock()
			cur.stop()
			cur = nil
			mu.Unlock()
			counts["agent restart"]++
			action := fmt.Sprintf("agent-down+%v", pause)
			if rng.IntN(3) == 0 { // and the daemon too, while the agent is down
				time.Sleep(pause / 2)
				d.kill()
				d.start()
				counts["daemon kill"]++
				counts["daemon kill while the agent is down"]++
				time.Sleep(pause / 2)
				action += "(kill)"
			} else {
				time.Sleep(pause)
			}
			mu.Lock()
			cur = startHubbleAgent(t, agentSock)
			mu.Unlock()
			actions = append(actions, action)
		case k < 9: // the stream cut, the agent alive
			n := proxy.cut()
			counts["stream cut"]++
			actions = append(actions, fmt.Sprintf("cut(%d)", n))
		default: // the daemon stalled, often past what the ring and the transport's buffers hold: Hubble's lost events
			pause := time.Duration(2000+rng.IntN(7000)) * time.Millisecond
			d.signal(syscall.SIGSTOP)
			time.Sleep(pause)
			d.signal(syscall.SIGCONT)
			counts["stall"]++
			actions = append(actions, fmt.Sprintf("stop+%v", pause))
		}
	}
	if len(actions) > 60 {
		actions = append(actions[:60:60], "...")
	}
	t.Logf("faults %v: %s", counts, strings.Join(actions, " "))
	<-feedDone
	// The observer's ring hands a reader its newest slot only once the next
	// event is written: one more flow, not recorded, lets the last one out.
	mu.Lock()
	extra := g.Next().GetFlow()
	for extra == nil {
		extra = g.Next().GetFlow()
	}
	cur.feed(extra)
	mu.Unlock()
	if err := rec.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if !streamUp(time.Minute) {
		t.Fatal("the daemon's stream is not up after the last fault")
	}
	d.caughtUp(3 * time.Minute)
	d.stop()

	e, db := checkEvidence(t, arch, record)
	t.Logf("evidence: %v", e)
	// The extra flow may be archived: it was fed, not recorded.
	neverFed := count(t, db, `SELECT count(*) FROM a ANTI JOIN w USING (uuid) WHERE uuid <> ?`, extra.GetUuid())
	if e.duplicates != 0 || neverFed != 0 || e.uncovered != 0 || e.written != int64(fed) || fed == 0 {
		t.Fatalf("want every flow fed (%d) archived at most once, each missing one inside a recorded gap: %v (%d archived never fed)", fed, e, neverFed)
	}
	if n := count(t, db, `SELECT count(*) FROM l WHERE reason = 'stream_down' AND amount <> 'unknown'`); n != 0 {
		t.Errorf("%d stream_down gaps claim an amount the collector cannot know", n)
	}
	// Hubble's lost events: the observer counts the slots a lapped reader
	// lost, so the flows missing in their ranges that no stream_down gap
	// explains are at most their total. The total may exceed them by one
	// per row that holds no missing flow: Cilium's observer, asked for a
	// since older than its full ring, stops its backward seek one slot
	// before the oldest flow and reports that slot lost (newRingReader in
	// pkg/hubble/observer/local_observer.go), a count of 1 for a flow that
	// may have been archived long before. Any other row holds a missing flow.
	exec1(t, db, `CREATE TEMP TABLE only_hubble AS SELECT m.* FROM m
		WHERE NOT EXISTS (SELECT 1 FROM l WHERE l.reason <> 'hubble_lost_events' AND m.ns // 1000 BETWEEN l.lo AND l.hi)`)
	hubbleLost := count(t, db, `SELECT coalesce(sum(lost_events), 0) FROM l WHERE reason = 'hubble_lost_events'`)
	hubbleRows := count(t, db, `SELECT count(*) FROM l WHERE reason = 'hubble_lost_events'`)
	onlyHubble := count(t, db, `SELECT count(*) FROM only_hubble`)
	emptyRows := count(t, db, `SELECT count(*) FROM l WHERE reason = 'hubble_lost_events'
		AND NOT EXISTS (SELECT 1 FROM only_hubble m WHERE m.ns // 1000 BETWEEN l.lo AND l.hi)`)
	if n := count(t, db, `SELECT count(*) FROM l WHERE reason = 'hubble_lost_events' AND (amount <> 'exact' OR lost_events <> 1)
		AND NOT EXISTS (SELECT 1 FROM only_hubble m WHERE m.ns // 1000 BETWEEN l.lo AND l.hi)`); n != 0 {
		t.Errorf("%d of Hubble's lost-events rows claim more than the seek artefact's 1 and hold no missing flow", n)
	}
	if onlyHubble > hubbleLost || hubbleLost-onlyHubble > emptyRows {
		t.Errorf("%d flows missing only in the ranges of Hubble's lost events, which count %d (%d rows of 1 with no missing flow)", onlyHubble, hubbleLost, emptyRows)
	}
	streamDown := count(t, db, `SELECT count(*) FROM l WHERE reason = 'stream_down'`)
	if counts["agent restart"] > 0 && streamDown == 0 {
		t.Errorf("the agent restarted %d times and no stream_down gap is recorded", counts["agent restart"])
	}
	t.Logf("verify: %s", verifyClean(t, bin, arch))
	t.Logf("figures: mode %s seed %d rate %d/s: %d daemon kills (%d while the agent was down), %d agent restarts (ring lost), %d stream cuts, %d stalls; "+
		"%d flows fed, %d archived once, 0 duplicated, %d missing, all inside %d stream_down gaps and %d Hubble lost-events rows (counting %d; %d rows of 1 with no missing flow)",
		mode, seed, r, counts["daemon kill"], counts["daemon kill while the agent is down"], counts["agent restart"], counts["stream cut"], counts["stall"],
		e.written, e.archived, e.missing, streamDown, hubbleRows, hubbleLost, emptyRows)
}
