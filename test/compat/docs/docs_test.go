// Package docs runs the fenced blocks of README.md and docs/*.md, as Go's
// example tests keep examples true: every command and query a reader may
// copy is executed against an archive the test makes with the built binary.
//
// The convention, by the block's info string (the word after ```):
//
//	sh      every command runs in a shell, in the work directory, with the
//	        built flowaudit first on PATH and what the substitution table
//	        (in setup) names replaced: node paths by temporary ones, the
//	        daemon's port by 0, the demo's day by fewer flows. `flowaudit
//	        run` is started, waited for until it has decoded events,
//	        stopped with SIGTERM, and must exit 0 having committed flows
//	        files. `make T` is checked with
//	        `make -n T` (the target exists; this test is part of `make
//	        test`, so it does not run it). Any other command fails the test.
//	sql     every statement runs in DuckDB (cwd: the work directory, <root>:
//	        the archive) and must return at least one row.
//	yaml file=NAME   written to NAME in the work directory; a later sh
//	        block of the same document must use it.
//	json like=GLOB   an example of a file the archive holds: its member
//	        names must be those of the first line of the first file GLOB
//	        matches (<root> as in sql).
//	text    not code (diagrams, layouts). A text block that starts with
//	        `flowaudit CMD` is a synopsis: each --flag in it must be one of
//	        `flowaudit CMD --help`.
//
// A block that cannot run here says so in its info string, with the reason:
// ```sh norun: needs a Kubernetes cluster. `grep -rn norun: README.md docs/`
// lists them. Any other block, or a language not listed above, fails.
package docs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

// moduleRoot is the main module's directory.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// block is one fenced block of a Markdown file.
type block struct {
	file string // relative to the module root
	line int    // of the opening fence
	info string // the info string: language and attributes
	body string
}

func (b block) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// lang and attrs split the info string: ```yaml file=zones.yaml.
func (b block) lang() string {
	if f := strings.Fields(b.info); len(f) > 0 {
		return f[0]
	}
	return ""
}

func (b block) rest() string {
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(b.info), b.lang()))
}

func (b block) attr(key string) string {
	for _, f := range strings.Fields(b.rest()) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// noRun is the reason given by `norun: REASON`, or "".
func (b block) noRun() (reason string, marked bool) {
	r, ok := strings.CutPrefix(b.rest(), "norun:")
	return strings.TrimSpace(r), ok
}

// fences returns the fenced blocks of a Markdown file.
func fences(t *testing.T, root, rel string) []block {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	var fence string
	var body []string
	for i, l := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimLeft(l, " ")
		if cur == nil {
			if len(l)-len(trimmed) <= 3 && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")) {
				n := len(trimmed) - len(strings.TrimLeft(trimmed, trimmed[:1]))
				fence = trimmed[:n]
				cur = &block{file: rel, line: i + 1, info: strings.TrimSpace(trimmed[n:])}
				body = nil
			}
			continue
		}
		if strings.HasPrefix(trimmed, fence) && strings.TrimSpace(strings.TrimLeft(trimmed, fence[:1])) == "" {
			cur.body = strings.Join(body, "\n")
			out = append(out, *cur)
			cur = nil
			continue
		}
		body = append(body, l)
	}
	if cur != nil {
		t.Fatalf("%s: fence not closed", cur)
	}
	return out
}

// env is what the blocks run against.
type env struct {
	root, work, bin string
	subst           []string // old, new pairs, applied in order
	db              *sql.DB
}

// TestDocs runs every fenced block of README.md and docs/*.md in order.
func TestDocs(t *testing.T) {
	root := moduleRoot()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md"}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		files = append(files, rel)
	}
	e := setup(t, root)
	for _, f := range files {
		// Blocks of one document run in order (a yaml file= block feeds a
		// later sh block), and documents in the order above.
		t.Run(f, func(t *testing.T) { e.runDoc(t, fences(t, root, f)) })
	}
}

// setup builds the binary and makes the work directory: events.log (6,000
// generated lines of 3 nodes on 2026-01-15, with a few of Hubble's
// lost_events lines for the losses table), its halves gzipped as
// events-1.log.gz and events-2.log.gz, archive/, their signed import, and
// backup/, a node's saved exporter directory.
func setup(t *testing.T, root string) *env {
	t.Helper()
	tmp := t.TempDir()
	e := &env{root: root, work: filepath.Join(tmp, "work"), bin: filepath.Join(tmp, "bin")}
	start := time.Now()
	build := exec.Command("go", "build", "-o", filepath.Join(e.bin, "flowaudit"), "./cmd/flowaudit")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	if err := os.Mkdir(e.work, 0o755); err != nil {
		t.Fatal(err)
	}
	// DuckDB resolves relative paths against the process's directory.
	t.Chdir(e.work)

	// The substitution table: what the documents name on a node or a
	// developer's machine, and where it is here.
	e.subst = []string{
		"go run ./cmd/flowaudit", "flowaudit",
		// The demo's month (half a million flows) takes about a minute on a
		// 2-core machine; the same steps over two days keep this test short.
		"flowaudit demo", "flowaudit demo --dir demo --days 2",
		"/var/run/cilium/hubble/events.log", filepath.Join(e.work, "events.log"),
		"/var/lib/flowaudit/archive", filepath.Join(e.work, "archive"),
		"/tmp/archive", filepath.Join(e.work, "tmp-archive"),
		// The daemon logs the address it was given.
		"127.0.0.1:9967", "127.0.0.1:0",
		"<root>", filepath.Join(e.work, "archive"),
		// A node's saved exporter files, and older ones: the generated
		// file's gzipped halves.
		"/backup/node-01/hubble/", filepath.Join(e.work, "backup") + "/",
		"'old/events-*.log.gz'", "'events-*.log.gz'",
	}

	for _, c := range []string{
		"flowaudit gen --count 6000 --nodes 3 --lost-events-every 1000 --start 2026-01-15T00:00:00Z > events.log",
		"printf '%064x\\n' 7 > signing.key",
		"flowaudit import --progress never --archive archive --signing-key signing.key events.log",
	} {
		e.sh(t, c)
	}
	t.Logf("built and imported in %v", time.Since(start))
	lines, err := os.ReadFile(filepath.Join(e.work, "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	half := bytes.IndexByte(lines[len(lines)/2:], '\n') + len(lines)/2 + 1
	for i, part := range [][]byte{lines[:half], lines[half:]} {
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write(part)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.work, fmt.Sprintf("events-%d.log.gz", i+1)), gz.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// backup/: a node's saved exporter directory (the live file and one
	// more generated file).
	if err := os.MkdirAll(filepath.Join(e.work, "backup"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.work, "backup", "events.log"), lines, 0o644); err != nil {
		t.Fatal(err)
	}
	e.sh(t, "flowaudit gen --count 500 --nodes 1 --seed 9 --start 2026-01-16T00:00:00Z > backup/events-2026-01-16T00-10-00.000.log")

	if e.db, err = sql.Open("duckdb", ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })
	return e
}

func (e *env) substitute(s string) string {
	for i := 0; i < len(e.subst); i += 2 {
		s = strings.ReplaceAll(s, e.subst[i], e.subst[i+1])
	}
	return s
}

// path is p, relative to the work directory unless it is absolute.
func (e *env) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(e.work, p)
}

// shell returns a command running line with sh in the work directory, the
// built binary first on PATH.
func (e *env) shell(ctx context.Context, line string) *exec.Cmd {
	c := exec.CommandContext(ctx, "sh", "-c", line)
	c.Dir = e.work
	c.Env = append(os.Environ(), "PATH="+e.bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return c
}

// sh runs line and fails the test unless it exits 0.
func (e *env) sh(t *testing.T, line string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, stderr bytes.Buffer
	c := e.shell(ctx, line)
	c.Stdout, c.Stderr = &out, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%.2000s\nstderr:\n%.4000s", line, err, out.String(), stderr.String())
	}
	return out.Bytes()
}

func (e *env) runDoc(t *testing.T, blocks []block) {
	var files []string // yaml file= names, to be used by a later sh block
	var later []string // the sh commands after each file, in order
	for _, b := range blocks {
		if reason, marked := b.noRun(); marked {
			if reason == "" {
				t.Errorf("%s: norun: without a reason", b)
			}
			t.Logf("%s: not run: %s", b, reason)
			continue
		}
		switch b.lang() {
		case "sh":
			later = append(later, e.runSh(t, b)...)
		case "sql":
			e.runSQL(t, b)
		case "text":
			e.checkSynopsis(t, b)
		case "yaml":
			name := b.attr("file")
			if name == "" || strings.Contains(name, "/") {
				t.Errorf("%s: a yaml block needs file=NAME (a file a later sh block uses) or norun: REASON", b)
				continue
			}
			if err := os.WriteFile(filepath.Join(e.work, name), []byte(b.body+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, name)
			later = nil
		case "json":
			e.checkLike(t, b)
		default:
			t.Errorf("%s: a ```%s block: the docs test runs sh and sql, writes yaml file=NAME, checks json like=GLOB "+
				"and text synopses; mark anything else norun: REASON", b, b.lang())
		}
	}
	for _, f := range files {
		if !slices.ContainsFunc(later, func(c string) bool { return strings.Contains(c, f) }) {
			t.Errorf("no sh block after the yaml block of %s uses it", f)
		}
	}
}

// commands splits a sh block into its commands: continuation lines joined,
// blank and comment lines left out.
func commands(body string) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(body, "\n") {
		if s, ok := strings.CutSuffix(strings.TrimRight(l, " \t"), `\`); ok {
			cur.WriteString(s)
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(l)
		c := strings.TrimSpace(cur.String())
		cur.Reset()
		if c != "" && !strings.HasPrefix(c, "#") {
			out = append(out, c)
		}
	}
	return out
}

var (
	listenFlag  = regexp.MustCompile(`--listen[ =](\S+)`)
	archiveFlag = regexp.MustCompile(`--archive[ =](\S+)`)
	listening   = regexp.MustCompile(`"msg":"listening".*"address":"([^"]+)"`)
)

// logBuffer collects a process's output while the test reads it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runSh runs each command of a sh block and returns them as run.
func (e *env) runSh(t *testing.T, b block) []string {
	cmds := commands(b.body)
	if len(cmds) == 0 {
		t.Errorf("%s: an empty sh block", b)
	}
	var ran []string
	for _, doc := range cmds {
		c := e.substitute(doc)
		ran = append(ran, c)
		f := strings.Fields(c)
		start := time.Now()
		switch {
		case f[0] == "flowaudit" && len(f) > 1 && f[1] == "run":
			e.runDaemon(t, b, c)
		case f[0] == "flowaudit":
			e.sh(t, c)
		case f[0] == "make":
			c = "make -n -C " + shellQuote(e.root) + " " + strings.Join(f[1:], " ")
			e.sh(t, c)
		default:
			t.Errorf("%s: cannot run %q here: make it a flowaudit or make command, or mark the block norun: REASON", b, doc)
			continue
		}
		t.Logf("%s: %s (%v)", b, c, time.Since(start).Round(time.Millisecond))
	}
	return ran
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// runDaemon starts a `flowaudit run` command, waits until its /metrics (at
// the address it logs) count decoded events, stops it with SIGTERM and
// checks that it exits 0 with flows files committed into its --archive.
func (e *env) runDaemon(t *testing.T, b block, line string) {
	t.Helper()
	listen, archive := listenFlag.FindStringSubmatch(line), archiveFlag.FindStringSubmatch(line)
	if listen == nil || archive == nil {
		t.Errorf("%s: %q: a flowaudit run command needs --listen (to see it work) and --archive here", b, line)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out logBuffer
	c := e.shell(ctx, "exec "+line)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	for decoded := 0.0; decoded == 0; {
		select {
		case err := <-exited:
			t.Fatalf("%s: %q exited before it decoded anything: %v\n%s", b, line, err, out.String())
		case <-ctx.Done():
			t.Fatalf("%s: %q decoded nothing in time\n%s", b, line, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			decoded = metricSum("http://"+m[1]+"/metrics", "flowaudit_pipeline_events_decoded_total")
		}
	}
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("%s: %q after SIGTERM: %v\n%s", b, line, err, out.String())
	}
	files, err := filepath.Glob(filepath.Join(e.path(archive[1]), "flows", "*", "*", "part-*.parquet"))
	if err != nil || len(files) == 0 {
		t.Errorf("%s: %q committed no flows file into %s (%v)\n%s", b, line, archive[1], err, out.String())
	}
}

// metricSum is the sum of a metric's series at url, 0 when it cannot be read.
func metricSum(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if rest, ok := strings.CutPrefix(l, name); ok && (rest == "" || rest[0] == '{' || rest[0] == ' ') {
			f := strings.Fields(l)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// statements splits a sql block at the semicolons that end a line.
func statements(body string) []string {
	var out []string
	var cur []string
	flush := func() {
		s := strings.TrimSpace(strings.Join(cur, "\n"))
		cur = nil
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
				out = append(out, s)
				return
			}
		}
	}
	for _, l := range strings.Split(body, "\n") {
		cur = append(cur, l)
		if strings.HasSuffix(strings.TrimSpace(l), ";") {
			flush()
		}
	}
	flush()
	return out
}

func (e *env) runSQL(t *testing.T, b block) {
	t.Helper()
	stmts := statements(b.body)
	if len(stmts) == 0 {
		t.Errorf("%s: a sql block without a statement", b)
	}
	for _, s := range stmts {
		q := e.substitute(s)
		rows, err := e.db.Query(q)
		if err != nil {
			t.Errorf("%s: %v\n%s", b, err, q)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%s: %v\n%s", b, err, q)
		} else if n == 0 {
			t.Errorf("%s: no rows from\n%s", b, q)
		} else {
			t.Logf("%s: %d rows from %s", b, n, q)
		}
		rows.Close()
	}
}

var flagName = regexp.MustCompile(`(^|[\s\[|])(--[a-z][a-z-]*)`)

// checkSynopsis checks the flags of a text block that starts with
// `flowaudit CMD` against `flowaudit CMD --help`.
func (e *env) checkSynopsis(t *testing.T, b block) {
	t.Helper()
	f := strings.Fields(b.body)
	if len(f) < 2 || f[0] != "flowaudit" {
		return
	}
	help := string(e.sh(t, "flowaudit "+f[1]+" --help"))
	for _, m := range flagName.FindAllStringSubmatch(b.body, -1) {
		if !strings.Contains(help, m[2]+" ") {
			t.Errorf("%s: %s is not a flag of flowaudit %s", b, m[2], f[1])
		}
	}
}

var memberName = regexp.MustCompile(`"([A-Za-z_][A-Za-z0-9_]*)"\s*:`)

// checkLike compares the member names of a json block with those of the
// first line of the file its like= glob names.
func (e *env) checkLike(t *testing.T, b block) {
	t.Helper()
	glob := e.substitute(b.attr("like"))
	if glob == "" {
		t.Errorf("%s: a json block needs like=GLOB (a file of the archive it shows) or norun: REASON", b)
		return
	}
	matches, err := filepath.Glob(e.path(glob))
	if err != nil || len(matches) == 0 {
		t.Errorf("%s: like=%s matches nothing (%v)", b, glob, err)
		return
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := bytes.Cut(data, []byte("\n"))
	var v map[string]any
	if err := json.Unmarshal(first, &v); err != nil {
		t.Fatalf("%s: %v", matches[0], err)
	}
	real := map[string]bool{}
	var walk func(any)
	walk = func(x any) {
		if m, ok := x.(map[string]any); ok {
			for k, c := range m {
				real[k] = true
				walk(c)
			}
		}
	}
	walk(v)
	shown := map[string]bool{}
	for _, m := range memberName.FindAllStringSubmatch(b.body, -1) {
		shown[m[1]] = true
		if !real[m[1]] {
			t.Errorf("%s: the example shows %q, which %s does not have", b, m[1], matches[0])
		}
	}
	for k := range v {
		if !shown[k] {
			t.Errorf("%s: the example leaves out %q, which %s has", b, k, matches[0])
		}
	}
}
