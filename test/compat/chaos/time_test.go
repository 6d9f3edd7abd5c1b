package chaos_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestTime: one node's events.log holds flows from last month, from the
// future (next month: a clock far ahead), and a clock that jumps back and
// forward by hours between batches, while `flowaudit run` reads it and is
// killed once in the middle. Every flow is archived exactly once, in the
// date partition of its own time; nothing is rejected (no decode error);
// and each month's report (UTC and Asia/Seoul) counts exactly the flows
// whose time is within its bounds, as DuckDB counts them.
func TestTime(t *testing.T) {
	bin, rng, seed := setup(t)
	dir := t.TempDir()
	hubble := filepath.Join(dir, "hubble")
	events := filepath.Join(hubble, "events.log")
	arch := filepath.Join(dir, "archive")
	if err := os.MkdirAll(hubble, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	thisMonth := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	starts := []time.Time{
		thisMonth.AddDate(0, -1, 0).Add(time.Duration(rng.IntN(27*24)) * time.Hour), // last month
		now.Add(-time.Hour),
		now.Add(-3 * time.Hour), // the clock jumps back
		now.Add(2 * time.Hour),  // and forward
		now,
		thisMonth.AddDate(0, 1, 0).Add(time.Duration(rng.IntN(27*24)) * time.Hour), // next month
		thisMonth.Add(-time.Minute), // across the month's start
	}
	perStart := scale(1500, 20000)
	var records []string
	var chunks [][][]byte
	for i, s := range starts {
		rec := filepath.Join(dir, "written-"+strconv.Itoa(i)+".txt")
		out, err := exec.Command(bin, "gen", "--count", strconv.Itoa(perStart), "--nodes", "1", "--rate", "20", "--start", s.Format(time.RFC3339Nano),
			"--lost-events-every", "-1", "--agent-events-every", "-1", "--seed", strconv.FormatUint(seed%1e6+uint64(i)*7919, 10), "--record", rec).Output()
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, rec)
		lines := bytes.SplitAfter(out, []byte("\n"))
		chunks = append(chunks, lines[:len(lines)-1]) // the last is empty: out ends with a newline
	}
	d := newDaemon(t, bin, "--source", "file:"+events, "--archive", arch, "--node", "prod-kr1/node-01", "--readiness-max-lag", "1000d",
		"--stats-interval", "1s", "--max-file-age", "1s", "--verify-interval", "0", "--log-level", "warn")
	d.start()
	f, err := os.OpenFile(events, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// Interleave the clocks in batches of random size, as one node whose
	// clock jumps would write them.
	killed := false
	for written := 0; ; {
		left := false
		for i := range chunks {
			n := min(len(chunks[i]), 1+rng.IntN(200))
			if n == 0 {
				continue
			}
			left = true
			if _, err := f.Write(bytes.Join(chunks[i][:n], nil)); err != nil {
				t.Fatal(err)
			}
			chunks[i] = chunks[i][n:]
			written += n
		}
		if !left {
			break
		}
		if !killed && written > perStart*len(starts)/2 {
			time.Sleep(time.Second)
			d.kill()
			d.start()
			killed = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.Close()
	if !d.ready(time.Minute) {
		t.Fatal("not ready")
	}
	d.caughtUp(2 * time.Minute)
	d.stop()

	e, db := checkEvidence(t, arch, records...)
	wantExact(t, e)
	flows := sqlString(arch + "/flows/**/*.parquet")
	if n := count(t, db, `SELECT count(*) FROM read_parquet(`+flows+`, hive_partitioning=true) WHERE CAST(date AS VARCHAR) <> strftime(make_timestamp(epoch_us(time)), '%Y-%m-%d')`); n != 0 {
		t.Errorf("%d flows are in the partition of another day than their time's", n)
	}
	stats := sqlString(arch + "/stats/**/*.parquet")
	if n := count(t, db, `SELECT sum(decode_errors) FROM read_parquet(`+stats+`, hive_partitioning=true)`); n != 0 {
		t.Errorf("%d lines rejected as decode errors", n)
	}
	months := 0
	for _, tz := range []string{"UTC", "Asia/Seoul"} {
		for _, m := range []time.Time{thisMonth.AddDate(0, -1, 0), thisMonth, thisMonth.AddDate(0, 1, 0)} {
			out, err := exec.Command(bin, "report", "--month", m.Format("2006-01"), "--tz", tz, "--archive", arch, "--format", "json").Output()
			if err != nil {
				t.Fatalf("report %s %s: %v", m.Format("2006-01"), tz, err)
			}
			var r struct {
				From       time.Time `json:"from_utc"`
				To         time.Time `json:"to_utc"`
				TotalFlows int64     `json:"total_flows"`
			}
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatal(err)
			}
			loc, _ := time.LoadLocation(tz)
			wantFrom := time.Date(m.Year(), m.Month(), 1, 0, 0, 0, 0, loc)
			if !r.From.Equal(wantFrom) || !r.To.Equal(wantFrom.AddDate(0, 1, 0)) {
				t.Errorf("report %s %s: bounds %s .. %s, want %s .. %s", m.Format("2006-01"), tz, r.From, r.To, wantFrom, wantFrom.AddDate(0, 1, 0))
			}
			want := count(t, db, `SELECT count(*) FROM w WHERE ns >= ? AND ns < ?`, r.From.UnixNano(), r.To.UnixNano())
			if r.TotalFlows != want {
				t.Errorf("report %s %s: %d flows, %d written in its bounds", m.Format("2006-01"), tz, r.TotalFlows, want)
			}
			t.Logf("report %s %s: %d flows (%s .. %s)", m.Format("2006-01"), tz, r.TotalFlows, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
			months++
		}
	}
	t.Logf("verify: %s", verifyClean(t, bin, arch))
	t.Logf("figures: seed %d: %d flows over %d clocks archived exactly once in their own day's partition; %d month reports exact", seed, e.written, len(starts), months)
}
