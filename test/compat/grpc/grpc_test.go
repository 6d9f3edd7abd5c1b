// Package grpc runs `flowaudit run` against Cilium v1.18.4's own agent-side
// Hubble observer (pkg/hubble/observer.LocalObserverServer) served over a
// unix socket, fed with generated flows, and checks with DuckDB that every
// flow the observer took in is archived exactly once or lies inside a gap
// the archive records, with Hubble's own count where Hubble gives one.
package grpc

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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
	_ "github.com/duckdb/duckdb-go/v2"
	"google.golang.org/grpc"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// flowParser is the observer's payload parser for flows handed over whole:
// the agent's parser turns perf events into the same Flow messages.
type flowParser struct{}

func (flowParser) Decode(ev *observerTypes.MonitorEvent) (*v1.Event, error) {
	f := ev.Payload.(*flowpb.Flow)
	return &v1.Event{Timestamp: f.GetTime(), Event: f}, nil
}

// agent is a running observer server on a unix socket.
type agent struct {
	srv  *grpc.Server
	obs  *observer.LocalObserverServer
	done chan struct{}
}

func startAgent(t *testing.T, sock string) *agent {
	t.Helper()
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return serveAgent(t, ln)
}

// serveAgent runs a new observer server on ln.
func serveAgent(t *testing.T, ln net.Listener) *agent {
	t.Helper()
	obs, err := observer.NewLocalServer(flowParser{}, observer.NewNamespaceManager(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{srv: grpc.NewServer(), obs: obs, done: make(chan struct{})}
	observerpb.RegisterObserverServer(a.srv, obs)
	go obs.Start()
	go func() { _ = a.srv.Serve(ln); close(a.done) }()
	return a
}

func (a *agent) stop() {
	a.srv.Stop()
	<-a.done
	close(a.obs.GetEventsChannel())
}

type fed struct {
	uuid string
	ns   int64
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// buildFlowaudit builds the binary into dir.
func buildFlowaudit(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "flowaudit")
	build := exec.Command("go", "build", "-o", bin, "./cmd/flowaudit")
	build.Dir, build.Env = moduleRoot(), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func TestRunAgainstCiliumObserver(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon against Cilium's observer for ~30s")
	}
	option.Config.ClusterName = "prod-kr1"
	nodeTypes.SetName("node-01")
	dir := t.TempDir()
	bin := buildFlowaudit(t, dir)
	sock := filepath.Join(dir, "hubble.sock")
	arch := filepath.Join(dir, "archive")

	var mu sync.Mutex
	cur := startAgent(t, sock)
	defer func() { mu.Lock(); cur.stop(); mu.Unlock() }()

	// The feeder: 2,000 flows a second in real time into the current agent.
	const rate, seconds = 2000, 16
	g, err := gen.New(gen.Config{Seed: 7, Nodes: 1, Cluster: "prod-kr1", Rate: rate, Start: time.Now(), LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	var written []fed
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		start, wall := g.Now(), time.Now()
		for g.Now().Sub(start) < seconds*time.Second {
			ev := g.Next()
			f := ev.GetFlow()
			if f == nil {
				continue
			}
			if d := g.Now().Sub(start) - time.Since(wall); d > time.Millisecond {
				time.Sleep(d)
			}
			mu.Lock()
			cur.obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: f.GetNodeName(), Payload: f}
			written = append(written, fed{uuid: f.GetUuid(), ns: f.GetTime().AsTime().UnixNano()})
			mu.Unlock()
		}
	}()

	logs := &bytes.Buffer{}
	startRun := func() *exec.Cmd {
		c := exec.Command(bin, "run", "--source", "unix://"+sock, "--archive", arch, "--node", "prod-kr1/node-01",
			"--listen", "", "--stats-interval", "1s", "--max-file-age", "2s", "--log-level", "warn")
		c.Stdout, c.Stderr = logs, logs
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	run := startRun()
	time.Sleep(3 * time.Second)
	// Killed and back within the agent's ring (4,095 flows: 2 s here).
	_ = run.Process.Signal(syscall.SIGKILL)
	_ = run.Wait()
	time.Sleep(500 * time.Millisecond)
	run = startRun()
	time.Sleep(3 * time.Second)
	// Stalled past the ring: the observer reports each slot it lost.
	_ = run.Process.Signal(syscall.SIGSTOP)
	time.Sleep(3 * time.Second)
	_ = run.Process.Signal(syscall.SIGCONT)
	time.Sleep(2 * time.Second)
	// The agent restarts: its ring is gone.
	mu.Lock()
	_ = run.Process.Signal(syscall.SIGSTOP)
	time.Sleep(300 * time.Millisecond) // the reader falls behind what the old ring holds
	cur.stop()
	cur = startAgent(t, sock)
	mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	_ = run.Process.Signal(syscall.SIGCONT)
	<-feedDone
	// The observer's ring hands a reader its newest slot only once the next
	// event is written: one more flow, not counted, lets the last one out.
	mu.Lock()
	last := g.Next().GetFlow()
	cur.obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: last.GetNodeName(), Payload: last}
	mu.Unlock()
	time.Sleep(5 * time.Second) // the daemon reads the last flows
	_ = run.Process.Signal(syscall.SIGTERM)
	if err := run.Wait(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, logs)
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(fmt.Sprintf("SELECT uuid, count(*) FROM read_parquet('%s/flows/**/*.parquet') GROUP BY uuid", arch))
	if err != nil {
		t.Fatal(err)
	}
	archived := map[string]int{}
	for rows.Next() {
		var u string
		var n int
		if err := rows.Scan(&u, &n); err != nil {
			t.Fatal(err)
		}
		archived[u] = n
	}
	rows.Close()
	type gap struct {
		reason   string
		lo, hi   int64
		lost     sql.NullInt64
		missing  int
		amount   string
		detailed string
	}
	var gaps []gap
	rows, err = db.Query(fmt.Sprintf("SELECT reason, amount, epoch_ns(coalesce(from_time, detected)), epoch_ns(coalesce(to_time, detected)), lost_events, detail FROM read_parquet('%s/losses/**/*.parquet')", arch))
	if err == nil {
		for rows.Next() {
			var g gap
			if err := rows.Scan(&g.reason, &g.amount, &g.lo, &g.hi, &g.lost, &g.detailed); err != nil {
				t.Fatal(err)
			}
			gaps = append(gaps, g)
		}
		rows.Close()
	}
	// The collector's evidence starts at the oldest flow the agent's ring
	// still held when the daemon first read it (a first start asks for the
	// whole ring): flows before that were never its to account for, and on
	// a loaded machine the daemon can take longer to start than the ring
	// lasts.
	first := int64(math.MaxInt64)
	for _, w := range written {
		if archived[w.uuid] != 0 {
			first = min(first, w.ns)
		}
	}
	before := 0
	for _, w := range written {
		if w.ns < first {
			before++
		}
	}
	written = slices.DeleteFunc(written, func(w fed) bool { return w.ns < first })
	if before > 0 {
		t.Logf("%d flows fed before the oldest the daemon first read", before)
	}
	missing, outside := 0, 0
	for _, w := range written {
		switch n := archived[w.uuid]; {
		case n > 1:
			t.Fatalf("flow %s archived %d times", w.uuid, n)
		case n == 1:
			continue
		}
		missing++
		inside := false
		for i := range gaps {
			if w.ns >= gaps[i].lo/1000*1000 && w.ns <= gaps[i].hi {
				gaps[i].missing++
				inside = true
				break
			}
		}
		if !inside {
			outside++
			if outside <= 5 {
				t.Errorf("flow %s at %s neither archived nor inside a recorded gap", w.uuid, time.Unix(0, w.ns).UTC().Format(time.RFC3339Nano))
			}
		}
	}
	if len(archived) > len(written)+1 {
		t.Errorf("%d flows archived, %d fed", len(archived), len(written))
	}
	var hubbleLost, streamDown int
	for _, g := range gaps {
		t.Logf("gap %s %s %s .. %s: %d missing (Hubble's count %v): %s", g.reason, g.amount, time.Unix(0, g.lo).UTC().Format("15:04:05.000000"),
			time.Unix(0, g.hi).UTC().Format("15:04:05.000000"), g.missing, g.lost, g.detailed)
		switch g.reason {
		case "hubble_lost_events":
			hubbleLost += int(g.lost.Int64)
		case "stream_down":
			streamDown++
		}
	}
	t.Logf("%d flows fed, %d archived, %d missing (%d outside every gap); Hubble reported %d lost", len(written), len(archived), missing, outside, hubbleLost)
	if hubbleLost == 0 || streamDown == 0 {
		t.Errorf("want the stall's lost events and the agent restart's gap recorded; logs:\n%s", logs)
	}
	// Hubble counts what its ring lost: the flows missing inside those
	// gaps' ranges are that many, but for one artefact: Cilium's observer,
	// asked for a since older than its full ring, stops its backward seek
	// one slot before the oldest flow and reports that slot as lost
	// (newRingReader in pkg/hubble/observer/local_observer.go), a count of
	// 1 for a flow that may have been archived long before. So Hubble's
	// total may exceed the missing flows by what such records count, whose
	// range holds no missing flow; it may never fall short.
	// A flow missing inside a stream_down gap is explained by it (of
	// unknown amount), whatever lost-events ranges also hold it: Hubble's
	// count is compared with the flows only its lost events explain.
	onlyHubble := func(w fed) bool {
		if archived[w.uuid] != 0 {
			return false
		}
		in := false
		for _, g := range gaps {
			if w.ns >= g.lo/1000*1000 && w.ns <= g.hi {
				switch g.reason {
				case "stream_down":
					return false
				case "hubble_lost_events":
					in = true
				}
			}
		}
		return in
	}
	inHubble, empty := 0, 0
	for _, w := range written {
		if onlyHubble(w) {
			inHubble++
		}
	}
	for _, g := range gaps {
		if g.reason != "hubble_lost_events" {
			continue
		}
		held := false
		for _, w := range written {
			if onlyHubble(w) && w.ns >= g.lo/1000*1000 && w.ns <= g.hi {
				held = true
				break
			}
		}
		if !held {
			empty += int(g.lost.Int64)
		}
	}
	if inHubble > hubbleLost || hubbleLost-inHubble > empty {
		t.Errorf("%d flows missing in the ranges of Hubble's lost events, which count %d (%d of it in ranges with no missing flow)", inHubble, hubbleLost, empty)
	}
	if t.Failed() {
		t.Logf("logs:\n%s", logs)
	}
}
