package grpc

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	peerpb "github.com/cilium/cilium/api/v1/peer"
	observerTypes "github.com/cilium/cilium/pkg/hubble/observer/types"
	nodeTypes "github.com/cilium/cilium/pkg/node/types"
	"github.com/cilium/cilium/pkg/option"
	"google.golang.org/grpc"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// peerServer is Cilium's peer service as Relay reads it: on Notify, every
// node PEER_ADDED with its Hubble address (plaintext: no TLS server name),
// then nothing until the stream ends. pkg/hubble/peer.Service wants the
// agent's node manager; this announces the test's agents the same way.
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

// buildRelay builds hubble-relay from Cilium v1.18.4 (a tool of this
// module) into dir.
func buildRelay(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "hubble-relay")
	build := exec.Command("go", "build", "-o", bin, "github.com/cilium/cilium/hubble-relay")
	build.Dir, build.Env = filepath.Join(moduleRoot(), "test", "compat"), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hubble-relay: %v\n%s", err, out)
	}
	return bin
}

// freeAddr is a loopback TCP address nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr string, logs fmt.Stringer) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listens on %s\n%s", addr, logs)
}

// TestRunAgainstHubbleRelay: Cilium's hubble-relay in front of two agents
// (Cilium's observer each, announced by the peer service), read by
// `flowaudit run --source relay://`, which is killed and restarted twice
// (once while an agent is down: Relay then says NODE_UNAVAILABLE); one agent
// is killed (Relay: NODE_ERROR) and comes back with an empty ring (Relay
// sends it the stream's original request again). Every flow each agent
// took in is archived exactly once in its node's partitions, or lies in a
// stream_down gap of its node that names Relay's report.
func TestRunAgainstHubbleRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hubble-relay and runs the daemon against it for ~40s")
	}
	// Both agents run in this process: their lost_events (a reader lapped
	// by the ring's writer) name this one node.
	const agentsNode = "prod-kr1/agents"
	option.Config.ClusterName = "prod-kr1"
	nodeTypes.SetName("agents")
	dir := t.TempDir()
	bin := buildFlowaudit(t, dir)
	relayBin := buildRelay(t, dir)
	arch := filepath.Join(dir, "archive")

	// Flows a second per node: each agent's ring (4,095) holds 8 s, more
	// than a killed daemon's restart needs (its last commit, at most
	// --max-file-age old on a loaded machine, less the 2 s overlap).
	const rate, seconds = 500, 22
	genCfg := gen.Config{Seed: 11, Nodes: 2, Cluster: "prod-kr1", Rate: rate, LostEventEvery: -1, AgentEventEvery: -1}
	g, err := gen.New(genCfg)
	if err != nil {
		t.Fatal(err)
	}
	names := g.NodeNames()

	// The agents, on TCP as Relay reaches them.
	var mu sync.Mutex
	agents := map[string]*agent{}
	addrs := map[string]string{}
	peers := &peerServer{}
	for _, name := range names {
		addrs[name] = freeAddr(t)
		agents[name] = startAgentTCP(t, addrs[name])
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

	relayAddr := freeAddr(t)
	relayLogs := &syncBuffer{}
	relay := exec.Command(relayBin, "serve", "--peer-service", "unix://"+peerSock, "--listen-address", relayAddr,
		"--health-listen-address", freeAddr(t), "--disable-client-tls", "--disable-server-tls", "--gops=false",
		"--retry-timeout", "1s", "--cluster-name", "prod-kr1")
	relay.Stdout, relay.Stderr = relayLogs, relayLogs
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = relay.Process.Kill(); _ = relay.Wait() }()
	waitListening(t, relayAddr, relayLogs)

	logs := &syncBuffer{}
	var listen string
	startRun := func() *exec.Cmd {
		listen = freeAddr(t)
		c := exec.Command(bin, "run", "--source", "relay://"+relayAddr, "--archive", arch, "--node", "prod-kr1/relay-client",
			"--listen", listen, "--stats-interval", "1s", "--max-file-age", "2s", "--log-level", "warn")
		c.Stdout, c.Stderr = logs, logs
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	kill := func(c *exec.Cmd) {
		_ = c.Process.Signal(syscall.SIGKILL)
		_ = c.Wait()
	}
	victim := names[0]
	run := startRun()
	// Flows start once the daemon reads: an agent's flows from before its
	// first reader are not the collector's to account for.
	for deadline := time.Now().Add(time.Minute); metric(listen, "flowaudit_ingest_grpc_stream_up") != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon's stream is not up\n%s", logs)
		}
	}
	genCfg.Start = time.Now()
	if g, err = gen.New(genCfg); err != nil {
		t.Fatal(err)
	}
	// The feeder: each flow to its node's agent in real time; a node whose
	// agent is down takes nothing in.
	written := map[string][]fed{}
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		start, wall := g.Now(), time.Now()
		for g.Now().Sub(start) < seconds*time.Second {
			f := g.Next().GetFlow()
			if f == nil {
				continue
			}
			if d := g.Now().Sub(start) - time.Since(wall); d > time.Millisecond {
				time.Sleep(d)
			}
			mu.Lock()
			if a := agents[f.GetNodeName()]; a != nil {
				a.obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: f.GetNodeName(), Payload: f}
				written[f.GetNodeName()] = append(written[f.GetNodeName()], fed{uuid: f.GetUuid(), ns: f.GetTime().AsTime().UnixNano()})
			}
			mu.Unlock()
		}
	}()

	time.Sleep(4 * time.Second)
	// Killed and back within the agents' rings.
	kill(run)
	time.Sleep(500 * time.Millisecond)
	run = startRun()
	time.Sleep(4 * time.Second)
	// One agent dies with its ring: Relay reports NODE_ERROR.
	mu.Lock()
	agents[victim].stop()
	agents[victim] = nil
	mu.Unlock()
	// Relay's NODE_ERROR (about 1 s) and a commit after it (--max-file-age).
	time.Sleep(4 * time.Second)
	// A new request while it is down: Relay reports it NODE_UNAVAILABLE.
	kill(run)
	time.Sleep(500 * time.Millisecond)
	run = startRun()
	time.Sleep(2 * time.Second)
	// The agent is back, empty.
	mu.Lock()
	agents[victim] = startAgentTCP(t, addrs[victim])
	mu.Unlock()
	<-feedDone
	// Each agent's ring hands out its newest flow once another is written:
	// one more flow each, not counted.
	mu.Lock()
	for sent := map[string]bool{}; len(sent) < len(names); {
		f := g.Next().GetFlow()
		if f == nil || sent[f.GetNodeName()] {
			continue
		}
		sent[f.GetNodeName()] = true
		agents[f.GetNodeName()].obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: f.GetNodeName(), Payload: f}
	}
	mu.Unlock()
	time.Sleep(5 * time.Second) // Relay's sort buffer drains; the daemon commits
	_ = run.Process.Signal(syscall.SIGTERM)
	if err := run.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, logs)
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Each flow in its node's partition: the hive node= directory and the
	// row's node_name agree.
	rows, err := db.Query(fmt.Sprintf("SELECT uuid, node_name, count(*) FROM read_parquet('%s/flows/**/*.parquet') GROUP BY uuid, node_name", arch))
	if err != nil {
		t.Fatal(err)
	}
	archived := map[string]map[string]int{}
	total := 0
	for rows.Next() {
		var u, node string
		var n int
		if err := rows.Scan(&u, &node, &n); err != nil {
			t.Fatal(err)
		}
		if archived[node] == nil {
			archived[node] = map[string]int{}
		}
		archived[node][u] = n
		total++
	}
	rows.Close()
	var misplaced int
	if err := db.QueryRow(fmt.Sprintf("SELECT count(*) FROM read_parquet('%s/flows/**/*.parquet', hive_partitioning=true) WHERE node <> replace(node_name, '/', '_') AND node <> node_name", arch)).Scan(&misplaced); err != nil {
		t.Fatal(err)
	}
	if misplaced != 0 {
		t.Errorf("%d flows outside their node's partitions", misplaced)
	}
	type gap struct {
		node, reason, detail string
		lo, hi               int64
		missing              int
	}
	var gaps []gap
	rows, err = db.Query(fmt.Sprintf("SELECT node, reason, epoch_ns(coalesce(from_time, detected)), epoch_ns(coalesce(to_time, detected)), detail FROM read_parquet('%s/losses/**/*.parquet')", arch))
	if err == nil {
		for rows.Next() {
			var g gap
			if err := rows.Scan(&g.node, &g.reason, &g.lo, &g.hi, &g.detail); err != nil {
				t.Fatal(err)
			}
			gaps = append(gaps, g)
		}
		rows.Close()
	}
	fedTotal := 0
	for _, node := range names {
		missing := 0
		fedTotal += len(written[node])
		for _, w := range written[node] {
			switch n := archived[node][w.uuid]; {
			case n > 1:
				t.Fatalf("flow %s of %s archived %d times", w.uuid, node, n)
			case n == 1:
				continue
			}
			missing++
			inside := false
			for i := range gaps {
				if (gaps[i].node == node || gaps[i].node == agentsNode && gaps[i].reason == "hubble_lost_events") && w.ns >= gaps[i].lo/1000*1000 && w.ns <= gaps[i].hi {
					gaps[i].missing++
					inside = true
					break
				}
			}
			if !inside && missing <= 5 {
				t.Errorf("flow %s of %s at %s neither archived nor inside a gap of its node", w.uuid, node, time.Unix(0, w.ns).UTC().Format(time.RFC3339Nano))
			}
		}
		t.Logf("%s: %d flows fed, %d archived, %d missing", node, len(written[node]), len(archived[node]), missing)
		if node != victim && missing != 0 {
			t.Errorf("%s, whose agent ran throughout, misses %d flows", node, missing)
		}
	}
	if total > fedTotal+len(names) {
		t.Errorf("%d flows archived, %d fed", total, fedTotal)
	}
	var nodeError, unavailable bool
	for _, g := range gaps {
		t.Logf("gap %s %s %s .. %s: %d missing: %s", g.node, g.reason, time.Unix(0, g.lo).UTC().Format("15:04:05.000000"),
			time.Unix(0, g.hi).UTC().Format("15:04:05.000000"), g.missing, g.detail)
		if g.reason == "hubble_lost_events" && g.node == agentsNode {
			continue // Hubble's own count, checked by TestRunAgainstCiliumObserver
		}
		if g.reason != "stream_down" {
			t.Errorf("unexpected %s gap of %s", g.reason, g.node)
			continue
		}
		if g.node != victim {
			t.Errorf("a gap of %s, whose agent ran throughout", g.node)
		}
		nodeError = nodeError || strings.Contains(g.detail, "NODE_ERROR")
		unavailable = unavailable || strings.Contains(g.detail, "NODE_UNAVAILABLE")
	}
	if !nodeError || !unavailable {
		t.Errorf("want the victim's gap to name Relay's NODE_ERROR and NODE_UNAVAILABLE (got %v, %v)", nodeError, unavailable)
	}
	if t.Failed() {
		t.Logf("flowaudit logs:\n%s\nhubble-relay logs:\n%s", logs, relayLogs)
	}
}

// startAgentTCP runs an observer server on a loopback TCP address.
func startAgentTCP(t *testing.T, addr string) *agent {
	t.Helper()
	var ln net.Listener
	var err error
	// The address was just released by the agent's previous life.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	return serveAgent(t, ln)
}

// metric is the sum of a metric's samples on the daemon's /metrics (-1
// while it does not answer).
func metric(listen, name string) float64 {
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// syncBuffer is a bytes.Buffer two processes' output may be written to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
