package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// TestRunProcessSurvivesKillsReloadsAndDrains runs `flowaudit run` as a
// process against an events.log that `flowaudit gen` writes through
// lumberjack (1 MiB files, compression on, every backup kept), kills it with
// SIGKILL twice and restarts it, changes its filter with SIGHUP, stops it with
// SIGTERM, and checks that every flow is archived exactly once (the flows the
// new filter denies: none after the reload), that the counters add up, and
// that a second run adds nothing.
func TestRunProcessSurvivesKillsReloadsAndDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary for ~40s")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	events := filepath.Join(dir, "hubble", "events.log")
	arch := filepath.Join(dir, "archive")
	addr := freeAddr(t)
	cfgPath := filepath.Join(dir, "config.yaml")
	writeConfig := func(denylist string) {
		t.Helper()
		cfg := "node: node-01\ncluster: prod-kr1\nlisten: " + addr + "\nlog: {level: info, format: json}\n" +
			"archive: {dir: " + arch + ", maxFileAge: 2s, statsInterval: 1s}\n" +
			"verify: {interval: 0}\n" +
			"sources:\n- name: static\n  file: " + events + "\n  denylist: '" + denylist + "'\n"
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("")

	const genSeconds = 20
	genDone := startGen(t, bin, "--realtime", "--rate", "1500", "--nodes", "1", "--duration", strconv.Itoa(genSeconds)+"s",
		"--out", events, "--max-size-mb", "1", "--max-backups", "0", "--compress", "--seed", "7")

	logs := &bytes.Buffer{}
	startRun := func() *exec.Cmd {
		t.Helper()
		c := exec.Command(bin, "run", "--config", cfgPath)
		c.Stdout, c.Stderr = logs, logs
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	scrape := func() map[string]float64 { return scrapeMetrics(t, client, addr) }
	waitReady := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if resp, err := client.Get("http://" + addr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("not ready after 30s; logs:\n%s", logs)
	}

	run := startRun()
	for kill := 0; kill < 2; kill++ {
		waitReady()
		time.Sleep(3 * time.Second)
		if err := run.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = run.Wait()
		run = startRun()
	}
	waitReady()
	time.Sleep(2 * time.Second)
	writeConfig(`{"verdict":["DROPPED"]}`)
	if err := run.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for scrape()["flowaudit_config_reloads_total{result=\"success\"}"] < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP reload not applied; logs:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case err := <-genDone:
		if err != nil {
			t.Fatalf("gen: %v", err)
		}
	case <-time.After(genSeconds*time.Second + 60*time.Second):
		t.Fatal("gen did not finish")
	}
	written := readAllEvents(t, filepath.Dir(events))
	var m map[string]float64
	deadline = time.Now().Add(60 * time.Second)
	for {
		m = scrape()
		if m["flowaudit_ingest_lag_bytes"] == 0 && m["flowaudit_pipeline_queue_bytes"] == 0 && stable(t, client, addr) {
			m = scrape()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not catch up; metrics %v", m)
		}
	}
	// The last process's counters add up: every line read is a decoded flow,
	// a decoded non-flow event or a decode error; every flow is kept or denied.
	read := m["flowaudit_ingest_lines_total"]
	flows := m[`flowaudit_pipeline_events_decoded_total{kind="flow"}`]
	nonFlow := m[`flowaudit_pipeline_events_decoded_total{kind="non_flow"}`]
	errs := m["flowaudit_pipeline_decode_errors_total"]
	kept, denied := m["flowaudit_pipeline_flows_kept_total"], m["flowaudit_pipeline_flows_denied_total"]
	if read == 0 || read != flows+nonFlow+errs || flows != kept+denied || errs != 0 {
		t.Fatalf("counters do not add up: read %v = flows %v + non-flow %v + errors %v; flows = kept %v + denied %v", read, flows, nonFlow, errs, kept, denied)
	}
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("SIGTERM: exit %v; logs:\n%s", err, logs)
	}

	got := archived(t, arch)
	checkArchive := func() {
		t.Helper()
		droppedArchived, droppedAfterGap := false, false
		for i := len(written) - 1; i >= 0; i-- {
			w := written[i]
			n := got[w.uuid]
			if n > 1 {
				t.Fatalf("flow %s archived %d times", w.uuid, n)
			}
			if !w.dropped {
				if n != 1 {
					t.Fatalf("flow %d (%s) of %d not archived", i, w.uuid, len(written))
				}
				continue
			}
			// DROPPED flows are archived up to the reload, none after it.
			if n == 1 {
				droppedArchived = true
			} else if droppedArchived {
				droppedAfterGap = true
			}
		}
		if droppedAfterGap {
			t.Fatal("a DROPPED flow before the reload is missing")
		}
		if !droppedArchived {
			t.Fatal("no DROPPED flow archived before the reload")
		}
	}
	checkArchive()
	if rep, err := archive.Verify(arch, time.Time{}, time.Time{}, nil); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}

	// A second run resumes at the end and adds nothing.
	run = startRun()
	waitReady()
	time.Sleep(time.Second)
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("second run: %v", err)
	}
	before := len(got)
	got = archived(t, arch)
	if len(got) != before {
		t.Fatalf("second run changed the archive: %d flows, was %d", len(got), before)
	}
	checkArchive()
}

// startGen starts `flowaudit gen` with args; it is killed when the test
// ends. The channel reports its exit.
func startGen(t *testing.T, bin string, args ...string) <-chan error {
	t.Helper()
	gen := exec.Command(bin, append([]string{"gen"}, args...)...)
	gen.Stderr = os.Stderr
	if err := gen.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gen.Wait() }()
	t.Cleanup(func() { _ = gen.Process.Kill() })
	return done
}

// buildBinary builds flowaudit into dir.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "flowaudit")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
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

var (
	sampleRE = regexp.MustCompile(`^(flowaudit_[a-z_]+)(?:\{([^}]*)\})? (\S+)$`)
	labelRE  = regexp.MustCompile(`([a-z_]+)="([^"]*)"`)
)

// scrapeMetrics returns flowaudit_* samples keyed by name plus labels other
// than source (summed over sources).
func scrapeMetrics(t *testing.T, client *http.Client, addr string) map[string]float64 {
	t.Helper()
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		m := sampleRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var kept []string
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			if l[1] != "source" {
				kept = append(kept, l[0])
			}
		}
		key := m[1]
		if len(kept) > 0 {
			key += "{" + strings.Join(kept, ",") + "}"
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		out[key] += v
	}
	return out
}

// stable reports whether the lines read did not change for 2s.
func stable(t *testing.T, client *http.Client, addr string) bool {
	a := scrapeMetrics(t, client, addr)["flowaudit_ingest_lines_total"]
	time.Sleep(2 * time.Second)
	return a == scrapeMetrics(t, client, addr)["flowaudit_ingest_lines_total"]
}

type writtenFlow struct {
	uuid    string
	dropped bool
}

// readAllEvents reads the flows of every exporter file (backups, .gz, the
// live file) in the order lumberjack wrote them.
func readAllEvents(t *testing.T, dir string) []writtenFlow {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "events-*"))
	if err != nil {
		t.Fatal(err)
	}
	// Backup names sort by their timestamp; .log and .log.gz never coexist
	// for one backup once gen is done (the mill compressed them).
	names = append(sortBackups(names), filepath.Join(dir, "events.log"))
	var out []writtenFlow
	for _, n := range names {
		f, err := os.Open(n)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(n, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, rest, ok := strings.Cut(line, `"uuid":"`)
			if !ok || !strings.HasPrefix(line, `{"flow":`) {
				continue
			}
			out = append(out, writtenFlow{uuid: rest[:strings.IndexByte(rest, '"')], dropped: strings.Contains(line, `"verdict":"DROPPED"`)})
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		f.Close()
	}
	return out
}

func sortBackups(names []string) []string {
	key := func(n string) string { return strings.TrimSuffix(filepath.Base(n), ".gz") }
	for i := 1; i < len(names); i++ {
		for j := i; j > 0 && key(names[j]) < key(names[j-1]); j-- {
			names[j], names[j-1] = names[j-1], names[j]
		}
	}
	return names
}

func archived(t *testing.T, root string) map[string]int {
	t.Helper()
	sc, err := archive.OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	err = sc.ScanFlows(context.Background(), archive.ScanOptions{}, func(rows []archive.FlowRow) error {
		for _, r := range rows {
			if r.UUID != nil {
				out[*r.UUID]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRunProcessOutrunsBackupDeletion: lumberjack keeps only a few backups
// (rotating about every second) and deletes the oldest at every rotation,
// while `flowaudit run` (files committed only every 5 minutes by age) is
// killed with SIGKILL and restarted. The daemon commits every other
// rotation (half of Cilium's default 5 backups; the settings are unknown
// here), so each restart finds its checkpoint's files still there: every
// flow gen wrote, a prefix of gen's deterministic sequence, is archived
// exactly once and no gap is recorded. (Committing by age alone, each
// restart re-read from the start and lost what lumberjack had deleted.)
func TestRunProcessOutrunsBackupDeletion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary for ~25s")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	events := filepath.Join(dir, "hubble", "events.log")
	arch := filepath.Join(dir, "archive")
	const rate, seconds = "500", 16
	genDone := startGen(t, bin, "--realtime", "--rate", rate, "--nodes", "1", "--duration", strconv.Itoa(seconds)+"s",
		"--out", events, "--max-size-mb", "1", "--max-backups", "4", "--compress", "--seed", "11")

	logs := &bytes.Buffer{}
	startRun := func() *exec.Cmd {
		t.Helper()
		c := exec.Command(bin, "run", "--source", "file:"+events, "--archive", arch, "--node", "node-01",
			"--listen", freeAddr(t), "--stats-interval", "1s", "--log-level", "warn")
		c.Stdout, c.Stderr = logs, logs
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	run := startRun()
	for kill := 0; kill < 4; kill++ {
		time.Sleep(2500 * time.Millisecond)
		if err := run.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = run.Wait()
		run = startRun()
	}
	select {
	case err := <-genDone:
		if err != nil {
			t.Fatalf("gen: %v", err)
		}
	case <-time.After(seconds*time.Second + 60*time.Second):
		t.Fatal("gen did not finish")
	}
	time.Sleep(3 * time.Second) // the daemon reads the last lines
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("SIGTERM: exit %v; logs:\n%s", err, logs)
	}

	// gen's flows in order: the same seed and rate give the same sequence
	// with or without --realtime.
	seq, err := exec.Command(bin, "gen", "--count", "20000", "--rate", rate, "--nodes", "1", "--seed", "11").Output()
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, line := range bytes.Split(seq, []byte{'\n'}) {
		if i := bytes.Index(line, []byte(`"uuid":"`)); i >= 0 {
			order = append(order, string(line[i+8:i+8+36]))
		}
	}
	got := archived(t, arch)
	last := -1
	for i, u := range order {
		if got[u] > 0 {
			last = i
		}
	}
	for i, u := range order[:last+1] {
		if got[u] != 1 {
			t.Fatalf("flow %d of %d (%s) archived %d times; logs:\n%s", i, last+1, u, got[u], logs)
		}
	}
	total := 0
	for _, n := range got {
		total += n
	}
	if total != last+1 || last+1 < 500*seconds*8/10 {
		t.Fatalf("%d flows archived, the first %d of gen's sequence expected (~%d written)", total, last+1, 500*seconds)
	}
	noGapAndVerified(t, arch)
}

// noGapAndVerified fails if the archive at root recorded a rotation gap or
// a truncation, or does not verify.
func noGapAndVerified(t *testing.T, root string) {
	t.Helper()
	sc, err := archive.OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.ScanStats(context.Background(), archive.ScanOptions{}, func(rows []archive.StatRow) error {
		for _, r := range rows {
			if r.LostRotation+r.LostTruncated > 0 || (r.LossDetail != nil && (strings.Contains(*r.LossDetail, "rotation_gap") || strings.Contains(*r.LossDetail, "truncated"))) {
				t.Errorf("a gap was recorded: %d bytes, %v", r.LostRotation+r.LostTruncated, *r.LossDetail)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if rep, err := archive.Verify(root, time.Time{}, time.Time{}, nil); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}
