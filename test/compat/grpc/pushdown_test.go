package grpc

import (
	"bytes"
	"database/sql"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	observerTypes "github.com/cilium/cilium/pkg/hubble/observer/types"
	nodeTypes "github.com/cilium/cilium/pkg/node/types"
	"github.com/cilium/cilium/pkg/option"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// countingListener counts the bytes its connections write: what the
// server sends on the wire (gRPC framing included).
type countingListener struct {
	net.Listener
	sent atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, sent: &l.sent}, nil
}

type countingConn struct {
	net.Conn
	sent *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.sent.Add(int64(n))
	return n, err
}

// TestPushDownArchivesTheSame: the same flows in Cilium's observer, read by
// `flowaudit run` with an allowlist, a denylist and a field mask, once as
// they are and once pushed down to the observer (--push-down): the two
// archives' flows are equal row for row (DuckDB EXCEPT both ways), and the
// observer sent fewer bytes. The bytes are logged: bench/README.md.
func TestPushDownArchivesTheSame(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the daemon against Cilium's observer twice")
	}
	option.Config.ClusterName = "prod-kr1"
	nodeTypes.SetName("node-01")
	dir := t.TempDir()
	bin := buildFlowaudit(t, dir)
	sock := filepath.Join(dir, "hubble.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	a := serveAgent(t, cl)
	defer a.stop()

	// Within the observer's ring (4,095), so that both runs read them all.
	const flows = 4000
	g, err := gen.New(gen.Config{Seed: 5, Nodes: 1, Cluster: "prod-kr1", Rate: 1000, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n <= flows; { // one more: the ring hands out its newest once another is written
		f := g.Next().GetFlow()
		if f == nil {
			continue
		}
		a.obs.GetEventsChannel() <- &observerTypes.MonitorEvent{Timestamp: time.Now(), NodeName: f.GetNodeName(), Payload: f}
		n++
	}

	const (
		allow = `{"verdict":["FORWARDED","DROPPED"]}`
		deny  = `{"destination_port":["53"]}`
		mask  = "time,node_name,uuid,verdict,source.namespace,source.pod_name,destination.namespace,destination.pod_name,IP,Type,traffic_direction"
	)
	run := func(arch string, args ...string) int64 {
		before := cl.sent.Load()
		logs := &bytes.Buffer{}
		c := exec.Command(bin, append([]string{"run", "--source", "unix://" + sock, "--archive", arch, "--node", "prod-kr1/node-01", "--listen", "",
			"--allowlist", allow, "--denylist", deny, "--fieldmask", mask, "--log-level", "warn"}, args...)...)
		c.Stdout, c.Stderr = logs, logs
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * time.Second)
		_ = c.Process.Signal(syscall.SIGTERM)
		if err := c.Wait(); err != nil {
			t.Fatalf("%v\n%s", err, logs)
		}
		return cl.sent.Load() - before
	}
	plain, pushed := filepath.Join(dir, "plain"), filepath.Join(dir, "pushed")
	plainBytes := run(plain)
	pushedBytes := run(pushed, "--push-down")

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The columns of a file's schema, without the hive partitions, the
	// same in both archives.
	q := func(root string) string {
		return fmt.Sprintf("SELECT * EXCLUDE (date, node) FROM read_parquet('%s/flows/**/*.parquet', hive_partitioning=true, union_by_name=true)", root)
	}
	var n, onlyPlain, onlyPushed int
	if err := db.QueryRow(fmt.Sprintf("SELECT count(*) FROM (%s)", q(plain))).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(fmt.Sprintf("SELECT count(*) FROM (%s EXCEPT ALL %s)", q(plain), q(pushed))).Scan(&onlyPlain); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(fmt.Sprintf("SELECT count(*) FROM (%s EXCEPT ALL %s)", q(pushed), q(plain))).Scan(&onlyPushed); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d flows served, %d archived; the observer sent %d bytes (%.0f a flow), %d with push-down (%.0f a flow): %.1f%% less",
		flows, n, plainBytes, float64(plainBytes)/flows, pushedBytes, float64(pushedBytes)/flows, 100*(1-float64(pushedBytes)/float64(plainBytes)))
	if n == 0 || n == flows {
		t.Fatalf("%d of %d flows archived: the filter should keep some and drop some", n, flows)
	}
	if onlyPlain != 0 || onlyPushed != 0 {
		t.Fatalf("archives differ: %d rows only without push-down, %d only with it", onlyPlain, onlyPushed)
	}
	if pushedBytes >= plainBytes {
		t.Fatalf("push-down sent %d bytes, without %d", pushedBytes, plainBytes)
	}
}
