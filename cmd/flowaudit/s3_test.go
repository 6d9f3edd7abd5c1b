package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/internal/s3test"
	"github.com/flowaudit/flowaudit/pkg/archive"
)

// TestReportAndVerifyReadABucket: an archive shipped to a real S3 server is
// itself an archive. verify and report read it in place (s3://), and say
// what they say of the directory it was shipped from; a file altered in
// the bucket is found and left out of every number, as on disk.
func TestReportAndVerifyReadABucket(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "audit", false)
	dir := t.TempDir()
	root := filepath.Join(dir, "archive")
	for i, start := range []string{"2026-01-05T01:00:00Z", "2026-01-19T13:00:00Z"} {
		out, err := runCLI("gen", "--seed", string(rune('1'+i)), "--nodes", "3", "--rate", "20", "--count", "3000",
			"--start", start, "--lost-events-every", "500")
		if err != nil {
			t.Fatal(err)
		}
		ev := filepath.Join(dir, "ev"+string(rune('a'+i))+".log")
		if err := os.WriteFile(ev, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI("import", "--progress", "never", "--archive", root, ev); err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
	}
	const bucket = "s3://audit/prod-kr1"
	if out, err := runCLI("ship", "--archive", root, "--to", bucket); err != nil {
		t.Fatalf("ship: %v\n%s", err, out)
	}
	same := func(what string, args ...string) string {
		t.Helper()
		local, err := runCLI(append(args, "--archive", root)...)
		if err != nil {
			t.Fatalf("%s of the directory: %v\n%s", what, err, local)
		}
		remote, err := runCLI(append(args, "--archive", bucket)...)
		if err != nil {
			t.Fatalf("%s of the bucket: %v\n%s", what, err, remote)
		}
		if l, r := comparable(local, root), comparable(remote, bucket); l != r {
			t.Fatalf("%s of the bucket differs from the directory's:\n--- directory\n%s\n--- bucket\n%s", what, l, r)
		}
		return remote
	}
	rep := same("report", "report", "--month", "2026-01", "--format", "json")
	for _, want := range []string{`"findings": []`, `"hubble_lost_events"`} {
		if !strings.Contains(rep, want) {
			t.Fatalf("report of the bucket has no %s:\n%s", want, rep)
		}
	}
	same("verify", "verify", "--format", "json")
	out, err := runCLI("report", "--month", "2026-01", "--archive", "s3://audit/elsewhere")
	if err == nil || !strings.Contains(err.Error(), "s3://audit/elsewhere is not an archive") {
		t.Fatalf("report of a prefix without an archive: %v\n%s", err, out)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	out, err = runCLI("report", "--month", "2026-01", "--archive", "s3://audit/other")
	if err == nil || strings.Contains(err.Error(), "not an archive") || !strings.Contains(err.Error(), "403") {
		t.Fatalf("report with a wrong secret key: %v, want the server's refusal\n%s", err, out)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.Secret)

	// Alter one data file in the bucket (through the server's own storage,
	// as a hostile administrator of it could).
	files, err := filepath.Glob(filepath.Join(srv.Data, "audit", "prod-kr1", "flows", "date=2026-01-19", "*", "part-*.parquet"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no data file in the server's storage: %v", err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(files[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI("verify", "--archive", bucket)
	if exitStatus(err) != 2 || !strings.Contains(out, "MODIFIED") {
		t.Fatalf("verify of an altered bucket: exit %d, want 2 with a modified finding\n%s", exitStatus(err), out)
	}
	out, err = runCLI("report", "--month", "2026-01", "--format", "json", "--archive", bucket)
	if err != nil {
		t.Fatalf("report of an altered bucket: %v\n%s", err, out)
	}
	before, after := totals(t, rep), totals(t, out)
	if len(after.Excluded) != 1 || after.Excluded[0].Kind != "modified" || after.Total != before.Total-after.Excluded[0].Rows {
		t.Fatalf("report of an altered bucket: %d flows (%d before), excluded %+v; want the altered file's rows left out", after.Total, before.Total, after.Excluded)
	}
}

type reportTotals struct {
	Total    int64 `json:"total_flows"`
	Excluded []struct {
		Kind string `json:"kind"`
		Rows int64  `json:"rows"`
	} `json:"excluded"`
}

func totals(t *testing.T, out string) reportTotals {
	t.Helper()
	var r reportTotals
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	return r
}

var generatedAt = regexp.MustCompile(`"generated": "[^"]*"`)

// comparable is a report's or verify's output with its archive root and
// generation time blanked, to compare two roots holding the same archive.
func comparable(out, root string) string {
	out = strings.ReplaceAll(out, root, "ROOT")
	return generatedAt.ReplaceAllString(out, `"generated": ""`)
}

// TestShipSurvivesSIGKILL kills flowaudit ship at random points while the
// archive grows. After every kill the bucket is an archive whose manifests
// name only files it holds, intact (files uploaded ahead of their manifest
// lines are the only findings); the last run leaves it equal to the
// directory.
func TestShipSurvivesSIGKILL(t *testing.T) {
	srv := s3test.Start(t)
	srv.Bucket(t, "audit", false)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	root := filepath.Join(dir, "archive")
	const bucket = "s3://audit/kill"
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	killed := 0
	for round := range 8 {
		out, err := runCLI("gen", "--seed", strconv.Itoa(round+1), "--nodes", "3", "--rate", "50", "--count", "600",
			"--start", time.Date(2026, 1, 5+round, 1, 0, 0, 0, time.UTC).Format(time.RFC3339))
		if err != nil {
			t.Fatal(err)
		}
		ev := filepath.Join(dir, "ev.log")
		if err := os.WriteFile(ev, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI("import", "--progress", "never", "--archive", root, ev); err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
		cmd := exec.Command(bin, "ship", "--archive", root, "--to", bucket)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil {
			killed++
		}
		out, err = runCLI("verify", "--format", "json", "--archive", bucket)
		if err != nil && exitStatus(err) != 2 {
			if strings.Contains(err.Error(), "not an archive") {
				continue // killed before its first file
			}
			t.Fatalf("verify of the bucket after a kill: %v\n%s", err, out)
		}
		var rep struct {
			Findings []archive.Finding `json:"findings"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("verify JSON: %v\n%s", err, out)
		}
		for _, f := range rep.Findings {
			if f.Kind != "extra" {
				t.Fatalf("round %d: the bucket after a kill has a %s finding: %+v", round, f.Kind, f)
			}
		}
	}
	t.Logf("%d of 8 ship runs killed before they finished", killed)
	if out, err := runCLI("ship", "--archive", root, "--to", bucket); err != nil {
		t.Fatalf("ship: %v\n%s", err, out)
	}
	local, err := runCLI("verify", "--format", "json", "--archive", root)
	if err != nil {
		t.Fatalf("verify of the directory: %v\n%s", err, local)
	}
	remote, err := runCLI("verify", "--format", "json", "--archive", bucket)
	if err != nil {
		t.Fatalf("verify of the bucket: %v\n%s", err, remote)
	}
	if l, r := comparable(local, root), comparable(remote, bucket); l != r {
		t.Fatalf("the bucket differs from the directory:\n--- directory\n%s\n--- bucket\n%s", l, r)
	}
}
