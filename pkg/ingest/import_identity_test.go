package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// archived stands for an archive in these tests: what the imports emitted,
// every checkpoint committed as soon as it is emitted.
type archived struct {
	cps    map[string]flow.Checkpoint
	lines  map[string]int // line -> times archived
	losses []flow.Loss
}

func newArchived() *archived {
	return &archived{cps: map[string]flow.Checkpoint{}, lines: map[string]int{}}
}

// run imports paths in one run, as the import command does.
func (a *archived) run(t *testing.T, paths ...string) []ImportResult {
	t.Helper()
	reg := NewImportRegistry(a.cps, nil)
	var out []ImportResult
	for _, p := range paths {
		s := reg.Prepare(p)
		s.SetLossFallback("", time.Time{})
		if s.Reads() {
			err := s.Run(context.Background(), s.From(), func(lb *LineBatch) error {
				for _, l := range lb.Lines {
					a.lines[string(l)]++
				}
				a.losses = append(a.losses, lb.Losses...)
				if lb.Checkpoint.Source != "" {
					a.cps[lb.Checkpoint.Source] = lb.Checkpoint
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
		} else {
			s.Close()
		}
		reg.Done(s)
		out = append(out, s.Result())
	}
	return out
}

// once checks that the archive holds exactly the lines want, each once.
func (a *archived) once(t *testing.T, want []string) {
	t.Helper()
	wantSet := map[string]bool{}
	for _, l := range want {
		wantSet[l] = true
		if n := a.lines[l]; n != 1 {
			t.Errorf("line %.60q archived %d times", l, n)
		}
	}
	for l := range a.lines {
		if !wantSet[l] {
			t.Errorf("line %.60q archived, not expected", l)
		}
	}
}

// testLines are n distinct event lines (without newlines).
func testLines(tag string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"flow":{"time":"2026-01-01T00:%02d:%02d.%09dZ","uuid":"%s-%d"},"node_name":"c/n1"}`, i/60%60, i%60, i, tag, i)
	}
	return out
}

func joinLines(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func gzipped(content string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(content))
	zw.Close()
	return b.Bytes()
}

func outcomes(rs []ImportResult) string {
	var s []string
	for _, r := range rs {
		s = append(s, string(r.Outcome))
	}
	return strings.Join(s, ",")
}

// TestImportOnceByContent: a file, a copy, its .gz twin, a symlink to it
// and the same path twice are read once in one run, and not again in the
// next (issue finding 3: the rows of a file and its copy were stored twice
// within a run).
func TestImportOnceByContent(t *testing.T) {
	dir := t.TempDir()
	lines := testLines("a", 300)
	plain := filepath.Join(dir, "events-2026-01-01T00-10-00.000.log")
	writeFile(t, plain, joinLines(lines))
	cp := filepath.Join(dir, "copy.log")
	writeFile(t, cp, joinLines(lines))
	if err := os.WriteFile(plain+".gz", gzipped(joinLines(lines)), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.log")
	if err := os.Symlink(plain, link); err != nil {
		t.Fatal(err)
	}
	a := newArchived()
	rs := a.run(t, plain, cp, plain+".gz", link, plain)
	a.once(t, lines)
	if got := outcomes(rs); got != "new,archived,archived,archived,archived" {
		t.Fatalf("outcomes %s", got)
	}
	for _, r := range rs[1:] {
		if !r.InRun || r.Of != plain {
			t.Fatalf("%s: of %q in run %v, want %s read in this run", r.Path, r.Of, r.InRun, plain)
		}
	}
	rs = a.run(t, link, plain+".gz", cp)
	a.once(t, lines)
	if got := outcomes(rs); got != "archived,archived,archived" {
		t.Fatalf("second run: outcomes %s", got)
	}
}

// TestImportGrownFileKeepsItsCutLine: a file that ended mid-line, then its
// complete version, archives every line once, the cut one whole (issue
// finding 4: the partial last line was taken as final, and the rest of it
// read as a line of its own from the complete file). Also a file with no
// complete line yet, and a file that grows past the first KiB.
func TestImportGrownFileKeepsItsCutLine(t *testing.T) {
	dir := t.TempDir()
	lines := testLines("g", 200)
	full := joinLines(lines)
	cut := strings.Index(full, lines[120]) + 30
	p := filepath.Join(dir, "events.log")
	a := newArchived()
	for i, size := range []int{20, 150, cut, len(full)} {
		writeFile(t, p, full[:size])
		rs := a.run(t, p)
		want := []Outcome{OutcomeEmpty, OutcomeNew, OutcomeContinued, OutcomeContinued}[i]
		if rs[0].Outcome != want {
			t.Fatalf("size %d: outcome %s, want %s", size, rs[0].Outcome, want)
		}
		if i == 2 && (rs[0].Partial != 30 || rs[0].PartialLine != 121) {
			t.Fatalf("cut file: partial %d bytes of line %d, want 30 of 121", rs[0].Partial, rs[0].PartialLine)
		}
	}
	a.once(t, lines)
	if len(a.cps) != 1 {
		t.Fatalf("%d streams for one growing file", len(a.cps))
	}
	// The same through copies under other names, given at once.
	b := newArchived()
	var paths []string
	for i, size := range []int{cut, 150, len(full), cut} {
		q := filepath.Join(dir, fmt.Sprintf("v%d.log", i))
		writeFile(t, q, full[:size])
		paths = append(paths, q)
	}
	if got := outcomes(b.run(t, paths...)); got != "new,archived,continued,archived" {
		t.Fatalf("copies: outcomes %s", got)
	}
	b.once(t, lines)
}

// TestImportPrefixFileIsContained: a copy taken earlier (a prefix, cut
// mid-line) of a file already archived adds nothing, in the same run and in
// a later one; when the longer file can no longer be read it is skipped as
// unverified, not imported again.
func TestImportPrefixFileIsContained(t *testing.T) {
	dir := t.TempDir()
	lines := testLines("p", 200)
	full := joinLines(lines)
	g := filepath.Join(dir, "events.log")
	f := filepath.Join(dir, "earlier-copy.log")
	writeFile(t, g, full)
	writeFile(t, f, full[:strings.Index(full, lines[80])+10])
	a := newArchived()
	if got := outcomes(a.run(t, g, f)); got != "new,archived" {
		t.Fatalf("outcomes %s", got)
	}
	if got := outcomes(a.run(t, f)); got != "archived" {
		t.Fatalf("later run: outcome %s", got)
	}
	a.once(t, lines)
	if err := os.Remove(g); err != nil {
		t.Fatal(err)
	}
	rs := a.run(t, f)
	if rs[0].Outcome != OutcomeUnverified || rs[0].Of != g {
		t.Fatalf("without the longer file: %+v", rs[0])
	}
	a.once(t, lines)
	// A shorter file with the same first lines that differs before its end
	// is a stream of its own.
	other := append(append([]string(nil), lines[:50]...), testLines("q", 10)...)
	o := filepath.Join(dir, "other.log")
	writeFile(t, o, joinLines(other))
	writeFile(t, g, full)
	if got := outcomes(a.run(t, o)); got != "new" {
		t.Fatalf("a different shorter file: %s", got)
	}
	for _, l := range testLines("q", 10) {
		if a.lines[l] != 1 {
			t.Fatalf("line %q of the different file archived %d times", l, a.lines[l])
		}
	}
}

// TestImportSharedFirstKiB: files that share their first KiB (and more) but
// differ later, cut at different points, are different streams: each has
// its own checkpoint and every line of each is archived; none resumes at
// another's offset (issue finding 4: four damaged files got one identity).
func TestImportSharedFirstKiB(t *testing.T) {
	dir := t.TempDir()
	base := testLines("shared", 30) // > 2 KiB
	if len(joinLines(base)) < 2048 {
		t.Fatal("setup: the shared part is under 2 KiB")
	}
	a := newArchived()
	var paths []string
	var tails [][]string
	for i, n := range []int{40, 5, 70, 20} {
		tail := testLines(fmt.Sprintf("tail%d", i), n)
		content := joinLines(append(append([]string(nil), base...), tail...))
		if i%2 == 1 {
			content += `{"flow":{"cut` // a last line without its newline
		}
		p := filepath.Join(dir, fmt.Sprintf("damaged-%d.log", i))
		writeFile(t, p, content)
		paths = append(paths, p)
		tails = append(tails, tail)
	}
	if got := outcomes(a.run(t, paths...)); got != "new,new,new,new" {
		t.Fatalf("outcomes %s", got)
	}
	if len(a.cps) != 4 {
		t.Fatalf("%d checkpoints for 4 different files", len(a.cps))
	}
	for i, tail := range tails {
		for _, l := range tail {
			if a.lines[l] != 1 {
				t.Fatalf("file %d: line %q archived %d times", i, l, a.lines[l])
			}
		}
	}
	for _, l := range base {
		if a.lines[l] != 4 { // a line of each stream
			t.Fatalf("shared line %q archived %d times, want once per file", l, a.lines[l])
		}
	}
	// Again, in another order: nothing new.
	before := len(a.lines)
	if got := outcomes(a.run(t, paths[3], paths[1], paths[2], paths[0])); got != "archived,archived,archived,archived" || len(a.lines) != before {
		t.Fatalf("again: outcomes %s", got)
	}
}

// TestImportDamagedGzip: a .gz cut short between two good files: the good
// files are read whole, the damaged one up to its last complete line, and
// its loss is recorded once with the position (issue finding 5: the import
// stopped, later files unread and the damage not recorded).
func TestImportDamagedGzip(t *testing.T) {
	dir := t.TempDir()
	l1, l2, l3 := testLines("one", 100), testLines("two", 2000), testLines("three", 100)
	p1, p2, p3 := filepath.Join(dir, "a.log"), filepath.Join(dir, "events-2026-01-01T01-00-00.000.log.gz"), filepath.Join(dir, "c.log")
	writeFile(t, p1, joinLines(l1))
	z := gzipped(joinLines(l2))
	if err := os.WriteFile(p2, z[:len(z)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p3, joinLines(l3))
	a := newArchived()
	rs := a.run(t, p1, p2, p3)
	if got := outcomes(rs); got != "new,new,new" {
		t.Fatalf("outcomes %s", got)
	}
	d := rs[1].Damage
	if d == nil || !d.Recorded || d.Earlier || rs[0].Damage != nil || rs[2].Damage != nil {
		t.Fatalf("damage %+v", d)
	}
	read := int(rs[1].Lines)
	if read == 0 || read >= len(l2) || d.Line != int64(read)+1 {
		t.Fatalf("%d lines of the damaged file read, damage at line %d", read, d.Line)
	}
	if d.Offset != int64(len(joinLines(l2[:read])))+d.Partial {
		t.Fatalf("damage at content byte %d: %d bytes of whole lines and %d of the cut one", d.Offset, len(joinLines(l2[:read])), d.Partial)
	}
	a.once(t, append(append(append([]string(nil), l1...), l2[:read]...), l3...))
	if len(a.losses) != 1 {
		t.Fatalf("losses %+v", a.losses)
	}
	l := a.losses[0]
	wantTime, _ := lineTime([]byte(l2[read-1]))
	if l.Reason != flow.LossDamagedInput || !strings.Contains(l.Detail, p2) || !strings.Contains(l.Detail, fmt.Sprintf("line %d", read+1)) ||
		!strings.Contains(l.Detail, fmt.Sprintf("content byte %d", d.Offset)) || !l.Time.Equal(wantTime) {
		t.Fatalf("loss %+v (time want %v)", l, wantTime)
	}
	// Read again: nothing new, the loss not recorded twice.
	rs = a.run(t, p1, p2, p3)
	if got := outcomes(rs); got != "archived,archived,archived" || rs[1].Lines != 0 || !rs[1].Damage.Earlier || len(a.losses) != 1 {
		t.Fatalf("again: outcomes %s, damage %+v, %d losses", got, rs[1].Damage, len(a.losses))
	}
	// The complete file, later: the rest is read on from the damaged one.
	if err := os.WriteFile(p2, z, 0o644); err != nil {
		t.Fatal(err)
	}
	rs = a.run(t, p2)
	if rs[0].Outcome != OutcomeContinued || rs[0].Damage != nil || rs[0].Lines != int64(len(l2)-read) {
		t.Fatalf("complete copy: %+v", rs[0])
	}
	a.once(t, append(append(append([]string(nil), l1...), l2...), l3...))
}

// TestImportIncompleteCompressedCopy: the .gz lumberjack is still writing
// beside its backup holds nothing the backup does not: no loss, no damage.
func TestImportIncompleteCompressedCopy(t *testing.T) {
	dir := t.TempDir()
	lines := testLines("b", 2000)
	p := filepath.Join(dir, "events-2026-01-01T00-00-00.000.log")
	writeFile(t, p, joinLines(lines))
	z := gzipped(joinLines(lines))
	if err := os.WriteFile(p+".gz", z[:len(z)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	a := newArchived()
	rs := a.run(t, p, p+".gz")
	if got := outcomes(rs); got != "new,archived" || !rs[1].IncompleteCopy || len(a.losses) != 0 {
		t.Fatalf("outcomes %s, %+v, losses %v", got, rs[1], a.losses)
	}
	a.once(t, lines)
	// A truncated .gz of another name is damage, even if its lines are archived.
	other := filepath.Join(dir, "elsewhere.log.gz")
	if err := os.WriteFile(other, z[:len(z)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	rs = a.run(t, other)
	if rs[0].Outcome != OutcomeArchived || rs[0].IncompleteCopy || rs[0].Damage == nil {
		t.Fatalf("a truncated copy: %+v", rs[0])
	}
}

// TestImportUnreadable: a file that vanished and a directory are damaged
// inputs, recorded (once) when a node is known for them, and the run goes on.
func TestImportUnreadable(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "events-2026-01-01T02-00-00.000.log")
	sub := filepath.Join(dir, "sub.log")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.log")
	lines := testLines("u", 10)
	writeFile(t, good, joinLines(lines))
	reg := NewImportRegistry(nil, nil)
	for _, p := range []string{gone, sub} {
		s := reg.Prepare(p)
		r := s.Result()
		if r.Outcome != OutcomeDamaged || r.Damage == nil || s.Reads() {
			t.Fatalf("%s: %+v, reads %v (no node known: nothing to archive)", p, r, s.Reads())
		}
	}
	a := newArchived()
	fb := time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)
	for round := 0; round < 2; round++ {
		reg := NewImportRegistry(a.cps, nil)
		for _, p := range []string{gone, sub, good} {
			s := reg.Prepare(p)
			s.SetLossFallback("c/n1", fb)
			if s.Reads() {
				if err := s.Run(context.Background(), s.From(), func(lb *LineBatch) error {
					a.losses = append(a.losses, lb.Losses...)
					for _, l := range lb.Lines {
						a.lines[string(l)]++
					}
					if lb.Checkpoint.Source != "" {
						a.cps[lb.Checkpoint.Source] = lb.Checkpoint
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			reg.Done(s)
			if p != good && (s.Result().Damage == nil || !s.Result().Damage.Recorded || s.Result().Damage.Earlier != (round == 1)) {
				t.Fatalf("round %d, %s: %+v", round, p, s.Result().Damage)
			}
		}
	}
	a.once(t, lines)
	if len(a.losses) != 2 {
		t.Fatalf("losses %+v", a.losses)
	}
	for _, l := range a.losses {
		// The vanished backup's time is in its name.
		want := fb
		if strings.Contains(l.Detail, gone) {
			want = time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
		}
		if l.Reason != flow.LossDamagedInput || l.Node != "c/n1" || !l.Time.Equal(want) {
			t.Fatalf("loss %+v", l)
		}
	}
}

// TestImportLegacyCheckpoint: checkpoints of the first-KiB scheme are
// honoured: at a line end the file continues there; where the earlier
// import took a cut last line as whole, the line is read again whole.
func TestImportLegacyCheckpoint(t *testing.T) {
	dir := t.TempDir()
	lines := testLines("l", 100)
	full := joinLines(lines)
	p := filepath.Join(dir, "events.log")
	writeFile(t, p, full)
	sum := sha256.Sum256([]byte(full[:1024]))
	fp := hex.EncodeToString(sum[:])
	id := "import:" + fp[:32]
	for _, tc := range []struct {
		name         string
		offset, line int64
		from         int // first line expected
	}{
		{"at a line end", int64(len(joinLines(lines[:40]))), 40, 40},
		{"cut mid-line", int64(len(joinLines(lines[:40])) + 25), 41, 40},
		{"cut before the newline", int64(len(joinLines(lines[:41])) - 1), 41, 41},
	} {
		a := newArchived()
		pos := fmt.Sprintf(`{"fp":%q,"fp_len":1024,"offset":%d,"name":%q,"line":%d}`, fp, tc.offset, p, tc.line)
		a.cps[id] = flow.Checkpoint{Source: id, Position: pos}
		rs := a.run(t, p)
		if rs[0].Outcome != OutcomeContinued {
			t.Fatalf("%s: %+v", tc.name, rs[0])
		}
		a.once(t, lines[tc.from:])
		if len(a.cps) != 1 {
			t.Fatalf("%s: checkpoints %v", tc.name, a.cps)
		}
		np, err := decodeImportPos(a.cps[id].Position)
		if err != nil || np.PFP == "" || np.Offset != int64(len(full)) || np.Line != 100 {
			t.Fatalf("%s: the new checkpoint %+v", tc.name, np)
		}
	}
}

// FuzzImportCopies: whatever the content and wherever copies of it are
// cut, importing the copies in any order and in any split into runs
// archives each complete line of the longest once; every checkpoint's
// pfp is the SHA-256 of the content before its offset.
func FuzzImportCopies(f *testing.F) {
	f.Add([]byte("a\nbb\nccc\ndddd\n"), uint16(3), uint16(7), uint8(0))
	f.Add([]byte("x\n\ny\r\nzz\nlast"), uint16(1), uint16(9), uint8(5))
	f.Add([]byte("same\nsame\nsame\n"), uint16(5), uint16(10), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, c1, c2 uint16, order uint8) {
		if len(data) > 1<<12 {
			return
		}
		dir := t.TempDir()
		cuts := []int{int(c1) % (len(data) + 1), int(c2) % (len(data) + 1), len(data)}
		var paths []string
		for i, n := range cuts {
			p := filepath.Join(dir, fmt.Sprintf("f%d.log", i))
			if err := os.WriteFile(p, data[:n], 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		perm := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}[order%6]
		split := int(order/6) % 4 // runs: all in one, or a run boundary after file 1 or 2, or one per file
		a := newArchived()
		var run []string
		for i, k := range perm {
			run = append(run, paths[k])
			if split == 3 || split == i+1 || i == 2 {
				a.run(t, run...)
				run = nil
			}
		}
		var want []string
		whole := data[:bytes.LastIndexByte(data, '\n')+1]
		for _, l := range strings.SplitAfter(string(whole), "\n") {
			if l = strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r"); l != "" {
				want = append(want, l)
			}
		}
		count := map[string]int{}
		for _, l := range want {
			count[l]++
		}
		for l, n := range count {
			if a.lines[l] != n {
				t.Fatalf("line %q archived %d times, it is in the content %d times (cuts %v, order %v, split %d)", l, a.lines[l], n, cuts, perm, split)
			}
		}
		for l, n := range a.lines {
			if count[l] != n {
				t.Fatalf("line %q archived %d times, in the content %d times", l, n, count[l])
			}
		}
		for _, cp := range a.cps {
			p, err := decodeImportPos(cp.Position)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data[:p.Offset])
			if p.PFP != hex.EncodeToString(sum[:16]) {
				t.Fatalf("checkpoint at %d: pfp %s", p.Offset, p.PFP)
			}
		}
	})
}

// TestImportCheckpointsHashTheirPrefix: over megabytes of lines of every
// length (an over-long one, blank ones, CRLF), plain and gzip, resumed from
// checkpoints, every checkpoint's pfp is the SHA-256 of the content before
// its offset, and the content is read in large pieces (batches are not cut
// by the hashing).
func TestImportCheckpointsHashTheirPrefix(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	for i := 0; b.Len() < 6<<20; i++ {
		switch {
		case i == 700:
			b.WriteString(strings.Repeat("y", 3<<20) + "\n")
		case i%97 == 0:
			b.WriteString("\n")
		case i%89 == 0:
			fmt.Fprintf(&b, "line %d\r\n", i)
		default:
			fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat("x", i*7919%5000))
		}
	}
	data := b.Bytes()
	plain := filepath.Join(dir, "big.log")
	if err := os.WriteFile(plain, data, 0o644); err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(dir, "big.log.gz")
	if err := os.WriteFile(gz, gzipped(string(data)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plain, gz} {
		s, err := NewImportSource(p, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := collect(t, s, flow.Checkpoint{}, 0)
		check := func(cps []flow.Checkpoint) {
			for _, cp := range cps {
				pos, err := decodeImportPos(cp.Position)
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(data[:pos.Offset])
				if pos.PFP != hex.EncodeToString(sum[:16]) || data[pos.Offset-1] != '\n' {
					t.Fatalf("%s: checkpoint at %d: pfp %s is not the prefix's", p, pos.Offset, pos.PFP)
				}
			}
		}
		check(c.cps)
		if p == plain && len(c.cps) > 20 {
			t.Fatalf("%d batches for %d bytes of a plain file: read in small pieces", len(c.cps), len(data))
		}
		for _, k := range []int{1, 3, len(c.cps) / 2} {
			rest := collect(t, s, c.cps[k-1], 0)
			check(rest.cps)
			if got := len(rest.lines) + len(collect(t, s, flow.Checkpoint{}, k).lines); got != len(c.lines) {
				t.Fatalf("%s: resumed after %d batches: %d lines, want %d", p, k, got, len(c.lines))
			}
		}
	}
}

// TestImportContentHoldsLittle: megabytes of blank lines (no checkpoint
// for them) between lines do not pile up unhashed in the content reader,
// read as ImportSource.read reads.
func TestImportContentHoldsLittle(t *testing.T) {
	dir := t.TempDir()
	data := "first\n" + strings.Repeat("\n", 40<<20) + "last\n"
	p := filepath.Join(dir, "blank.log")
	writeFile(t, p, data)
	held := 0
	c, err := openContent(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	sp := newSplitter(1 << 20)
	r := &reader{src: "x", name: p, sp: sp, m: NewMetrics(nil)}
	c.floor = func() int64 { return r.off }
	var cps []string
	if _, err := r.readAll(context.Background(), &maxHeld{c: c, max: &held}, 4096, func(lb *LineBatch) error {
		cps = append(cps, c.checkpoint(r.off))
		return nil
	}, false); err != nil {
		t.Fatal(err)
	}
	if held > 8<<20 {
		t.Fatalf("%d bytes held unhashed", held)
	}
	sum := sha256.Sum256([]byte(data))
	if len(cps) == 0 || cps[len(cps)-1] != hex.EncodeToString(sum[:16]) {
		t.Fatalf("checkpoints %v", cps)
	}
}

// maxHeld records the most bytes c held.
type maxHeld struct {
	c   *content
	max *int
}

func (m *maxHeld) Read(p []byte) (int, error) {
	n, err := m.c.Read(p)
	*m.max = max(*m.max, m.c.hi-m.c.lo)
	return n, err
}

// TestImportPrefixOfARotatedFile: a shorter, earlier copy of the live
// events.log imported before is contained in it even after lumberjack
// rotated it (the name now holds other lines; the backup holds these).
func TestImportPrefixOfARotatedFile(t *testing.T) {
	dir := t.TempDir()
	lines := testLines("r", 200)
	live := filepath.Join(dir, "events.log")
	writeFile(t, live, joinLines(lines))
	a := newArchived()
	a.run(t, live)
	copyPath := filepath.Join(t.TempDir(), "events.log")
	writeFile(t, copyPath, joinLines(lines[:60]))
	// Rotation: the backup is compressed, the live file starts anew.
	backup := filepath.Join(dir, "events-2026-01-01T00-05-00.000.log.gz")
	if err := os.WriteFile(backup, gzipped(joinLines(lines)), 0o644); err != nil {
		t.Fatal(err)
	}
	newer := testLines("s", 5)
	writeFile(t, live, joinLines(newer))
	rs := a.run(t, copyPath)
	if rs[0].Outcome != OutcomeArchived {
		t.Fatalf("the earlier copy: %+v", rs[0])
	}
	a.once(t, lines)
}

// TestImportDamageAtTheResumePoint: a stream read on from its checkpoint
// that breaks before its next line has no line of this run to take a node
// from: the damage is recorded with the fallback node, or not at all.
func TestImportDamageAtTheResumePoint(t *testing.T) {
	dir := t.TempDir()
	lines := testLines("d", 1000)
	noise := make([]byte, 4000) // a long line no match compresses: cuts land inside it
	for i := range noise {
		noise[i] = "0123456789abcdef"[(i*7919+i*i*31)%16]
	}
	lines = append(lines, `{"flow":{"uuid":"`+string(noise)+`"}}`)
	lines = append(lines, testLines("e", 100)...)
	content := joinLines(lines)
	read := len(joinLines(lines[:1000]))
	p := filepath.Join(dir, "events.log")
	writeFile(t, p, content[:read])
	a := newArchived()
	a.run(t, p)
	// The same stream, now a .gz that breaks inside the line after those read.
	z := gzipped(content)
	readable := func(k int) int {
		zr, err := gzip.NewReader(bytes.NewReader(z[:k]))
		if err != nil {
			return 0
		}
		b, _ := io.ReadAll(zr)
		return len(b)
	}
	// The shortest cut that reads 100 bytes into the long line (what a cut
	// gives grows with it).
	cut := sort.Search(len(z), func(k int) bool { return readable(k) > read+100 })
	if readable(cut) >= len(joinLines(lines[:1001])) {
		cut = 0
	}
	if cut == 0 {
		t.Fatal("setup: no cut inside the long line")
	}
	if err := os.WriteFile(p+".gz", z[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"", "c/n9"} {
		s := NewImportRegistry(a.cps, nil).Prepare(p + ".gz")
		s.SetLossFallback(node, time.Time{})
		var losses []flow.Loss
		if err := s.Run(context.Background(), s.From(), func(lb *LineBatch) error {
			losses = append(losses, lb.Losses...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		r := s.Result()
		if r.Outcome != OutcomeArchived || r.Lines != 0 || r.Damage == nil || r.Damage.Line != 1001 {
			t.Fatalf("fallback %q: %+v, damage %+v", node, r, r.Damage)
		}
		if node == "" && (r.Damage.Recorded || len(losses) != 0) {
			t.Fatalf("no node known: recorded %v, losses %+v", r.Damage.Recorded, losses)
		}
		if node != "" && (!r.Damage.Recorded || len(losses) != 1 || losses[0].Node != node) {
			t.Fatalf("fallback %q: recorded %v, losses %+v", node, r.Damage.Recorded, losses)
		}
	}
}
