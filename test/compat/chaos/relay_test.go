package chaos_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	peerpb "github.com/cilium/cilium/api/v1/peer"
	nodeTypes "github.com/cilium/cilium/pkg/node/types"
	"github.com/cilium/cilium/pkg/option"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

var (
	relayOnce sync.Once
	relayBin  string
	relayErr  error
)

// buildRelay builds hubble-relay from Cilium v1.18.4 (a tool of the
// test/compat module) once per test binary, beside the flowaudit binary.
func buildRelay(t *testing.T) string {
	t.Helper()
	relayOnce.Do(func() {
		relayBin = filepath.Join(filepath.Dir(binPath), "hubble-relay")
		build := exec.Command("go", "build", "-o", relayBin, "github.com/cilium/cilium/hubble-relay")
		build.Dir = ".."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			relayErr = fmt.Errorf("build hubble-relay: %v\n%s", err, out)
		}
	})
	if relayErr != nil {
		t.Fatal(relayErr)
	}
	return relayBin
}

// peerServer is Cilium's peer service as Relay reads it: on Notify, every
// node PEER_ADDED with its Hubble address (plaintext: no TLS server name),
// then nothing until the stream ends. pkg/hubble/peer.Service wants the
// agent's node manager; this announces the scenario's agents the same way.
type peerServer struct {
	peerpb.UnimplementedPeerServer
	peers []*peerpb.ChangeNotification
}

func (p *peerServer) Notify(_ *peerpb.NotifyRequest, s grpc.ServerStreamingServer[peerpb.ChangeNotification]) error {
	for _, cn := range p.peers {
		if err := s.Send(cn); err != nil {
			return err
		}
	}
	<-s.Context().Done()
	return nil
}

// ownNodeStream names the agent's node in the lost events it sends. The
// observer names them after the process's node (nodeTypes, one per
// process): a cilium-agent is alone in its process, these agents are not.
type ownNodeStream struct {
	grpc.ServerStream
	node string
}

func (s ownNodeStream) SendMsg(m any) error {
	if r, ok := m.(*observerpb.GetFlowsResponse); ok && r.GetLostEvents() != nil {
		r.NodeName = s.node
	}
	return s.ServerStream.SendMsg(m)
}

// startRelayAgent serves one node's observer on a loopback TCP address,
// as Relay reaches agents; readers counts the GetFlows streams it opened.
func startRelayAgent(t *testing.T, addr, node string, readers *atomic.Int32) *hubbleAgent {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the address was just released by the agent's previous life
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	return serveHubbleAgent(t, ln, grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if info.FullMethod == "/observer.Observer/GetFlows" {
			readers.Add(1)
		}
		return h(srv, ownNodeStream{ServerStream: ss, node: node})
	}))
}

// relayProc is a hubble-relay process that the scenario kills and restarts
// on the same addresses.
type relayProc struct {
	t      *testing.T
	args   []string
	addr   string
	logs   *syncBuffer
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// start starts Relay and waits until it listens: a restart may find its
// port still held for a moment, which ends it, and is tried again.
func (r *relayProc) start() {
	r.t.Helper()
	for try := 0; try < 20; try++ {
		r.cmd = exec.Command(relayBin, r.args...)
		r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
		if err := r.cmd.Start(); err != nil {
			r.t.Fatal(err)
		}
		r.exited = make(chan struct{})
		go func(c *exec.Cmd, exited chan struct{}) { _ = c.Wait(); close(exited) }(r.cmd, r.exited)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if c, err := net.Dial("tcp", r.addr); err == nil {
				c.Close()
				r.starts++
				return
			}
			select {
			case <-r.exited:
			default:
				if time.Now().After(deadline) {
					r.t.Fatalf("hubble-relay does not listen on %s:\n%s", r.addr, r.logs)
				}
				continue
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.t.Fatalf("hubble-relay exits at start:\n%s", r.logs)
}

func (r *relayProc) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// TestRelaySource: `flowaudit run --source relay://…` follows Cilium's
// hubble-relay (v1.18.4, a real process) in front of two agents (Cilium's
// agent-side observer each, on TCP, announced by a peer service), fed with
// gen's flows of their node in real time, while at random moments from the
// seed: an agent is killed and restarted with its ring lost (Relay reports
// it NODE_ERROR, and NODE_UNAVAILABLE to a request made meanwhile:
// sometimes the daemon is SIGKILLed while it is down), the daemon is
// SIGKILLed and restarted, Relay is SIGKILLed and restarted, the stream
// between the daemon and Relay is cut, and the daemon is stalled past the
// agents' rings. The check, per node, by uuid with DuckDB against the flows
// each agent took in: each is archived exactly once, in its node's
// partition, or lies inside a recorded gap of its node (stream_down, which
// names what Relay reported, or Hubble's lost events of that node's agent),
// but for one case the collector cannot see: Relay sends a node's error
// up to its error aggregation window (10 s) late, on the stream it belongs
// to, so when that stream ends within it (a daemon kill, a cut, Relay
// killed) the error is never reported, and what the dead agent still held
// (the last second of flows fed to it, at most) is missing outside every
// gap;
// nothing is archived that was not fed; `flowaudit verify` is clean.
func TestRelaySource(t *testing.T) {
	bin, rng, seed := setup(t)
	buildRelay(t)
	option.Config.ClusterName = "prod-kr1"
	nodeTypes.SetName("agents") // each agent's lost events are renamed to its node (ownNodeStream)
	dir := t.TempDir()
	arch := filepath.Join(dir, "archive")
	record := filepath.Join(dir, "fed.txt")
	seconds := scale(45, 600)
	faults := scale(14, 200)
	// Per node: each agent's ring (4,095 flows) lasts 8 s at 500 flows/s,
	// more than a daemon's or Relay's restart; stalls and agent restarts
	// may outlast it.
	r := rate(500, 500)

	genCfg := gen.Config{Seed: int64(seed % 1e6), Nodes: 2, Cluster: "prod-kr1", Rate: float64(r), LostEventEvery: -1, AgentEventEvery: -1}
	g, err := gen.New(genCfg)
	if err != nil {
		t.Fatal(err)
	}
	names := g.NodeNames()
	var mu sync.Mutex
	agents := map[string]*hubbleAgent{}
	addrs := map[string]string{}
	peers := &peerServer{}
	// Flows fed and not recorded (any may be archived): those that warm an
	// agent's ring, and those that let the last ones out.
	unrecorded := map[string]bool{}
	// Each agent's lives: the flows fed to it, and when it was stopped.
	type life struct {
		node    string
		uuids   []string
		stopped time.Time
	}
	var lives []*life
	current := map[string]*life{}
	// When the daemon's stream through Relay ended: a daemon kill, a cut,
	// Relay killed (mu).
	var streamEnds []time.Time
	streamEnded := func() {
		mu.Lock()
		streamEnds = append(streamEnds, time.Now())
		mu.Unlock()
	}
	readers := map[string]*atomic.Int32{}
	for _, name := range names {
		readers[name] = new(atomic.Int32)
	}
	// A running agent's ring is never empty: each agent starts with two
	// flows of its node in it, not recorded, as cmd/hubble-agent's does (on
	// an empty ring the observer's seek for a since starts its reader
	// before slot 0: Relay's first request, and its request to a restarted
	// agent, would meet it).
	wg, err := gen.New(gen.Config{Seed: int64(seed%1e6) + 1, Nodes: 2, Cluster: "prod-kr1", Rate: float64(r), Start: time.Now(),
		LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	startAgent := func(node string) *hubbleAgent { // mu held, or before the feeder runs
		a := startRelayAgent(t, addrs[node], node, readers[node])
		current[node] = &life{node: node}
		lives = append(lives, current[node])
		for n := 0; n < 2; {
			f := wg.Next().GetFlow()
			if f == nil || f.GetNodeName() != node {
				continue
			}
			f.Time = timestamppb.Now()
			a.feed(f)
			unrecorded[f.GetUuid()] = true
			n++
		}
		return a
	}
	for _, name := range names {
		addrs[name] = freeAddr(t)
		agents[name] = startAgent(name)
		peers.peers = append(peers.peers, &peerpb.ChangeNotification{Name: name, Address: addrs[name], Type: peerpb.ChangeNotificationType_PEER_ADDED})
	}
	defer func() {
		mu.Lock()
		for _, a := range agents {
			if a != nil {
				a.stop()
			}
		}
		mu.Unlock()
	}()
	peerSock := filepath.Join(dir, "peer.sock")
	pln, err := net.Listen("unix", peerSock)
	if err != nil {
		t.Fatal(err)
	}
	psrv := grpc.NewServer()
	peerpb.RegisterPeerServer(psrv, peers)
	go func() { _ = psrv.Serve(pln) }()
	defer psrv.Stop()

	relay := &relayProc{t: t, addr: freeAddr(t), logs: &syncBuffer{}}
	relay.args = []string{"serve", "--peer-service", "unix://" + peerSock, "--listen-address", relay.addr,
		"--health-listen-address", freeAddr(t), "--disable-client-tls", "--disable-server-tls", "--gops=false",
		"--retry-timeout", "1s", "--cluster-name", "prod-kr1"}
	relay.start()
	defer relay.kill()
	t.Cleanup(func() {
		if t.Failed() {
			logs := relay.logs.String()
			if len(logs) > 20000 {
				logs = "..." + logs[len(logs)-20000:]
			}
			t.Logf("hubble-relay logs:\n%s", logs)
		}
	})
	// The daemon reaches Relay through a proxy that can cut the stream.
	proxy := startProxy(t, "tcp", freeAddr(t), relay.addr)

	d := newDaemon(t, bin, "--source", "relay://"+proxy.ln.Addr().String(), "--archive", arch, "--node", "prod-kr1/relay-client",
		"--stats-interval", "1s", "--max-file-age", "1s", "--verify-interval", "0", "--log-level", "warn")
	d.start()
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
	// Flows start once the daemon reads: what an agent held before its
	// first reader is not the collector's to account for. Relay opens the
	// agents' streams once the daemon's is open; as cmd/hubble-agent does,
	// the first flows come a second after each agent's stream began (its
	// ring reader is then in place).
	if !streamUp(time.Minute) {
		t.Fatal("the daemon's stream is not up")
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		n := 0
		for _, c := range readers {
			if c.Load() > 0 {
				n++
			}
		}
		if n == len(names) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Relay opened no stream to the agents")
		}
	}
	time.Sleep(time.Second)
	genCfg.Start = time.Now()
	if g, err = gen.New(genCfg); err != nil {
		t.Fatal(err)
	}

	// The feeder: each flow to its node's agent in real time (an agent
	// that is down takes nothing in), recorded as gen's --record does
	// (uuid, time, node, size).
	out, err := os.Create(record)
	if err != nil {
		t.Fatal(err)
	}
	rec := bufio.NewWriter(out)
	fed := map[string]int{}
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
			if a := agents[f.GetNodeName()]; a != nil {
				// Stamped when the agent takes it in, as an agent's flows
				// are, whether or not the feeder keeps gen's pace: Relay's
				// reports carry its own clock, which the source compares.
				f.Time = timestamppb.Now()
				a.feed(f)
				fmt.Fprintf(rec, "%s %d %s %d\n", f.GetUuid(), f.GetTime().AsTime().UnixNano(), f.GetNodeName(), proto.Size(f))
				fed[f.GetNodeName()]++
				l := current[f.GetNodeName()]
				l.uuids = append(l.uuids, f.GetUuid())
			}
			mu.Unlock()
		}
	}()

	// The faults, spread over the feeder's run but for its last 5 s.
	mean := time.Duration(seconds-5) * time.Second / time.Duration(faults)
	var actions []string
	counts := map[string]int{}
	deadline := time.Now().Add(time.Duration(seconds-5) * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(mean/2 + time.Duration(rng.Int64N(int64(mean))))
		switch k := rng.IntN(20); {
		case k < 6: // the daemon SIGKILLed and restarted at once
			d.kill()
			streamEnded()
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
		case k < 11: // an agent killed: its ring is lost
			victim := names[rng.IntN(len(names))]
			pause := time.Duration(rng.IntN(3000)) * time.Millisecond
			mu.Lock()
			agents[victim].stop()
			current[victim].stopped = time.Now()
			agents[victim] = nil
			mu.Unlock()
			counts["agent restart"]++
			action := fmt.Sprintf("agent-down(%s)+%v", victim[strings.LastIndexByte(victim, '-')+1:], pause)
			if rng.IntN(3) == 0 { // and the daemon too, while the agent is down: Relay reports it NODE_UNAVAILABLE
				time.Sleep(pause / 2)
				d.kill()
				streamEnded()
				d.start()
				counts["daemon kill"]++
				counts["daemon kill while an agent is down"]++
				time.Sleep(pause / 2)
				action += "(kill)"
			} else {
				time.Sleep(pause)
			}
			mu.Lock()
			agents[victim] = startAgent(victim)
			mu.Unlock()
			actions = append(actions, action)
		case k < 15: // Relay SIGKILLed and restarted: the agents' rings live on
			pause := time.Duration(rng.IntN(3000)) * time.Millisecond
			relay.kill()
			streamEnded()
			time.Sleep(pause)
			relay.start()
			counts["relay restart"]++
			actions = append(actions, fmt.Sprintf("relay-down+%v", pause))
		case k < 18: // the stream between the daemon and Relay cut
			n := proxy.cut()
			streamEnded()
			counts["stream cut"]++
			actions = append(actions, fmt.Sprintf("cut(%d)", n))
		default: // the daemon stalled, at times past the agents' rings: Hubble's lost events
			pause := time.Duration(2000+rng.IntN(8000)) * time.Millisecond
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
	// Each agent's ring hands out its newest flow once another is written:
	// one more flow each, not recorded.
	mu.Lock()
	for sent := map[string]bool{}; len(sent) < len(names); {
		f := g.Next().GetFlow()
		if f == nil || sent[f.GetNodeName()] {
			continue
		}
		sent[f.GetNodeName()] = true
		unrecorded[f.GetUuid()] = true
		agents[f.GetNodeName()].feed(f)
	}
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
	time.Sleep(11 * time.Second) // Relay's held node errors (its 10 s error aggregation) and its sort buffer drain
	d.caughtUp(3 * time.Minute)
	d.stop()

	e, db := checkEvidence(t, arch, record)
	t.Logf("evidence: %v", e)
	exec1(t, db, `CREATE TEMP TABLE extra (uuid VARCHAR)`)
	for u := range unrecorded {
		exec1(t, db, `INSERT INTO extra VALUES (?)`, u)
	}
	neverFed := count(t, db, `SELECT count(*) FROM a ANTI JOIN w USING (uuid) WHERE uuid NOT IN (SELECT uuid FROM extra)`)
	total := 0
	for _, n := range fed {
		total += n
	}
	if e.duplicates != 0 || neverFed != 0 || e.written != int64(total) || total == 0 {
		t.Fatalf("want every flow fed (%d) archived at most once and nothing else: %v (%d archived never fed)", total, e, neverFed)
	}
	// Each flow under the node it was fed to.
	exec1(t, db, `CREATE TEMP TABLE an AS SELECT uuid, node_name FROM read_parquet(`+sqlString(arch+"/flows/**/*.parquet")+`, hive_partitioning=false)`)
	if n := count(t, db, `SELECT count(*) FROM an JOIN w USING (uuid) WHERE an.node_name <> w.node`); n != 0 {
		t.Errorf("%d flows archived under another node than their agent's", n)
	}
	// The gaps by node, as the losses table names it.
	if hasFiles(arch, "losses") {
		exec1(t, db, `CREATE TEMP TABLE ln AS SELECT node, epoch_us(coalesce(from_time, detected)) AS lo, epoch_us(coalesce(to_time, detected)) AS hi,
			reason, amount, lost_events, detail FROM read_parquet(`+sqlString(arch+"/losses/**/*.parquet")+`, hive_partitioning=false)`)
	} else {
		exec1(t, db, `CREATE TEMP TABLE ln (node VARCHAR, lo BIGINT, hi BIGINT, reason VARCHAR, amount VARCHAR, lost_events UBIGINT, detail VARCHAR)`)
	}
	// Relay holds a node's error for its aggregation window (10 s) and
	// sends it on the stream it belongs to: if that stream ends within it
	// (the daemon killed, the stream cut, Relay killed), the report is never
	// sent, and nothing tells the collector that the node's agent
	// restarted. What the dead agent still held then (its newest flows, at
	// most Relay's sort buffer and the observer's newest slot) is missing
	// outside every gap: the tail of an agent life that ended less than
	// 11 s before the stream did.
	exec1(t, db, `CREATE TEMP TABLE unreported (uuid VARCHAR, node VARCHAR)`)
	unreportedLives := 0
	for _, l := range lives {
		if l.stopped.IsZero() {
			continue
		}
		for _, k := range streamEnds {
			if k.After(l.stopped) && k.Sub(l.stopped) < 11*time.Second {
				unreportedLives++
				for _, u := range l.uuids[max(0, len(l.uuids)-r):] { // its last second
					exec1(t, db, `INSERT INTO unreported VALUES (?, ?)`, u, l.node)
				}
				break
			}
		}
	}
	exec1(t, db, `CREATE TEMP TABLE only_hubble AS SELECT m.* FROM m
		WHERE NOT EXISTS (SELECT 1 FROM ln WHERE ln.node = m.node AND ln.reason = 'stream_down' AND m.ns // 1000 BETWEEN ln.lo AND ln.hi)
		AND uuid NOT IN (SELECT uuid FROM unreported)`)
	if n := count(t, db, `SELECT count(*) FROM only_hubble m
		WHERE NOT EXISTS (SELECT 1 FROM ln WHERE ln.node = m.node AND ln.reason = 'hubble_lost_events' AND m.ns // 1000 BETWEEN ln.lo AND ln.hi)`); n != 0 {
		t.Errorf("%d missing flows lie inside no recorded gap of their node", n)
		// Where they are: runs of consecutive flows (less than 100 ms apart).
		rows, err := db.Query(`WITH u AS (SELECT node, ns FROM only_hubble m
				WHERE NOT EXISTS (SELECT 1 FROM ln WHERE ln.node = m.node AND ln.reason = 'hubble_lost_events' AND m.ns // 1000 BETWEEN ln.lo AND ln.hi)),
			r AS (SELECT node, ns, sum(CASE WHEN ns - prev > 100000000 OR prev IS NULL THEN 1 ELSE 0 END) OVER (PARTITION BY node ORDER BY ns) AS run
				FROM (SELECT node, ns, lag(ns) OVER (PARTITION BY node ORDER BY ns) AS prev FROM u))
			SELECT node, min(ns), max(ns), count(*) FROM r GROUP BY node, run ORDER BY 2`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var node string
			var lo, hi, n int64
			if err := rows.Scan(&node, &lo, &hi, &n); err != nil {
				t.Fatal(err)
			}
			t.Logf("outside every gap: %s %s .. %s: %d flows", node, time.Unix(0, lo).UTC().Format("15:04:05.000000"), time.Unix(0, hi).UTC().Format("15:04:05.000000"), n)
		}
		rows.Close()
	}
	if n := count(t, db, `SELECT count(*) FROM ln WHERE reason NOT IN ('stream_down', 'hubble_lost_events')`); n != 0 {
		t.Errorf("%d gaps of another reason than stream_down and hubble_lost_events", n)
	}
	if n := count(t, db, `SELECT count(*) FROM ln WHERE reason = 'stream_down' AND amount <> 'unknown'`); n != 0 {
		t.Errorf("%d stream_down gaps claim an amount the collector cannot know", n)
	}
	if n := count(t, db, `SELECT count(*) FROM ln WHERE node NOT IN (SELECT DISTINCT node FROM w)`); n != 0 {
		t.Errorf("%d gaps of a node that is not an agent's", n)
	}
	// Hubble's lost events, per node, as TestGRPCSource checks them: they
	// count at least the flows only they explain, and a row that holds no
	// missing flow counts 1 (the observer's seek, which through Relay the
	// source cannot tell from a loss: Relay interleaves the agents).
	var figures []string
	for _, node := range names {
		onlyHubble := count(t, db, `SELECT count(*) FROM only_hubble WHERE node = ?`, node)
		hubbleLost := count(t, db, `SELECT coalesce(sum(lost_events), 0) FROM ln WHERE node = ? AND reason = 'hubble_lost_events'`, node)
		hubbleRows := count(t, db, `SELECT count(*) FROM ln WHERE node = ? AND reason = 'hubble_lost_events'`, node)
		emptyRows := count(t, db, `SELECT count(*) FROM ln WHERE node = ? AND reason = 'hubble_lost_events'
			AND NOT EXISTS (SELECT 1 FROM only_hubble m WHERE m.node = ln.node AND m.ns // 1000 BETWEEN ln.lo AND ln.hi)`, node)
		if n := count(t, db, `SELECT count(*) FROM ln WHERE node = ? AND reason = 'hubble_lost_events' AND (amount <> 'exact' OR lost_events <> 1)
			AND NOT EXISTS (SELECT 1 FROM only_hubble m WHERE m.node = ln.node AND m.ns // 1000 BETWEEN ln.lo AND ln.hi)`, node); n != 0 {
			t.Errorf("%s: %d of Hubble's lost-events rows claim more than the seek's 1 and hold no missing flow", node, n)
		}
		if onlyHubble > hubbleLost || hubbleLost-onlyHubble > emptyRows {
			t.Errorf("%s: %d flows missing only in the ranges of Hubble's lost events, which count %d (%d rows of 1 with no missing flow)", node, onlyHubble, hubbleLost, emptyRows)
		}
		archived := count(t, db, `SELECT count(*) FROM w JOIN a USING (uuid) WHERE w.node = ?`, node)
		missing := count(t, db, `SELECT count(*) FROM m WHERE node = ?`, node)
		streamDown := count(t, db, `SELECT count(*) FROM ln WHERE node = ? AND reason = 'stream_down'`, node)
		inDown := count(t, db, `SELECT count(*) FROM m WHERE node = ?
			AND EXISTS (SELECT 1 FROM ln WHERE ln.node = m.node AND ln.reason = 'stream_down' AND m.ns // 1000 BETWEEN ln.lo AND ln.hi)`, node)
		unrep := missing - inDown - onlyHubble
		inLost := count(t, db, `SELECT count(*) FROM only_hubble m WHERE node = ?
			AND EXISTS (SELECT 1 FROM ln WHERE ln.node = m.node AND ln.reason = 'hubble_lost_events' AND m.ns // 1000 BETWEEN ln.lo AND ln.hi)`, node)
		t.Logf("%s: %d fed, %d archived once, %d missing: %d inside its %d stream_down gaps, %d inside its %d Hubble lost-events rows (counting %d; %d rows of 1 with no missing flow), %d the unreported tail of an agent restarted less than 11 s before the daemon's stream ended, %d outside every gap",
			node, fed[node], archived, missing, inDown, streamDown, inLost, hubbleRows, hubbleLost, emptyRows, unrep, onlyHubble-inLost)
		figures = append(figures, fmt.Sprintf("%s %d fed, %d archived once, %d missing (%d in %d stream_down gaps, %d in %d lost-events rows, %d the unreported tail of an agent, %d outside every gap)",
			node, fed[node], archived, missing, inDown, streamDown, inLost, hubbleRows, unrep, onlyHubble-inLost))
	}
	rows, err := db.Query(`SELECT node, lo, hi, detail, (SELECT count(*) FROM m WHERE m.node = ln.node AND m.ns // 1000 BETWEEN ln.lo AND ln.hi)
		FROM ln WHERE reason = 'stream_down' ORDER BY lo`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var node, detail string
		var lo, hi, inside int64
		if err := rows.Scan(&node, &lo, &hi, &detail, &inside); err != nil {
			t.Fatal(err)
		}
		t.Logf("gap %s %s .. %s: %d missing: %s", node, time.UnixMicro(lo).UTC().Format("15:04:05.000000"),
			time.UnixMicro(hi).UTC().Format("15:04:05.000000"), inside, detail)
	}
	rows.Close()
	if counts["agent restart"] > 0 && count(t, db, `SELECT count(*) FROM ln WHERE reason = 'stream_down'`) == 0 {
		t.Errorf("agents restarted %d times and no stream_down gap is recorded", counts["agent restart"])
	}
	t.Logf("verify: %s", verifyClean(t, bin, arch))
	t.Logf("figures: mode %s seed %d rate %d/s per node: %d daemon kills (%d while an agent was down), %d agent restarts (ring lost; %d less than 11 s before the daemon's stream ended), %d Relay restarts, %d stream cuts, %d stalls; %s; 0 duplicated, none archived that was not fed",
		mode, seed, r, counts["daemon kill"], counts["daemon kill while an agent is down"], counts["agent restart"], unreportedLives, counts["relay restart"], counts["stream cut"], counts["stall"],
		strings.Join(figures, "; "))
}
