package chaos_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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
// that kills land in commits. A second exporter file takes, every 1.5 s, a
// few hours of flows of days long past (a node catching up), cut into small
// files, so that the daemon's retention (4 days) and compaction, run every
// 2 s, always have days to delete and to merge; one kill in three waits for
// one of them to be running. Every flow of the live file is archived exactly
// once; every flow of the past days is archived exactly once or, for a day
// retention deleted, not at all, each such day whole, with retention entries
// in its manifest that count exactly its flows; no gap is recorded; verify
// is clean.
func TestCrashLoop(t *testing.T) {
	bin, rng, seed := setup(t)
	dir := t.TempDir()
	events := filepath.Join(dir, "hubble", "events.log")
	past := filepath.Join(dir, "hubble-past", "events.log")
	arch := filepath.Join(dir, "archive")
	record := filepath.Join(dir, "written.txt")
	seconds := scale(45, 600)
	minKills := scale(10, 200)
	r := rate(3000, 20000)
	const retention = 4 * 24 * time.Hour
	const maintenance = 2 * time.Second
	began := time.Now()
	genDone := startGen(t, bin, "--realtime", "--rate", strconv.Itoa(r), "--nodes", "1", "--duration", strconv.Itoa(seconds)+"s",
		"--out", events, "--max-size-mb", "10", "--max-backups", "5", "--compress", "--seed", strconv.FormatUint(seed%1e6, 10),
		"--record", record)
	d := newDaemon(t, bin, "--source", "file:"+events, "--source", "file:"+past, "--archive", arch, "--node", "prod-kr1/node-01",
		"--stats-interval", "1s", "--max-file-age", "1s", "--verify-interval", "0", "--log-level", "warn",
		"--retention", "4d", "--maintenance-interval", maintenance.String(), "--readiness-max-lag", "1000d")
	d.start()

	// The past days' feeder: chunk i holds 1,500 flows of the 400 ms from
	// start+i*span, gen's record in its own file: each becomes a file of
	// its own (--max-file-age 1s) that compaction merges (the row log's
	// files spanning less than half of max-file-age are its to merge). The
	// chunks end a day before yesterday: the first days are older than the
	// retention, the last ones are not but are closed (compacted).
	span := scale(6*time.Hour, time.Hour)
	chunks := seconds * 2 / 3
	today := time.Now().UTC().Truncate(24 * time.Hour)
	pastStart := today.Add(-(time.Duration(chunks) * span).Truncate(24*time.Hour) - 48*time.Hour)
	pastEnd := pastStart.Add(time.Duration(chunks) * span)
	const pastRate = "3750"
	var pastRecords []string
	pastStop := make(chan struct{})
	pastDone := make(chan error, 1)
	go func() {
		for i := 0; i < chunks; i++ {
			select {
			case <-pastStop:
				pastDone <- nil
				return
			case <-time.After(1500 * time.Millisecond):
			}
			rec := filepath.Join(dir, fmt.Sprintf("past-%03d.txt", i))
			out, err := exec.Command(bin, "gen", "--start", pastStart.Add(time.Duration(i)*span).Format(time.RFC3339), "--duration", "400ms",
				"--rate", pastRate, "--nodes", "1", "--seed", strconv.FormatUint(seed%1e6+1000+uint64(i), 10),
				"--lost-events-every", "-1", "--agent-events-every", "-1",
				"--out", past, "--max-size-mb", "10", "--max-backups", "5", "--compress", "--record", rec).CombinedOutput()
			if err != nil {
				pastDone <- fmt.Errorf("gen of past chunk %d: %v\n%s", i, err, out)
				return
			}
			pastRecords = append(pastRecords, rec)
		}
		pastDone <- nil
	}()

	// running reports whether retention or compaction runs (the daemon's
	// own gauge, scraped just before a kill).
	running := func() string {
		m := d.metrics()
		for _, task := range []string{"retention", "compaction"} {
			if m[`flowaudit_archive_maintenance_running{task="`+task+`"}`] == 1 {
				return task
			}
		}
		return ""
	}
	// Kill intervals spread the kills over the generator's run.
	mean := time.Duration(seconds) * time.Second * 8 / 10 / time.Duration(minKills)
	var actions []string
	kills, reloads := 0, 0
	inside := map[string]int{}
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
		// One kill in three lands in a maintenance run if one starts
		// within a maintenance interval.
		task := running()
		if rng.IntN(3) == 0 {
			for until := time.Now().Add(maintenance); task == "" && time.Now().Before(until); time.Sleep(5 * time.Millisecond) {
				task = running()
			}
		}
		d.kill()
		kills++
		if task != "" {
			inside[task]++
			actions = append(actions, "in-"+task)
		}
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
	close(pastStop)
	if err := <-pastDone; err != nil {
		t.Fatal(err)
	}
	if len(actions) > 80 {
		actions = append(actions[:80:80], "...")
	}
	t.Logf("%d kills (%d during retention, %d during compaction), %d reloads: %s", kills, inside["retention"], inside["compaction"], reloads, strings.Join(actions, " "))
	d.caughtUp(5 * time.Minute)
	// Every file cut (--max-file-age) and a maintenance run after it.
	time.Sleep(3 * maintenance)
	for running() != "" {
		time.Sleep(100 * time.Millisecond)
	}
	d.stop()
	ended := time.Now()

	e, db := checkEvidence(t, arch, append([]string{record}, pastRecords...)...)
	t.Logf("evidence: %v", e)
	if e.duplicates != 0 || e.neverWritten != 0 || e.written == 0 || e.gaps != 0 {
		t.Fatalf("want no duplicate, nothing archived that was not written, no gap: %v", e)
	}
	if n := count(t, db, `SELECT count(*) FROM m WHERE ns >= ?`, pastEnd.UnixNano()); n != 0 {
		t.Fatalf("%d flows of the live file missing", n)
	}
	// The past days: a day whose end is older than the retention when the
	// test began must be gone, one younger than it when the test ended must
	// be whole; either way all or nothing.
	retentionEntries := map[string]int64{} // date: rows the flows table's retention entries count
	compactions := 0
	err := filepath.WalkDir(filepath.Join(arch, "manifests"), func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var e struct {
				Op, Path, Table string
				Rows            int64
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			switch e.Op {
			case "retention":
				if e.Table == "flows" {
					date, _, _ := strings.Cut(strings.TrimPrefix(e.Path, "flows/date="), "/")
					retentionEntries[date] += e.Rows
				}
			case "compaction":
				compactions++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT strftime(make_timestamp(ns // 1000), '%Y-%m-%d') AS day, count(*), count(a.uuid)
		FROM w LEFT JOIN a USING (uuid) WHERE ns < ? GROUP BY day ORDER BY day`, pastEnd.UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	var retired, kept, pastFlows, retiredFlows int64
	for rows.Next() {
		var day string
		var fed, archived int64
		if err := rows.Scan(&day, &fed, &archived); err != nil {
			t.Fatal(err)
		}
		pastFlows += fed
		end, _ := time.Parse("2006-01-02", day)
		end = end.Add(24 * time.Hour)
		switch {
		case archived == 0 && retentionEntries[day] == fed && !end.After(ended.Add(-retention)):
			retired++
			retiredFlows += fed
		case archived == fed && retentionEntries[day] == 0 && end.After(began.Add(-retention)):
			kept++
		default:
			t.Errorf("day %s: %d flows written, %d archived, retention entries count %d rows (retention %v from %v .. %v)",
				day, fed, archived, retentionEntries[day], retention, began.UTC().Format(time.RFC3339), ended.UTC().Format(time.RFC3339))
		}
		delete(retentionEntries, day)
	}
	rows.Close()
	for day, n := range retentionEntries {
		t.Errorf("retention entries of %s count %d rows, a day with no flow written", day, n)
	}
	if mode == "long" && (inside["retention"] == 0 || inside["compaction"] == 0) {
		t.Errorf("of %d kills, %d landed during retention and %d during compaction: want some of each", kills, inside["retention"], inside["compaction"])
	}
	if retired == 0 || kept == 0 || compactions == 0 {
		t.Errorf("%d days deleted by retention, %d kept, %d compactions: want some of each", retired, kept, compactions)
	}
	t.Logf("past days: %d flows of %d days: %d days (%d flows) deleted by retention, each recorded with its rows; %d kept whole; %d compactions",
		pastFlows, retired+kept, retired, retiredFlows, kept, compactions)
	t.Logf("verify: %s", verifyClean(t, bin, arch))
	t.Logf("figures: mode %s seed %d rate %d/s: %d restarts (SIGKILL; %d during retention, %d during compaction), %d reloads, %d flows checked, 0 lost, 0 duplicated; %d past days deleted by retention (%d flows, recorded), %d kept, %d compactions",
		mode, seed, r, kills, inside["retention"], inside["compaction"], reloads, e.written, retired, retiredFlows, kept, compactions)
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
