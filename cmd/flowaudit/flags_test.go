package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNumericFlagsMeanWhatTheySay: a number a flag accepts is the number
// used, never a default in disguise (pkg/gen takes 0 for its defaults,
// lumberjack a max size of 0 for 100 MiB, the archive 0 rows for its
// maximum), and a number that cannot mean anything is refused, naming the
// flag; so is a flag that applies only with another one.
func TestNumericFlagsMeanWhatTheySay(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gen", "--count", "10", "--nodes", "0"}, "--nodes 0: want at least 1"},
		{[]string{"gen", "--count", "10", "--rate", "0"}, "--rate 0: want a number of flows per second per node > 0"},
		{[]string{"gen", "--count", "10", "--rate", "NaN"}, "--rate NaN"},
		{[]string{"gen", "--count", "10", "--rate", "+Inf"}, "--rate +Inf"},
		{[]string{"gen", "--count", "10", "--drop-ratio", "NaN"}, "--drop-ratio NaN: want a share in [0, 1]"},
		{[]string{"gen", "--count", "10", "--audit-ratio", "1.5"}, "--audit-ratio 1.5"},
		{[]string{"gen", "--count", "10", "--drop-ratio", "0.7", "--audit-ratio", "0.7"}, "add up to at most 1"},
		{[]string{"gen", "--count", "-5", "--duration", "1s"}, "must not be negative"},
		{[]string{"gen", "--count", "5", "--duration", "-1s"}, "must not be negative"},
		{[]string{"gen", "--count", "10", "--out", filepath.Join(dir, "a.log"), "--max-size-mb", "0"}, "--max-size-mb must be at least 1"},
		{[]string{"gen", "--count", "10", "--max-backups", "3"}, "--max-backups: applies to --out files only"},
		{[]string{"gen", "--count", "10", "--max-size-mb", "3"}, "--max-size-mb: applies to --out files only"},
		{[]string{"demo", "--dir", dir, "--rate", "0"}, "--rate 0: want a number"},
		{[]string{"demo", "--dir", dir, "--rate", "NaN"}, "--rate NaN"},
		{[]string{"demo", "--dir", dir, "--days", "0"}, "--days 0: want 1 to 31"},
		{[]string{"demo", "--dir", dir, "--days", "32"}, "--days 32: want 1 to 31"},
		{[]string{"gen", "--count", "10", "--outage", "node-02,2026-01-01T00:00:00Z"}, "want NODE,FROM,TO"},
		{[]string{"gen", "--count", "10", "--outage", "node-07,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z"}, "the cluster has node-01..node-03"},
		{[]string{"gen", "--count", "10", "--probe-every", "-1s"}, "want 0 (none) or more"},
		{[]string{"report", "--month", "2026-01", "--archive", dir, "--coverage-target", "150"}, "--coverage-target 150: want a percentage"},
		{[]string{"report", "--month", "2026-01", "--archive", dir, "--coverage-target", "NaN"}, "--coverage-target NaN"},
		{[]string{"report", "--month", "2026-01", "--archive", dir, "--coverage-target", "-1"}, "--coverage-target -1"},
		{[]string{"report", "--month", "2026-01", "--archive", dir, "--retention-min", "12m"}, "--retention-min: report: retention \"12m\""},
		{[]string{"report", "--month", "2026-01", "--archive", dir, "--retention-min", "0d"}, "want a period longer than zero"},
		{[]string{"serve", "--archive", dir, "--poll", "0"}, "--poll 0s: want a duration > 0"},
		{[]string{"serve", "--archive", dir, "--listen", ":0"}, "refusing to serve the archive on :0, which is not a loopback address, without mTLS"},
		{[]string{"serve", "--archive", dir, "--client-namespaces", "a=b"}, "--client-namespaces needs mTLS"},
		{[]string{"compact", "--archive", filepath.Join(dir, "archive"), "--max-rows", "0"}, "--max-rows 0: want at least 1"},
		{[]string{"compact", "--archive", filepath.Join(dir, "archive"), "--max-rows", "-3"}, "--max-rows -3"},
		{[]string{"run", "--print-config", "--source", "file:/x/events.log", "--archive", dir, "--node", "n", "--synthetic-rate", "50"}, "--synthetic-rate applies to --source synthetic"},
		{[]string{"run", "--print-config", "--source", "synthetic", "--archive", dir, "--node", "n", "--synthetic-rate", "NaN"}, "synthetic.rate: NaN: must be a finite number > 0"},
		{[]string{"run", "--print-config", "--source", "synthetic", "--archive", dir, "--node", "n", "--synthetic-rate", "0"}, "synthetic.rate: 0"},
		{[]string{"run", "--print-config", "--source", "file:" + dir, "--archive", dir, "--node", "n"}, "is a directory"},
	} {
		done := make(chan struct{})
		var out string
		var err error
		go func() {
			defer close(done)
			out, err = runCmd(t, tc.args...)
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Fatalf("%q: still running (a default taken for the value?)", tc.args)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q\n%.300s", tc.args, err, tc.want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.log")); !os.IsNotExist(err) {
		t.Errorf("a refused gen created its --out file (%v)", err)
	}
}

// TestGenZeroRatiosMeanNone: --drop-ratio 0 and --audit-ratio 0 generate
// no DROPPED and no AUDIT flows (they used to mean the defaults, 3% and
// 1%); the defaults still give some.
func TestGenZeroRatiosMeanNone(t *testing.T) {
	out, err := runCmd(t, "gen", "--count", "3000", "--drop-ratio", "0", "--audit-ratio", "0")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, `"verdict":"DROPPED"`) + strings.Count(out, `"verdict":"AUDIT"`); n != 0 {
		t.Errorf("%d DROPPED or AUDIT flows with both ratios 0", n)
	}
	if n := strings.Count(out, `"verdict":"FORWARDED"`); n < 2000 {
		t.Errorf("%d FORWARDED flows of 3000 lines", n)
	}
	out, err = runCmd(t, "gen", "--count", "3000", "--drop-ratio", "1", "--audit-ratio", "0")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, `"verdict":"FORWARDED"`); n != 0 {
		t.Errorf("%d FORWARDED flows with --drop-ratio 1", n)
	}
	out, err = runCmd(t, "gen", "--count", "3000")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, `"verdict":"DROPPED"`) == 0 {
		t.Error("no DROPPED flow with the default ratio")
	}
}

// TestMaskWithoutTimeRefusedForTheArchiveOnly: run --fieldmask and import
// --fieldmask refuse a mask without time or node_name (the archive places
// every flow by them); filter, Cilium's exporter offline, takes it and
// writes what the exporter writes: lines without them.
func TestMaskWithoutTimeRefusedForTheArchiveOnly(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	line := `{"flow":{"time":"2026-01-01T00:00:01Z","verdict":"FORWARDED","node_name":"c/n"},"node_name":"c/n","time":"2026-01-01T00:00:01Z"}`
	write(t, events, []byte(line+"\n"))
	const want = "keeps no time or node_name: the archive places every flow by its time and node_name"
	if out, err := runCmd(t, "run", "--print-config", "--source", "file:"+events, "--archive", dir, "--node", "n", "--fieldmask", "verdict"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("run --fieldmask verdict: %v\n%.300s", err, out)
	}
	if out, err := runCmd(t, "import", "--progress", "never", "--archive", filepath.Join(dir, "archive"), "--fieldmask", "verdict", events); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("import --fieldmask verdict: %v\n%.300s", err, out)
	}
	out, err := runCmd(t, "filter", "--fieldmask", "verdict", events)
	if err != nil || out != `{"flow":{"verdict":"FORWARDED"}}`+"\n" {
		t.Errorf("filter --fieldmask verdict: %q, %v", out, err)
	}
}
