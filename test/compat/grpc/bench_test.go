package grpc

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/cilium/cilium/pkg/hubble/container"
	"github.com/cilium/cilium/pkg/hubble/observer"
	"github.com/cilium/cilium/pkg/hubble/observer/observeroption"
	observerTypes "github.com/cilium/cilium/pkg/hubble/observer/types"
	nodeTypes "github.com/cilium/cilium/pkg/node/types"
	"github.com/cilium/cilium/pkg/option"
	"google.golang.org/grpc"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

// BenchmarkStreamIntoArchive: `flowaudit run` on one core (GOMAXPROCS=1)
// reads benchFlows flows from Cilium's observer over its unix socket and
// archives them; the figure is flows per CPU second of the daemon (its
// user + system time, from start to exit, startup and the last commit
// included), and flows per second of wall time from start until the last
// flow was decoded. The observer, in this process, holds them all in its
// ring ahead of the daemon (never overrun: the daemon reports no loss), so
// serving and feeding it are not counted.
func BenchmarkStreamIntoArchive(b *testing.B) {
	option.Config.ClusterName = "prod-kr1"
	nodeTypes.SetName("node-01")
	dir := b.TempDir()
	bin := buildFlowaudit(b, dir)
	for _, c := range []struct{ name, mask string }{{"every-field", ""}, {"docs-mask", fieldmask.DocsExample}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				// A new directory each run (-count runs this again): an
				// archive left by an earlier run would be resumed after its
				// flows, which gen's seed makes the same.
				streamOnce(b, bin, b.TempDir(), c.mask)
			}
		})
	}
}

const (
	benchFlows = 300_000
	// benchLead is how far the feeder may be ahead of the daemon: within
	// the observer's ring (65,535, its largest), so that none is lost.
	benchLead = 40_000
)

func streamOnce(b *testing.B, bin, dir, mask string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	capacity, err := container.NewCapacity(1<<16 - 1)
	if err != nil {
		b.Fatal(err)
	}
	obs, err := observer.NewLocalServer(flowParser{}, observer.NewNamespaceManager(), slog.New(slog.NewTextHandler(io.Discard, nil)),
		observeroption.WithMaxFlows(capacity))
	if err != nil {
		b.Fatal(err)
	}
	go obs.Start()
	defer close(obs.GetEventsChannel())
	sock := filepath.Join(dir, "hubble.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	observerpb.RegisterObserverServer(srv, obs)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	g, err := gen.New(gen.Config{Seed: 9, Nodes: 1, Cluster: "prod-kr1", Rate: 20000, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	fed := 0
	feed := func(n int) {
		for end := fed + n; fed < end; {
			f := g.Next().GetFlow()
			if f == nil {
				continue
			}
			obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: f.GetNodeName(), Payload: f}
			fed++
		}
	}
	feed(benchLead)

	listen := freeAddr(b)
	logs := &bytes.Buffer{}
	args := []string{"run", "--source", "unix://" + sock, "--archive", filepath.Join(dir, "archive"), "--node", "prod-kr1/node-01",
		"--listen", listen, "--log-level", "warn"}
	if mask != "" {
		args = append(args, "--fieldmask", mask)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stdout, cmd.Stderr = logs, logs
	b.ResetTimer()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var wall time.Duration
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		decoded := decodedFlows(listen)
		if decoded >= benchFlows {
			wall = time.Since(start)
			break
		}
		// Ahead of the daemon by at most benchLead, inside the ring.
		if fed <= benchFlows && fed-decoded < benchLead {
			feed(min(benchLead/4, benchFlows+1-fed)) // one more: the ring hands out its newest once another is written
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			b.Fatalf("the daemon decoded %d flows\n%s", decodedFlows(listen), logs)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%v\n%s", err, logs)
	}
	b.StopTimer()
	if lost, _ := filepath.Glob(filepath.Join(dir, "archive", "losses", "*", "*", "*.parquet")); len(lost) > 0 {
		b.Fatalf("the daemon recorded losses: %v\n%s", lost, logs)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	b.ReportMetric(benchFlows/cpu.Seconds(), "flows/cpu-s")
	b.ReportMetric(benchFlows/wall.Seconds(), "flows/s")
	b.ReportMetric(0, "ns/op")
}

// decodedFlows reads the daemon's flowaudit_pipeline_events_decoded_total
// of flows (0 while it does not answer).
func decodedFlows(listen string) int {
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "flowaudit_pipeline_events_decoded_total{") && strings.Contains(l, `kind="flow"`) {
			if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
				total += int(v)
			}
		}
	}
	return total
}
