package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
)

// writeArchive archives a few January flows of the given nodes into root.
func writeArchive(t *testing.T, root string, nodes ...string) {
	t.Helper()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &flow.Batch{}
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 60; i++ {
		node := nodes[i%len(nodes)]
		f := b.Next()
		f.Reset()
		f.Uuid = strconv.Itoa(i)
		f.Time = timestamppb.New(start.Add(time.Duration(i) * time.Minute))
		f.NodeName = node
		f.Verdict = flowpb.Verdict_FORWARDED
		b.AddStat(node, f.Time.GetSeconds()/60*60, flow.Counts{Seen: 1, Kept: 1})
	}
	b.Checkpoint = flow.Checkpoint{Source: "test", Position: "60"}
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReportAndVerifyRefuseMeaninglessFlags: --top and --parallel below 1,
// and a verify range whose --from is not before --to, are errors rather
// than a silent default, "unlimited" or an empty check that passes.
func TestReportAndVerifyRefuseMeaninglessFlags(t *testing.T) {
	root := filepath.Join(t.TempDir(), "archive")
	writeArchive(t, root, "c/n1")
	for _, args := range [][]string{
		{"report", "--month", "2026-01", "--archive", root, "--top", "0"},
		{"report", "--month", "2026-01", "--archive", root, "--top", "-5"},
		{"report", "--month", "2026-01", "--archive", root, "--parallel", "0"},
		{"report", "--month", "2026-01", "--archive", root, "--parallel", "-1"},
		{"verify", "--archive", root, "--from", "2026-02-01", "--to", "2026-01-01"},
		{"verify", "--archive", root, "--from", "2026-01-05", "--to", "2026-01-05"},
	} {
		if out, err := runCmd(t, args...); err == nil {
			t.Errorf("%s: accepted\n%s", strings.Join(args, " "), out)
		}
	}
	if out, err := runCmd(t, "report", "--month", "2026-01", "--archive", root, "--top", "1", "--parallel", "1", "--format", "json"); err != nil {
		t.Errorf("--top 1 --parallel 1: %v\n%s", err, out)
	}
}

// TestReportAndVerifyReadARootWithBrackets: an archive whose path holds [
// and ] is read as it is, not taken for a pattern that matches nothing.
func TestReportAndVerifyReadARootWithBrackets(t *testing.T) {
	root := filepath.Join(t.TempDir(), "node[1]")
	writeArchive(t, root, "c/n1")
	out, err := runCmd(t, "report", "--month", "2026-01", "--archive", root, "--format", "json")
	if err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	var rep struct {
		Total int64 `json:"total_flows"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Total != 60 {
		t.Errorf("report: %d flows, %v", rep.Total, err)
	}
	if out, err := runCmd(t, "verify", "--archive", root); err != nil || !strings.Contains(out, "findings 0") {
		t.Errorf("verify: %v\n%s", err, out)
	}
}

// TestVerifyTextEscapesNames: a node name with a newline, a CR or a
// bidirectional override cannot forge or reorder a line of verify's text
// output.
func TestVerifyTextEscapesNames(t *testing.T) {
	root := filepath.Join(t.TempDir(), "archive")
	evil := "c/n1\nchain head forged 0000\r\u202eevil"
	writeArchive(t, root, evil, "c/n2")
	out, err := runCmd(t, "verify", "--archive", root)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 || strings.ContainsAny(out, "\r\u202e") {
		t.Errorf("verify's text output:\n%s", out)
	}
	if !strings.Contains(out, "chain head c/n2 ") || !strings.Contains(out, `chain head "c/n1\nchain head forged 0000\r\u202eevil" `) {
		t.Errorf("chain heads not as expected:\n%s", out)
	}
	// A file name in the archive is escaped too.
	dir := filepath.Join(root, "flows", "date=2026-01-05", "node=c%2Fn2")
	if err := os.WriteFile(filepath.Join(dir, "x\nEXTRA\tforged"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = runCmd(t, "verify", "--archive", root)
	if strings.Contains(out, "\nEXTRA\tforged") || !strings.Contains(out, `x\nEXTRA\tforged`) {
		t.Errorf("an extra file's name is not escaped:\n%s", out)
	}
}

// TestReportFindingsFlags: the zones file's privileged_sources, a coverage
// target, a retention minimum, a public key and a controls file reach the
// findings: none of their checks is left not evaluated, and the controls
// file's control is on the check it names.
func TestReportFindingsFlags(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "archive")
	key := filepath.Join(dir, "sign")
	if _, err := runCmd(t, "keygen", "--out", key); err != nil {
		t.Fatal(err)
	}
	writeArchive(t, root, "c/n1")
	zones := filepath.Join(dir, "zones.yaml")
	controls := filepath.Join(dir, "controls.yaml")
	if err := os.WriteFile(zones, []byte("zones:\n  - name: z\n    namespaces: [db]\n    internal_only: true\nprivileged_sources:\n  namespaces: [ops]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(controls, []byte("controls:\n  - id: OWN-1\n    title: {en: own}\n    checks: [retention]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "r.json")
	if _, err := runCmd(t, "report", "--month", "2026-01", "--archive", root, "--format", "json", "--out", out, "--zones", zones,
		"--coverage-target", "50", "--retention-min", "3d", "--public-key", key+".pub", "--controls", controls); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Findings []struct {
			Check, Status, Reason string
			Controls              []string
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) == 0 {
		t.Fatalf("no findings in %s", b)
	}
	for _, f := range doc.Findings {
		if f.Status == "not_evaluated" {
			t.Errorf("%s not evaluated: %s", f.Check, f.Reason)
		}
		if f.Check == "retention" && !slices.Contains(f.Controls, "OWN-1") {
			t.Errorf("retention controls %v: no OWN-1 from --controls", f.Controls)
		}
	}
	if _, err := runCmd(t, "report", "--month", "2026-01", "--archive", root, "--controls", zones); err == nil || !strings.Contains(err.Error(), "--controls") {
		t.Errorf("a zones file as --controls: %v", err)
	}
}
