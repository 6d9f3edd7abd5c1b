package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/report"
)

// TestEvidenceCoversEveryLineWritten is the property the archive and the
// report promise an auditor: every flow written to events.log is archived
// exactly once, or lies inside a gap the archive records (its losses
// table) and the report shows; and no gap that claims a known loss is
// without a missing flow. `flowaudit gen` writes through lumberjack, which
// rotates about every second and keeps 2 backups, while `flowaudit run` is
// SIGKILLed and restarted after random pauses, stalled with SIGSTOP, and the
// live file is truncated under it, at random moments from a logged seed
// (FLOWAUDIT_EVIDENCE_SEED replays one).
func TestEvidenceCoversEveryLineWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary for ~45s")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("FLOWAUDIT_EVIDENCE_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (FLOWAUDIT_EVIDENCE_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	dir := t.TempDir()
	bin := buildBinary(t, dir)
	events := filepath.Join(dir, "hubble", "events.log")
	arch := filepath.Join(dir, "archive")
	record := filepath.Join(dir, "written.txt")
	const seconds = 24
	genDone := startGen(t, bin, "--realtime", "--rate", "400", "--nodes", "1", "--duration", strconv.Itoa(seconds)+"s",
		"--out", events, "--max-size-mb", "1", "--max-backups", "2", "--compress", "--seed", strconv.FormatUint(seed%1000, 10),
		"--record", record)

	logs := &bytes.Buffer{}
	startRun := func() *exec.Cmd {
		t.Helper()
		c := exec.Command(bin, "run", "--source", "file:"+events, "--archive", arch, "--node", "prod-kr1/node-01",
			"--listen", freeAddr(t), "--stats-interval", "1s", "--log-level", "warn")
		c.Stdout, c.Stderr = logs, logs
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	run := startRun()
	var actions []string
	deadline := time.Now().Add((seconds - 3) * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(800+rng.IntN(2000)) * time.Millisecond)
		switch k := rng.IntN(100); {
		case k < 35: // killed, restarted after a pause that may outlast the backups
			pause := time.Duration(rng.IntN(5000)) * time.Millisecond
			actions = append(actions, fmt.Sprintf("kill+%v", pause))
			_ = run.Process.Signal(syscall.SIGKILL)
			_ = run.Wait()
			time.Sleep(pause)
			run = startRun()
		case k < 65: // stalled
			pause := time.Duration(300+rng.IntN(3500)) * time.Millisecond
			actions = append(actions, fmt.Sprintf("stop+%v", pause))
			_ = run.Process.Signal(syscall.SIGSTOP)
			time.Sleep(pause)
			_ = run.Process.Signal(syscall.SIGCONT)
		case k < 80: // the live file truncated under a stalled reader
			pause := time.Duration(200+rng.IntN(800)) * time.Millisecond
			actions = append(actions, fmt.Sprintf("truncate(stop+%v)", pause))
			_ = run.Process.Signal(syscall.SIGSTOP)
			time.Sleep(pause)
			_ = os.Truncate(events, 0)
			time.Sleep(pause)
			_ = run.Process.Signal(syscall.SIGCONT)
		default:
			actions = append(actions, "-")
		}
	}
	t.Logf("actions: %s", strings.Join(actions, " "))
	select {
	case err := <-genDone:
		if err != nil {
			t.Fatalf("gen: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("gen did not finish")
	}
	time.Sleep(4 * time.Second) // the daemon reads the last lines
	if err := run.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("SIGTERM: exit %v; logs:\n%s", err, logs)
	}

	written := readRecord(t, record)
	got := archived(t, arch)
	sc, err := archive.OpenScanner(arch)
	if err != nil {
		t.Fatal(err)
	}
	var losses []archive.LossRow
	if err := sc.ScanLosses(context.Background(), archive.ScanOptions{}, func(rows []archive.LossRow) error {
		losses = append(losses, rows...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	inGap := func(us int64) int {
		for i := range losses {
			if lo, hi := losses[i].Range(losses[i].Detected); us >= lo && us <= hi {
				return i
			}
		}
		return -1
	}
	byUUID := map[string]bool{}
	missing := 0
	holds := make([]int, len(losses)) // missing flows inside each gap
	var missingTimes []int64
	for _, w := range written {
		byUUID[w.uuid] = true
		switch n := got[w.uuid]; {
		case n > 1:
			t.Fatalf("flow %s archived %d times", w.uuid, n)
		case n == 1:
			continue
		}
		missing++
		us := w.ns / 1000
		i := inGap(us)
		if i < 0 {
			t.Errorf("flow %s at %s was neither archived nor inside a recorded gap", w.uuid, time.Unix(0, w.ns).UTC().Format(time.RFC3339Nano))
			continue
		}
		missingTimes = append(missingTimes, us)
		for j := range losses {
			if lo, hi := losses[j].Range(losses[j].Detected); us >= lo && us <= hi {
				holds[j]++
			}
		}
	}
	for u := range got {
		if !byUUID[u] {
			t.Errorf("archived flow %s was never written", u)
		}
	}
	for i, l := range losses {
		known := l.Amount != flow.AmountUnknown.String() && ((l.LostEvents != nil && *l.LostEvents > 0) || (l.LostBytes != nil && *l.LostBytes > 0))
		if known && l.Reason != flow.LossHubbleLostEvents && holds[i] == 0 {
			t.Errorf("gap %+v claims a loss but holds no missing flow", l)
		}
	}
	for i, l := range losses {
		lo, hi := l.Range(l.Detected)
		t.Logf("gap %s %s %s .. %s (to known: %v) detected %s, %d missing flows inside: %s", l.Reason, l.Amount, time.UnixMicro(lo).UTC().Format("15:04:05.000000"),
			time.UnixMicro(hi).UTC().Format("15:04:05.000000"), l.ToTime != nil, time.UnixMicro(l.Detected).UTC().Format("15:04:05.000000"), holds[i], l.Detail)
	}
	if t.Failed() {
		// The runs of missing flows, in written order.
		start, n := -1, 0
		for i, w := range written {
			if got[w.uuid] == 0 {
				if start < 0 {
					start = i
				}
				n++
				continue
			}
			if start >= 0 {
				t.Logf("missing: %d flows %s .. %s", n, time.Unix(0, written[start].ns).UTC().Format("15:04:05.000000"), time.Unix(0, written[i-1].ns).UTC().Format("15:04:05.000000"))
				start, n = -1, 0
			}
		}
		if start >= 0 {
			t.Logf("missing: %d flows from %s to the end", n, time.Unix(0, written[start].ns).UTC().Format("15:04:05.000000"))
		}
		t.Logf("logs:\n%s", logs)
	}
	t.Logf("%d flows written, %d archived, %d missing, all inside %d recorded gaps", len(written), len(got), missing, len(losses))
	if missing > 0 && len(losses) == 0 {
		t.Fatal("flows are missing and no gap is recorded")
	}

	// The report never calls an hour with a missing flow collected.
	if rep, err := archive.Verify(arch, time.Time{}, time.Time{}, nil); err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	now := time.Now()
	months := map[time.Time]bool{}
	for _, w := range written {
		t := time.Unix(0, w.ns).UTC()
		months[time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)] = true
	}
	for m := range months {
		rep, err := report.Build(context.Background(), report.Options{Archives: []string{arch}, Month: m, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Coverage) != 1 {
			t.Fatalf("coverage %+v", rep.Coverage)
		}
		c := rep.Coverage[0]
		if len(losses) > 0 && (c.Losses == 0 || c.MinutesLost == 0 || c.CoveragePct == 100) {
			t.Errorf("coverage %+v hides the recorded gaps", c)
		}
		for _, us := range missingTimes {
			at := time.UnixMicro(us).UTC()
			if at.Before(m) || !at.Before(m.AddDate(0, 1, 0)) {
				continue
			}
			h := int(at.Sub(m) / time.Hour)
			if ch := c.Heatmap[h/24][h%24]; ch == '#' || ch == '.' {
				t.Errorf("hour %s holds a missing flow but the report shows it collected (%q)", at.Truncate(time.Hour), ch)
			}
		}
	}
}

type recordedFlow struct {
	uuid string
	ns   int64
}

// readRecord reads `gen --record`.
func readRecord(t *testing.T, path string) []recordedFlow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []recordedFlow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 4 {
			t.Fatalf("record line %q", sc.Text())
		}
		ns, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, recordedFlow{uuid: fields[0], ns: ns})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b recordedFlow) int { return int(a.ns - b.ns) })
	return out
}
