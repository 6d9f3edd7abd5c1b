package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// runCLI runs the flowaudit command line; it returns stdout and stderr
// together, and the error.
func runCLI(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	return out.String(), err
}

// archivedUUIDs returns how many times each uuid is in root's flows table.
func archivedUUIDs(t *testing.T, root string) map[string]int {
	t.Helper()
	sc, err := archive.OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	if err := sc.ScanFlows(t.Context(), archive.ScanOptions{}, func(rows []archive.FlowRow) error {
		for _, r := range rows {
			if r.UUID != nil {
				seen[*r.UUID]++
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return seen
}

// lossDetails returns the loss_detail of root's stats rows, joined.
func lossDetails(t *testing.T, root string) string {
	t.Helper()
	sc, err := archive.OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	var d []string
	if err := sc.ScanStats(t.Context(), archive.ScanOptions{}, func(rows []archive.StatRow) error {
		for _, r := range rows {
			if r.LossDetail != nil {
				d = append(d, *r.LossDetail)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return strings.Join(d, "\n")
}

// flowUUIDs returns the uuid of every flow line of events.log content.
func flowUUIDs(content string) []string {
	var out []string
	for _, l := range strings.Split(content, "\n") {
		if !strings.HasPrefix(l, `{"flow":`) {
			continue
		}
		i := strings.Index(l, `"uuid":"`)
		rest := l[i+len(`"uuid":"`):]
		out = append(out, rest[:strings.IndexByte(rest, '"')])
	}
	return out
}

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	return exitCode(err)
}

// TestImportReadsTheSameBytesOnce: lumberjack's files (generated, rotated
// and compressed by gen), a copy of a backup elsewhere, the plain twin of a
// .gz, a symlink and overlapping globs, all in one import: every flow is
// archived once (issue finding 3: a file and its copy in one run were
// archived twice), and once more nothing is added.
func TestImportReadsTheSameBytesOnce(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "hubble")
	genArgs := []string{"--nodes", "2", "--rate", "2", "--duration", "25m", "--seed", "3", "--start", "2026-01-01T00:00:00Z"}
	all, err := runCLI(append([]string{"gen"}, genArgs...)...)
	if err != nil {
		t.Fatal(err)
	}
	want := flowUUIDs(all)
	if out, err := runCLI(append([]string{"gen", "--out", filepath.Join(logs, "events.log"), "--max-size-mb", "1", "--max-backups", "0", "--compress"}, genArgs...)...); err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
	// gen's lumberjack compresses the backups in a goroutine of its own,
	// which may still be at work: copies are taken of finished ones.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		plain, _ := filepath.Glob(filepath.Join(logs, "events-*.log"))
		if len(plain) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("setup: lumberjack has not compressed %v", plain)
		}
	}
	gzs, _ := filepath.Glob(filepath.Join(logs, "events-*.log.gz"))
	if len(gzs) < 3 {
		t.Fatalf("setup: %d compressed backups", len(gzs))
	}
	// A plain twin of one backup (as while lumberjack compresses it), a
	// copy of another elsewhere, and a link to a third.
	zr, err := os.Open(gzs[0])
	if err != nil {
		t.Fatal(err)
	}
	z, err := gzip.NewReader(zr)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(z)
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimSuffix(gzs[0], ".gz"), plain, 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "copies")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(gzs[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "backup.log.gz"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(gzs[2], filepath.Join(other, "link.log.gz")); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "archive")
	out, err := runCLI("import", "--progress", "never", "--archive", root, logs, other, filepath.Join(logs, "events-*.log.gz"), gzs[1])
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	got := archivedUUIDs(t, root)
	for _, u := range want {
		if got[u] != 1 {
			t.Fatalf("flow %s archived %d times (%d flows generated, %d uuids archived)\n%s", u, got[u], len(want), len(got), out)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d uuids archived, %d generated", len(got), len(want))
	}
	if !strings.Contains(out, "already archived: ") || !strings.Contains(out, "read above") || !strings.Contains(out, "lines read ") {
		t.Fatalf("summary:\n%s", out)
	}
	out, err = runCLI("import", "--progress", "never", "--archive", root, logs, other)
	if err != nil {
		t.Fatalf("again: %v\n%s", err, out)
	}
	if again := archivedUUIDs(t, root); len(again) != len(want) || !strings.Contains(out, " 0 read (0 new, 0 continued)") {
		t.Fatalf("again: %d uuids\n%s", len(again), out)
	}
}

// TestImportGrownFileKeepsTheCutLine: a copy of events.log cut mid-line,
// imported, then the file complete: every flow archived once (issue finding
// 4: the cut line was taken as complete and the flow lost).
func TestImportGrownFileKeepsTheCutLine(t *testing.T) {
	dir := t.TempDir()
	content, err := runCLI("gen", "--nodes", "1", "--rate", "5", "--count", "400", "--seed", "9")
	if err != nil {
		t.Fatal(err)
	}
	want := flowUUIDs(content)
	p := filepath.Join(dir, "events.log")
	cut := strings.Index(content, want[200]) + 40
	if err := os.WriteFile(p, []byte(content[:cut]), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "archive")
	first, err := runCLI("import", "--progress", "never", "--archive", root, p)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, first)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("import", "--progress", "never", "--archive", root, p); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	got := archivedUUIDs(t, root)
	for _, u := range want {
		if got[u] != 1 {
			t.Fatalf("flow %s archived %d times", u, got[u])
		}
	}
	if !strings.Contains(first, "incomplete last line (left for a later import of a longer copy): 1\n    "+p+": "+strconv.Itoa(cut-strings.LastIndexByte(content[:cut], '\n')-1)+" bytes of line 201") {
		t.Fatalf("the cut line not reported:\n%s", first)
	}
}

// TestImportGoesOnAfterADamagedFile: a .gz cut short between two good files:
// the import reads all three (the damaged one up to the damage), records
// the damage as a loss with its position, prints it, and exits with status
// 3 (issue finding 5: exit 1, the files after it never read, nothing
// recorded).
func TestImportGoesOnAfterADamagedFile(t *testing.T) {
	dir := t.TempDir()
	var parts [3]string
	var want []string
	for i := range parts {
		c, err := runCLI("gen", "--nodes", "1", "--rate", "5", "--count", "600", "--seed", string(rune('4'+i)), "--start", "2026-01-0"+string(rune('1'+i))+"T00:00:00Z")
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = c
	}
	a, b, c := filepath.Join(dir, "events-2026-01-01T01-00-00.000.log"), filepath.Join(dir, "events-2026-01-02T01-00-00.000.log.gz"), filepath.Join(dir, "events.log")
	if err := os.WriteFile(a, []byte(parts[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write([]byte(parts[1]))
	zw.Close()
	if err := os.WriteFile(b, z.Bytes()[:z.Len()/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c, []byte(parts[2]), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "archive")
	out, err := runCLI("import", "--progress", "never", "--archive", root, dir)
	if exitStatus(err) != exitDamaged {
		t.Fatalf("exit status %d (%v), want %d\n%s", exitStatus(err), err, exitDamaged, out)
	}
	if !strings.Contains(out, "damaged (read up to the damage): 1") || !strings.Contains(out, b+": unexpected EOF at content byte") {
		t.Fatalf("summary:\n%s", out)
	}
	got := archivedUUIDs(t, root)
	want = append(flowUUIDs(parts[0]), flowUUIDs(parts[2])...)
	for _, u := range want {
		if got[u] != 1 {
			t.Fatalf("flow %s of a good file archived %d times", u, got[u])
		}
	}
	readable := 0
	for _, u := range flowUUIDs(parts[1]) {
		readable += got[u]
	}
	if readable == 0 || len(got) != len(want)+readable {
		t.Fatalf("%d flows of the damaged file archived, %d in all", readable, len(got))
	}
	if d := lossDetails(t, root); !strings.Contains(d, "damaged_input:"+b+": unexpected EOF at content byte") {
		t.Fatalf("loss details %q", d)
	}
	// Again: nothing new, the damage still reported, not recorded twice.
	out, err = runCLI("import", "--progress", "never", "--archive", root, dir)
	if exitStatus(err) != exitDamaged || !strings.Contains(out, "recorded as a loss by an earlier import") {
		t.Fatalf("again: %v\n%s", err, out)
	}
	if d := lossDetails(t, root); strings.Count(d, "damaged_input:") != 1 {
		t.Fatalf("loss details %q", d)
	}
}

// TestImportRefuses: an input set without a file, a --progress that means
// nothing, an archive inside another archive's root.
func TestImportRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	ev := filepath.Join(dir, "events.log")
	content, err := runCLI("gen", "--nodes", "1", "--count", "10")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ev, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "a0")
	if out, err := runCLI("import", "--progress", "never", "--archive", root, ev); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--archive", filepath.Join(dir, "a1"), empty}, "no events.log files"},
		{[]string{"--archive", filepath.Join(dir, "a1"), "--progress", "bogus", ev}, `--progress "bogus"`},
		{[]string{"--archive", filepath.Join(root, "flows"), ev}, "lies inside the archive root " + root},
		{[]string{"--archive", filepath.Join(root, "x", "y"), ev}, "lies inside the archive root " + root},
	} {
		out, err := runCLI(append([]string{"import", "--progress", "never"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("import %v: %v, want an error saying %q\n%s", tc.args, err, tc.want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "flows", "manifests")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an archive was made inside the archive: %v", err)
	}
}
