// Package serve_test runs the real hubble CLI of Cilium v1.18.4 (built from
// the module by `go build`, a tool of this module) against flowaudit serve,
// and compares what each `hubble observe` prints with the flows DuckDB
// selects from the same archive for the same predicate.
package serve_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	_ "github.com/duckdb/duckdb-go/v2"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/serve"
)

var start = time.Date(2026, 1, 1, 22, 0, 0, 0, time.UTC)

// hubbleBin builds the hubble CLI once per test binary.
func hubbleBin(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	mod := filepath.Join(filepath.Dir(file), "..")
	bin := filepath.Join(os.TempDir(), "flowaudit-compat-hubble-v1.18.4")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/cilium/cilium/hubble")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building hubble: %v\n%s", err, out)
	}
	return bin
}

func genFlows(t *testing.T, seed int64, from time.Time, n int) []*flowpb.Flow {
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

func write(t *testing.T, w *archive.Writer, flows []*flowpb.Flow) {
	for i := 0; i < len(flows); i += 500 {
		b := &flow.Batch{}
		for _, f := range flows[i:min(i+500, len(flows))] {
			proto.Merge(b.Next(), f)
		}
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

func startServe(t *testing.T, root string) string {
	s, err := serve.New(serve.Config{Roots: []string{root}, Poll: 50 * time.Millisecond, Version: "flowaudit test"})
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
	return lis.Addr().String()
}

func hubble(t *testing.T, bin, addr string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, append(args, "--server", addr)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("hubble %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// uuidsOf reads `hubble observe -o jsonpb` output (one GetFlowsResponse a
// line): the flows' time and uuid, checking that they come in time order.
func uuidsOf(t *testing.T, out []byte) []string {
	t.Helper()
	var ids []string
	var last time.Time
	for line := range strings.Lines(string(out)) {
		var resp struct {
			Flow struct {
				UUID string    `json:"uuid"`
				Time time.Time `json:"time"`
			} `json:"flow"`
		}
		if err := json.Unmarshal([]byte(line), &resp); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		if resp.Flow.Time.Before(last) {
			t.Fatalf("flow %s at %s after one at %s", resp.Flow.UUID, resp.Flow.Time, last)
		}
		last = resp.Flow.Time
		ids = append(ids, fmt.Sprint(resp.Flow.Time.UnixNano(), " ", resp.Flow.UUID))
	}
	return ids
}

func duckUUIDs(t *testing.T, db *sql.DB, root, where, tail string) []string {
	t.Helper()
	q := fmt.Sprintf("SELECT time_ns || ' ' || uuid FROM read_parquet('%s/flows/**/*.parquet', hive_partitioning=true) WHERE %s ORDER BY time_ns %s", root, where, tail)
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func TestHubbleObserveEqualsDuckDB(t *testing.T) {
	bin := hubbleBin(t)
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root, RowGroupRows: 500, MaxFileRows: 2000}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	flows := genFlows(t, 11, start, 6000)
	write(t, w, flows)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	addr := startServe(t, root)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// Values the generated flows hold, for the filters.
	var ns, pod, label, fqdn, node, dstIP string
	for _, f := range flows {
		if ns == "" && f.GetSource().GetNamespace() != "" && f.GetSource().GetPodName() != "" && len(f.GetSource().GetLabels()) > 0 {
			ns, pod, label = f.GetSource().GetNamespace(), f.GetSource().GetPodName(), f.GetSource().GetLabels()[0]
		}
		if fqdn == "" && len(f.GetDestinationNames()) > 0 {
			fqdn = f.GetDestinationNames()[0]
		}
		if dstIP == "" && f.GetVerdict() == flowpb.Verdict_DROPPED {
			dstIP = f.GetIP().GetDestination()
		}
	}
	node = flows[0].GetNodeName()
	podPrefix := pod[:len(pod)/2]
	since, until := flows[1500].GetTime().AsTime(), flows[4200].GetTime().AsTime()
	us := func(tm time.Time) string { return fmt.Sprint(tm.UnixNano()) }
	nsPred := fmt.Sprintf("(coalesce(source_namespace = '%[1]s', false) OR coalesce(destination_namespace = '%[1]s', false))", ns)
	for _, c := range []struct {
		args        []string
		where, tail string
	}{
		{[]string{"--since", since.Format(time.RFC3339Nano), "--until", until.Format(time.RFC3339Nano)}, "time_ns BETWEEN " + us(since) + " AND " + us(until), ""},
		{[]string{"--first", "15"}, "true", "LIMIT 15"},
		{[]string{"--last", "15"}, "true", "DESC LIMIT 15"},
		{[]string{"--since", since.Format(time.RFC3339Nano), "--first", "9"}, "time_ns >= " + us(since), "LIMIT 9"},
		{[]string{"--all", "--namespace", ns}, nsPred, ""},
		{[]string{"--all", "--pod", ns + "/" + podPrefix}, fmt.Sprintf("(coalesce(source_namespace = '%[1]s' AND starts_with(source_pod_name, '%[2]s'), false) OR coalesce(destination_namespace = '%[1]s' AND starts_with(destination_pod_name, '%[2]s'), false))", ns, podPrefix), ""},
		{[]string{"--all", "--verdict", "DROPPED"}, "verdict = 'DROPPED'", ""},
		{[]string{"--all", "--to-fqdn", fqdn}, fmt.Sprintf("coalesce(list_contains(destination_names, '%s'), false)", fqdn), ""},
		{[]string{"--all", "--port", "53"}, "(coalesce(l4_source_port = 53, false) OR coalesce(l4_destination_port = 53, false))", ""},
		{[]string{"--all", "--label", label}, fmt.Sprintf("(coalesce(list_contains(source_labels, '%[1]s'), false) OR coalesce(list_contains(destination_labels, '%[1]s'), false))", label), ""},
		{[]string{"--all", "--not", "--namespace", ns}, "NOT " + nsPred, ""},
		{[]string{"--all", "--node-name", node}, fmt.Sprintf("node_name = '%s'", node), ""},
		{[]string{"--all", "--http-status", "200"}, "l7_http_code = 200", ""},
		{[]string{"--all", "--http-method", "GET"}, "l7_http_method = 'GET'", ""},
		{[]string{"--all", "--protocol", "udp"}, "l4_protocol = 'UDP'", ""},
		{[]string{"--all", "--to-ip", dstIP}, fmt.Sprintf("ip_destination = '%s'", dstIP), ""},
		{[]string{"--all", "--traffic-direction", "egress"}, "traffic_direction = 'EGRESS'", ""},
		{[]string{"--all", "--type", "l7"}, "event_type_type = 129", ""},
		{[]string{"--last", "20", "--verdict", "DROPPED", "--node-name", node}, fmt.Sprintf("verdict = 'DROPPED' AND node_name = '%s'", node), "DESC LIMIT 20"},
	} {
		got := uuidsOf(t, hubble(t, bin, addr, append([]string{"observe", "-o", "jsonpb"}, c.args...)...))
		want := duckUUIDs(t, db, root, c.where, c.tail)
		if strings.HasPrefix(c.tail, "DESC") {
			slices.Reverse(want)
		}
		if len(want) == 0 {
			t.Fatalf("%v: DuckDB selects no flow", c.args)
		}
		// Flows of the same time may come in either order.
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("hubble observe %v: %d flows, DuckDB %d (%s)", c.args, len(got), len(want), c.where)
		}
	}

	status := string(hubble(t, bin, addr, "status"))
	if !strings.Contains(status, "6,000/6,000") && !strings.Contains(status, "6000/6000") {
		t.Fatalf("hubble status:\n%s", status)
	}
	nodes := string(hubble(t, bin, addr, "list", "nodes"))
	for _, f := range flows[:20] {
		if !strings.Contains(nodes, f.GetNodeName()) {
			t.Fatalf("hubble list nodes has no %s:\n%s", f.GetNodeName(), nodes)
		}
	}
}

// TestHubbleFollow: `hubble observe --follow` against an archive that keeps
// being committed to prints every newly committed flow, once.
func TestHubbleFollow(t *testing.T) {
	bin := hubbleBin(t)
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	flows := genFlows(t, 12, time.Now().UTC().Add(-time.Minute), 3000)
	write(t, w, flows[:1000])
	addr := startServe(t, root)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "observe", "--follow", "-o", "jsonpb", "--server", addr)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	// The follower is connected once the server has a stream: give the CLI
	// time to connect, as the history before it is not to be printed.
	time.Sleep(2 * time.Second)
	write(t, w, flows[1000:2000])
	write(t, w, flows[2000:])
	got := map[string]int{}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for n := 0; n < 2000 && sc.Scan(); n++ {
		for _, id := range uuidsOf(t, sc.Bytes()) {
			_, id, _ = strings.Cut(id, " ")
			got[id]++
		}
	}
	for _, f := range flows[1000:] {
		if got[f.GetUuid()] != 1 {
			t.Fatalf("flow %s printed %d times", f.GetUuid(), got[f.GetUuid()])
		}
	}
	for _, f := range flows[:1000] {
		if got[f.GetUuid()] != 0 {
			t.Fatalf("flow %s committed before the follow was printed", f.GetUuid())
		}
	}
}
