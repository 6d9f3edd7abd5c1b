package chaos_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashLoop: gen writes through lumberjack with Cilium's default
// rotation (10 MiB files, 5 backups, compression on) while `flowaudit run`
// is SIGKILLed at random moments and restarted at once (most kills once the
// restarted daemon is ready, some during its startup), now and then right
// after a SIGHUP reload, and with the archive committing every second so
// that kills land in commits. Every flow gen wrote is archived exactly once
// (DuckDB against gen's record), no gap is recorded, and verify is clean.
func TestCrashLoop(t *testing.T) {
	bin, rng, seed := setup(t)
	dir := t.TempDir()
	events := filepath.Join(dir, "hubble", "events.log")
	arch := filepath.Join(dir, "archive")
	record := filepath.Join(dir, "written.txt")
	seconds := scale(45, 600)
	minKills := scale(10, 200)
	r := rate(3000, 20000)
	genDone := startGen(t, bin, "--realtime", "--rate", strconv.Itoa(r), "--nodes", "1", "--duration", strconv.Itoa(seconds)+"s",
		"--out", events, "--max-size-mb", "10", "--max-backups", "5", "--compress", "--seed", strconv.FormatUint(seed%1e6, 10),
		"--record", record)
	d := newDaemon(t, bin, "--source", "file:"+events, "--archive", arch, "--node", "prod-kr1/node-01",
		"--stats-interval", "1s", "--max-file-age", "1s", "--verify-interval", "0", "--log-level", "warn")
	d.start()
	// Kill intervals spread the kills over the generator's run.
	mean := time.Duration(seconds) * time.Second * 8 / 10 / time.Duration(minKills)
	var actions []string
	kills, reloads := 0, 0
	genFinished := false
	for !genFinished || kills < minKills {
		select {
		case err := <-genDone:
			if err != nil {
				t.Fatalf("gen: %v", err)
			}
			genFinished = true
		default:
		}
		time.Sleep(mean/2 + time.Duration(rng.Int64N(int64(mean))))
		if rng.IntN(5) == 0 {
			d.signal(syscall.SIGHUP)
			reloads++
			pause := time.Duration(rng.IntN(300)) * time.Millisecond
			time.Sleep(pause)
			actions = append(actions, fmt.Sprintf("hup+%v", pause))
		}
		d.kill()
		kills++
		d.start()
		// Most kills come once the restarted daemon is ready (reading);
		// one in five lets the next one land in its startup (recovery of
		// the last commit, the first reads).
		if rng.IntN(5) == 0 {
			actions = append(actions, "kill")
		} else {
			if !d.ready(time.Minute) {
				t.Fatal("not ready a minute after a restart")
			}
			actions = append(actions, "kill+ready")
		}
	}
	if len(actions) > 60 {
		actions = append(actions[:60:60], "...")
	}
	t.Logf("%d kills, %d reloads: %s", kills, reloads, strings.Join(actions, " "))
	d.caughtUp(5 * time.Minute)
	d.stop()
	e, _ := checkEvidence(t, arch, record)
	wantExact(t, e)
	t.Logf("verify: %s", verifyClean(t, bin, arch))
	t.Logf("figures: mode %s seed %d rate %d/s: %d restarts (SIGKILL), %d reloads, %d flows checked, 0 lost, 0 duplicated", mode, seed, r, kills, reloads, e.written)
}

// TestCrashLoopSlowReader: lumberjack keeps 2 backups of 1 MiB and rotates
// several times a second, and the daemon is stalled with SIGSTOP for longer
// than that lasts, so backups are deleted unread. No flow is archived
// twice; every missing flow lies in a recorded gap; and each gap's rows
// count exactly the backups lost, whose bytes add up to the missing lines
// (gen's record has each line's length). (A collector that is down, not
// stalled, while backups are deleted cannot know how many there were: that
// gap is one `unknown` row over the right time range, as TestCrashLoop's
// evidence check and cmd/flowaudit's TestEvidenceCoversEveryLineWritten
// accept.)
func TestCrashLoopSlowReader(t *testing.T) {
	bin, rng, seed := setup(t)
	dir := t.TempDir()
	events := filepath.Join(dir, "hubble", "events.log")
	arch := filepath.Join(dir, "archive")
	record := filepath.Join(dir, "written.txt")
	seconds := scale(30, 300)
	r := rate(1500, 3000)
	// No lost_events or agent_event lines: every line lost is a flow of the record.
	genDone := startGen(t, bin, "--realtime", "--rate", strconv.Itoa(r), "--nodes", "1", "--duration", strconv.Itoa(seconds)+"s",
		"--out", events, "--max-size-mb", "1", "--max-backups", "2", "--compress", "--seed", strconv.FormatUint(seed%1e6, 10),
		"--lost-events-every", "-1", "--agent-events-every", "-1", "--record", record)
	d := newDaemon(t, bin, "--source", "file:"+events, "--archive", arch, "--node", "prod-kr1/node-01",
		"--stats-interval", "1s", "--verify-interval", "0", "--log-level", "warn")
	d.start()
	var actions []string
	stalls := 0
	deadline := time.Now().Add(time.Duration(seconds-3) * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(1000+rng.IntN(2000)) * time.Millisecond)
		pause := time.Duration(1000+rng.IntN(3000)) * time.Millisecond
		d.signal(syscall.SIGSTOP)
		time.Sleep(pause)
		d.signal(syscall.SIGCONT)
		stalls++
		actions = append(actions, fmt.Sprintf("stop+%v", pause))
	}
	t.Logf("%d stalls: %s", stalls, strings.Join(actions, " "))
	waitGen(t, genDone, 2*time.Minute)
	d.caughtUp(5 * time.Minute)
	d.stop()
	e, db := checkEvidence(t, arch, record)
	wantExplained(t, e)
	if e.missing == 0 {
		t.Fatalf("the reader was never slow enough to lose a backup: %v", e)
	}
	// A stall loses whole backups, each recorded as its own rotation_gap
	// row over the same time range: exact bytes for a backup the reader
	// saw, unknown for one created and deleted while it was stopped. Per
	// range, the missing lines are exactly those files: their bytes are
	// the exact rows' bytes plus, for each unknown row, a file lumberjack
	// filled to within a line of --max-size-mb (1 MiB).
	rows, err := db.Query(`SELECT lo, hi, count(*), count(*) FILTER (amount = 'exact'), coalesce(sum(lost_bytes) FILTER (amount = 'exact'), 0),
		(SELECT coalesce(sum(bytes), 0) FROM m WHERE m.ns // 1000 BETWEEN l.lo AND l.hi), (SELECT max(bytes) FROM w)
		FROM l WHERE reason = 'rotation_gap' GROUP BY lo, hi ORDER BY lo`)
	if err != nil {
		t.Fatal(err)
	}
	ranges, filesLost, exactFiles := 0, 0, 0
	for rows.Next() {
		var lo, hi, files, exact, exactBytes, missingBytes, maxLine int64
		if err := rows.Scan(&lo, &hi, &files, &exact, &exactBytes, &missingBytes, &maxLine); err != nil {
			t.Fatal(err)
		}
		ranges++
		filesLost += int(files)
		exactFiles += int(exact)
		const fileMax = 1 << 20
		unknown := files - exact
		if missingBytes < exactBytes+unknown*(fileMax-maxLine) || missingBytes > exactBytes+unknown*fileMax {
			t.Errorf("gap %s .. %s: %d files lost (%d exact, %d bytes), but the missing lines inside hold %d bytes",
				time.UnixMicro(lo).UTC().Format("15:04:05.000000"), time.UnixMicro(hi).UTC().Format("15:04:05.000000"), files, exact, exactBytes, missingBytes)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	t.Logf("%d gap ranges, %d backups lost (%d with exact bytes): the missing lines add up to them", ranges, filesLost, exactFiles)
	t.Logf("verify: %s", verifyClean(t, bin, arch))
	t.Logf("figures: mode %s seed %d rate %d/s: %d stalls, %d flows checked, %d missing, all inside %d recorded gaps", mode, seed, r, stalls, e.written, e.missing, e.gaps)
}
