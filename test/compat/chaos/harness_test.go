// Package chaos_test is `make chaos`: whole-system scenarios that start the
// real processes (`flowaudit gen` writing through lumberjack, `flowaudit
// run`, an S3 server, Cilium's agent-side Hubble observer), inject faults at random moments drawn from a logged seed, and end
// with an independent check: DuckDB over the archive against gen's own
// record of what it wrote (by uuid), plus `flowaudit verify`.
//
// The scenarios run only when CHAOS is set: CHAOS=short (CI-sized, a few
// minutes on 2 cores) or CHAOS=long (release-sized). CHAOS_SEED replays a
// run; CHAOS_RATE overrides the generator's rate in flows per second.
// docs/reliability.md states what each scenario proves.
package chaos_test

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

// mode is the scenario size: "short" or "long"; "" skips every scenario.
var mode = os.Getenv("CHAOS")

// scale returns short in short mode and long in long mode.
func scale[T any](short, long T) T {
	if mode == "long" {
		return long
	}
	return short
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// setup skips the test outside `make chaos`, and returns the flowaudit
// binary and the scenario's random source, its seed logged.
func setup(t *testing.T) (string, *rand.Rand, uint64) {
	t.Helper()
	switch mode {
	case "short", "long":
	case "":
		t.Skip("a chaos scenario: run with CHAOS=short or CHAOS=long (make chaos)")
	default:
		t.Fatalf("CHAOS=%q: want short or long", mode)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED: %v", err)
		}
	}
	t.Logf("mode %s, seed %d (CHAOS_SEED=%d replays it)", mode, seed, seed)
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowaudit-chaos-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "flowaudit")
		build := exec.Command("go", "build", "-o", binPath, "./cmd/flowaudit")
		build.Dir = "../../.."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed
}

// rate is gen's rate in flows per second.
func rate(short, long int) int {
	if s := os.Getenv("CHAOS_RATE"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return scale(short, long)
}

// startGen starts `flowaudit gen`; the channel reports its exit. It is
// killed when the test ends.
func startGen(t *testing.T, bin string, args ...string) <-chan error {
	t.Helper()
	gen := exec.Command(bin, append([]string{"gen"}, args...)...)
	var stderr bytes.Buffer
	gen.Stderr = &stderr
	if err := gen.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := gen.Wait()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		done <- err
	}()
	t.Cleanup(func() { _ = gen.Process.Kill() })
	return done
}

func waitGen(t *testing.T, done <-chan error, d time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gen: %v", err)
		}
	case <-time.After(d):
		t.Fatal("gen did not finish")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemon is a `flowaudit run` process that the scenario restarts.
type daemon struct {
	t      *testing.T
	bin    string
	args   []string
	addr   string
	logs   *syncBuffer
	cmd    *exec.Cmd
	client *http.Client
	starts int
	wrap   func(bin string, args []string) *exec.Cmd // e.g. inside a mount namespace
}

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

// newDaemon returns a daemon with args after `run`; --listen is added.
func newDaemon(t *testing.T, bin string, args ...string) *daemon {
	d := &daemon{t: t, bin: bin, addr: freeAddr(t), logs: &syncBuffer{},
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}}
	d.args = append([]string{"run", "--listen", d.addr}, args...)
	t.Cleanup(func() {
		if d.cmd != nil && d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		if t.Failed() {
			logs := d.logs.String()
			if len(logs) > 20000 {
				logs = "..." + logs[len(logs)-20000:]
			}
			t.Logf("daemon logs:\n%s", logs)
		}
	})
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	if d.wrap != nil {
		d.cmd = d.wrap(d.bin, d.args)
	} else {
		d.cmd = exec.Command(d.bin, d.args...)
	}
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.starts++
}

func (d *daemon) kill() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		d.t.Fatal(err)
	}
	_ = d.cmd.Wait()
}

func (d *daemon) signal(s os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(s); err != nil {
		d.t.Fatal(err)
	}
}

// stop sends SIGTERM and wants exit status 0.
func (d *daemon) stop() {
	d.t.Helper()
	d.signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		d.t.Fatalf("SIGTERM: exit %v", err)
	}
}

// ready waits up to within for /readyz to answer 200, and reports whether
// it did; with within 0 it asks once.
func (d *daemon) ready(within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if resp, err := d.client.Get("http://" + d.addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var sampleRE = regexp.MustCompile(`^(flowaudit_[a-z_]+)(\{[^}]*\})? (\S+)$`)

// metrics returns the daemon's flowaudit_* samples, by name and labels, and
// by name alone summed over labels; nil when it does not answer.
func (d *daemon) metrics() map[string]float64 {
	resp, err := d.client.Get("http://" + d.addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		m := sampleRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		out[m[1]+m[2]] += v
		if m[2] != "" {
			out[m[1]] += v
		}
	}
	return out
}

// caughtUp waits until the daemon has read everything (no lag, no queue)
// and the lines read did not change for 2s.
func (d *daemon) caughtUp(within time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(within)
	last := -1.0
	for time.Now().Before(deadline) {
		m := d.metrics()
		if m != nil && m["flowaudit_ingest_lag_bytes"] == 0 && m["flowaudit_pipeline_queue_bytes"] == 0 {
			if m["flowaudit_ingest_lines_total"] == last {
				return
			}
			last = m["flowaudit_ingest_lines_total"]
		}
		time.Sleep(2 * time.Second)
	}
	d.t.Fatalf("the daemon did not catch up within %v: %v", within, d.metrics())
}

// flowaudit runs a flowaudit command and returns its output and exit code.
func flowaudit(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("flowaudit %v: %v", args, err)
	}
	return string(out), 0
}

// verifyClean runs `flowaudit verify` and wants no finding.
func verifyClean(t *testing.T, bin, arch string) string {
	t.Helper()
	out, code := flowaudit(t, bin, "verify", "--archive", arch)
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	return strings.SplitN(out, "\n", 2)[0]
}

func duck(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one connection: the temporary tables are per connection
	t.Cleanup(func() { db.Close() })
	return db
}

func exec1(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n sql.NullInt64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	return n.Int64
}

// sqlString quotes s as a SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// hasFiles reports whether the archive has Parquet files of a table.
func hasFiles(arch, table string) bool {
	found := false
	_ = filepath.WalkDir(filepath.Join(arch, table), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasSuffix(p, ".parquet") && strings.HasPrefix(e.Name(), "part-") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// evidence is the independent check's outcome.
type evidence struct {
	written, archived, duplicates, neverWritten int64
	missing, uncovered                          int64
	gaps                                        int64
}

func (e evidence) String() string {
	return fmt.Sprintf("%d flows written, %d archived, %d duplicates, %d archived but never written, %d missing (%d outside every recorded gap), %d gaps",
		e.written, e.archived, e.duplicates, e.neverWritten, e.missing, e.uncovered, e.gaps)
}

// checkEvidence loads gen's --record files (uuid, time_ns, node, line
// bytes) and the archive into DuckDB and counts: flows written, archived,
// archived more than once, archived but never written, written but missing,
// and missing flows that lie in no recorded gap (losses table: between
// coalesce(from_time, detected) and coalesce(to_time, detected)).
// The DuckDB connection is returned with its tables w (written: uuid, ns,
// node, bytes), a (archived: uuid, n), l (losses: lo, hi in µs, reason,
// amount, lost_events, lost_bytes) and m (missing: as w) for further checks.
func checkEvidence(t *testing.T, arch string, records ...string) (evidence, *sql.DB) {
	t.Helper()
	db := duck(t)
	var files []string
	for _, r := range records {
		files = append(files, sqlString(r))
	}
	exec1(t, db, `CREATE TEMP TABLE w AS SELECT * FROM read_csv([`+strings.Join(files, ",")+`], delim=' ', header=false,
		columns={'uuid': 'VARCHAR', 'ns': 'BIGINT', 'node': 'VARCHAR', 'bytes': 'BIGINT'})`)
	if hasFiles(arch, "flows") {
		exec1(t, db, `CREATE TEMP TABLE a AS SELECT uuid, count(*) AS n FROM read_parquet(`+sqlString(arch+"/flows/**/*.parquet")+`, hive_partitioning=true) GROUP BY uuid`)
	} else {
		exec1(t, db, `CREATE TEMP TABLE a (uuid VARCHAR, n BIGINT)`)
	}
	if hasFiles(arch, "losses") {
		exec1(t, db, `CREATE TEMP TABLE l AS SELECT epoch_us(coalesce(from_time, detected)) AS lo, epoch_us(coalesce(to_time, detected)) AS hi,
			reason, amount, lost_events, lost_bytes FROM read_parquet(`+sqlString(arch+"/losses/**/*.parquet")+`, hive_partitioning=true)`)
	} else {
		exec1(t, db, `CREATE TEMP TABLE l (lo BIGINT, hi BIGINT, reason VARCHAR, amount VARCHAR, lost_events UBIGINT, lost_bytes UBIGINT)`)
	}
	exec1(t, db, `CREATE TEMP TABLE m AS SELECT w.* FROM w ANTI JOIN a USING (uuid)`)
	var e evidence
	e.written = count(t, db, `SELECT count(*) FROM w`)
	e.archived = count(t, db, `SELECT sum(n) FROM a`)
	e.duplicates = count(t, db, `SELECT count(*) FROM a WHERE n > 1`)
	e.neverWritten = count(t, db, `SELECT count(*) FROM a ANTI JOIN w USING (uuid)`)
	e.missing = count(t, db, `SELECT count(*) FROM m`)
	e.uncovered = count(t, db, `SELECT count(*) FROM m WHERE NOT EXISTS (SELECT 1 FROM l WHERE m.ns // 1000 BETWEEN l.lo AND l.hi)`)
	e.gaps = count(t, db, `SELECT count(*) FROM l WHERE reason <> 'hubble_lost_events'`)
	if e.missing > 0 {
		rows, err := db.Query(`SELECT reason, amount, lo, hi, lost_events, lost_bytes,
			(SELECT count(*) FROM m WHERE m.ns // 1000 BETWEEN l.lo AND l.hi) FROM l WHERE reason <> 'hubble_lost_events' ORDER BY lo`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var reason, amount string
			var lo, hi, inside int64
			var ev, by sql.NullInt64
			if err := rows.Scan(&reason, &amount, &lo, &hi, &ev, &by, &inside); err != nil {
				t.Fatal(err)
			}
			t.Logf("gap %s %s %s .. %s: lost_events %v lost_bytes %v, %d missing flows inside", reason, amount,
				time.UnixMicro(lo).UTC().Format("15:04:05.000000"), time.UnixMicro(hi).UTC().Format("15:04:05.000000"), ev, by, inside)
		}
		rows.Close()
		// Every gap that claims a known loss holds a missing flow.
		if n := count(t, db, `SELECT count(*) FROM l WHERE reason NOT IN ('hubble_lost_events') AND amount <> 'unknown'
			AND coalesce(lost_events, 0) + coalesce(lost_bytes, 0) > 0
			AND NOT EXISTS (SELECT 1 FROM m WHERE m.ns // 1000 BETWEEN l.lo AND l.hi)`); n > 0 {
			t.Errorf("%d gaps claim a loss but hold no missing flow", n)
		}
	}
	return e, db
}

// wantExact fails unless every flow written is archived once and nothing
// else is archived.
func wantExact(t *testing.T, e evidence) {
	t.Helper()
	t.Logf("evidence: %v", e)
	if e.duplicates != 0 || e.neverWritten != 0 || e.missing != 0 || e.archived != e.written || e.written == 0 {
		t.Fatalf("want every flow written archived exactly once: %v", e)
	}
}

// wantExplained fails unless every flow written is archived at most once
// and every missing one lies in a recorded gap.
func wantExplained(t *testing.T, e evidence) {
	t.Helper()
	t.Logf("evidence: %v", e)
	if e.duplicates != 0 || e.neverWritten != 0 || e.uncovered != 0 || e.written == 0 {
		t.Fatalf("want no duplicate and every missing flow inside a recorded gap: %v", e)
	}
	if e.missing > 0 && e.gaps == 0 {
		t.Fatalf("flows are missing and no gap is recorded: %v", e)
	}
}
