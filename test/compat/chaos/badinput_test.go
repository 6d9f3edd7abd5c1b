package chaos_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBadInputMidStream: the scenario writes events.log itself (gen's
// lines, recorded), rotating it as lumberjack does, and between the good
// lines injects what a broken node writes: lines cut short, invalid UTF-8,
// binary garbage, another product's JSON, lines of 10 MB; and replaces the
// file by a directory, by a symlink loop, and deletes and recreates its
// directory. Each bad line is skipped and counted (stats: decode errors,
// over-long lines with a line_too_long loss; the log names the first
// one's file and line), ingestion goes on, and every good line is archived
// exactly once.
func TestBadInputMidStream(t *testing.T) {
	bin, rng, seed := setup(t)
	dir := t.TempDir()
	hubble := filepath.Join(dir, "hubble")
	events := filepath.Join(hubble, "events.log")
	arch := filepath.Join(dir, "archive")
	record := filepath.Join(dir, "written.txt")
	if err := os.MkdirAll(hubble, 0o755); err != nil {
		t.Fatal(err)
	}
	rounds := scale(8, 40)
	perRound := 500
	start := time.Now().UTC().Add(-10 * time.Minute).Format(time.RFC3339Nano)
	good, err := exec.Command(bin, "gen", "--count", strconv.Itoa(rounds*perRound), "--nodes", "1", "--rate", "50", "--start", start,
		"--lost-events-every", "-1", "--agent-events-every", "-1", "--seed", strconv.FormatUint(seed%1e6, 10), "--record", record).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(good, []byte("\n"))
	// The flows are up to 10 minutes old: readiness must not wait for newer ones.
	d := newDaemon(t, bin, "--source", "file:"+events, "--archive", arch, "--node", "prod-kr1/node-01", "--readiness-max-lag", "24h",
		"--stats-interval", "1s", "--max-file-age", "1s", "--verify-interval", "0", "--log-level", "warn")
	d.start()
	appendFile := func(b []byte) {
		t.Helper()
		f, err := os.OpenFile(events, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	settle := func() {
		t.Helper()
		if !d.ready(time.Minute) {
			t.Fatal("the daemon is not ready")
		}
		d.caughtUp(2 * time.Minute)
	}
	// faults: what each round injects after its good lines, in a random
	// order from the seed; each returns the decode errors and over-long
	// lines it adds.
	type fault struct {
		name string
		do   func() (decodeErrs, tooLong int)
	}
	pickLine := func() []byte { return bytes.Clone(lines[rng.IntN(len(lines)-1)]) }
	faults := []fault{
		{"line cut short", func() (int, int) {
			l := pickLine()
			appendFile(append(l[:len(l)/2], '\n'))
			return 1, 0
		}},
		{"invalid UTF-8", func() (int, int) {
			l := pickLine()
			i := bytes.Index(l, []byte(`"uuid":"`)) + 8
			copy(l[i:], "00000000-dead-beef") // not a uuid gen wrote
			j := bytes.Index(l, []byte(`"node_name":"`)) + 13
			l[j] = 0xff
			appendFile(l)
			return 1, 0
		}},
		{"binary garbage", func() (int, int) {
			b := make([]byte, 64+rng.IntN(4096))
			for i := range b {
				b[i] = byte(1 + rng.IntN(255))
				if b[i] == '\n' {
					b[i] = 0x80
				}
			}
			appendFile(append(b, '\n'))
			return 1, 0
		}},
		{"another product's JSON", func() (int, int) {
			appendFile([]byte(`{"level":"info","ts":1765000000.123,"logger":"kube-proxy","msg":"syncing iptables rules","flow":"not a flow"}` + "\n"))
			return 1, 0
		}},
		{"10 MB line", func() (int, int) {
			b := bytes.Repeat([]byte(`{"flow":{"uuid":"x","summary":"`), 1)
			b = append(b, bytes.Repeat([]byte("a"), 10<<20)...)
			appendFile(append(b, "\"}}\n"...))
			return 0, 1
		}},
	}
	structural := []struct {
		name string
		do   func()
	}{
		{"rotated", func() {
			backup := filepath.Join(hubble, "events-"+time.Now().UTC().Format("2006-01-02T15-04-05.000")+".log")
			if err := os.Rename(events, backup); err != nil {
				t.Fatal(err)
			}
		}},
		{"file replaced by a directory", func() {
			settle()
			if err := os.Remove(events); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(events, 0o755); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			if err := os.Remove(events); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink loop", func() {
			settle()
			if err := os.Remove(events); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(events, events); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			if err := os.Remove(events); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory deleted and recreated", func() {
			settle()
			if err := os.RemoveAll(hubble); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			if err := os.MkdirAll(hubble, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	}
	next := 0
	take := func(n int) []byte { // the next n good lines
		lo := min(next, len(lines))
		next += n
		return bytes.Join(lines[lo:min(next, len(lines))], nil)
	}
	wantErrs, wantTooLong := 0, 0
	var actions []string
	for r := 0; r < rounds; r++ {
		appendFile(take(perRound))
		for _, i := range rng.Perm(len(faults))[:1+rng.IntN(3)] {
			e, l := faults[i].do()
			wantErrs += e
			wantTooLong += l
			actions = append(actions, faults[i].name)
			// Good lines between the bad ones.
			appendFile(take(10))
		}
		if r < rounds-1 {
			s := structural[(r+rng.IntN(2))%len(structural)]
			s.do()
			actions = append(actions, s.name)
		}
	}
	appendFile(take(len(lines)))
	t.Logf("injected: %s", strings.Join(actions, ", "))
	settle()
	m := d.metrics()
	d.stop()

	e, db := checkEvidence(t, arch, record)
	wantExact(t, e)
	stats := sqlString(arch + "/stats/**/*.parquet")
	gotErrs := count(t, db, `SELECT sum(decode_errors) FROM read_parquet(`+stats+`, hive_partitioning=true)`)
	gotTooLong := count(t, db, `SELECT sum(lost_too_long_lines) FROM read_parquet(`+stats+`, hive_partitioning=true)`)
	gotNonFlow := count(t, db, `SELECT sum(non_flow_events) FROM read_parquet(`+stats+`, hive_partitioning=true)`)
	t.Logf("stats: %d decode errors (%d injected), %d over-long lines (%d injected), %d non-flow events", gotErrs, wantErrs, gotTooLong, wantTooLong, gotNonFlow)
	if gotErrs != int64(wantErrs) || gotTooLong != int64(wantTooLong) || gotNonFlow != 0 {
		t.Errorf("the stats table counts %d decode errors, %d over-long lines and %d non-flow events; %d bad lines and %d over-long ones were injected",
			gotErrs, gotTooLong, gotNonFlow, wantErrs, wantTooLong)
	}
	rows, err := db.Query(`SELECT reason, amount, coalesce(lost_events, 0), coalesce(lost_bytes, 0), detail FROM read_parquet(` + sqlString(arch+"/losses/**/*.parquet") + `) ORDER BY detected`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var reason, amount, detail string
		var ev, by int64
		if err := rows.Scan(&reason, &amount, &ev, &by, &detail); err != nil {
			t.Fatal(err)
		}
		t.Logf("loss: %s %s events %d bytes %d: %s", reason, amount, ev, by, detail)
	}
	rows.Close()
	if wantTooLong > 0 {
		if n := count(t, db, `SELECT count(*) FROM l WHERE reason = 'line_too_long' AND amount = 'exact' AND lost_events = 1`); n != int64(wantTooLong) {
			t.Errorf("%d line_too_long losses, want %d", n, wantTooLong)
		}
	}
	logs := d.logs.String()
	if i := strings.Index(logs, `"where":"`); wantErrs > 0 && i < 0 {
		t.Errorf("no decode error log names its position; logs:\n%s", logs)
	} else if i >= 0 {
		t.Logf("position logged: %s", logs[i:i+strings.IndexByte(logs[i+9:], '"')+10])
	}
	t.Logf("metrics: lines %v, decode errors %v", m["flowaudit_ingest_lines_total"], m["flowaudit_pipeline_decode_errors_total"])
	t.Logf("verify: %s", verifyClean(t, bin, arch))
	t.Logf("figures: seed %d: %d good flows archived exactly once; %d bad lines and %d over-long lines skipped and counted; %d structural faults", seed, e.written, wantErrs, wantTooLong, rounds-1)
}
