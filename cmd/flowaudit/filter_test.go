package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// TestFilterParallelIsSequential: with --parallel the output, the errors on
// stderr (file:line, in input order), the counts and the exit status are
// those of one exporter, over several files (one of them twice), chunks of
// many lines, bad and over-long lines.
func TestFilterParallelIsSequential(t *testing.T) {
	dir := t.TempDir()
	g, err := gen.New(gen.Config{Seed: 4, Nodes: 3, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	var a, b []byte
	for i := 0; i < 3000; i++ { // ~7 MB: several chunks
		if a, err = g.AppendLine(a); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 10:
			a = append(a, "{not json\n"...)
		case 1500:
			a = append(a, bytes.Repeat([]byte("x"), hubblejson.MaxLineBytes+10)...)
			a = append(a, '\n')
		case 2999:
			a = append(a, `{"flow":{"verdict":"NOPE"}}`+"\n"...)
		}
	}
	for i := 0; i < 200; i++ {
		if b, err = g.AppendLine(b); err != nil {
			t.Fatal(err)
		}
	}
	b = append(b, "\n\n{\"flow\":\n"...)
	fa, fb := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	if err := os.WriteFile(fa, a, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fb, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, string) {
		out, errOut, err := runOutErr(args...)
		return out, errOut, errString(err)
	}
	for _, flags := range [][]string{
		{},
		{"--fieldmask", "time,source.namespace,destination,verdict,l4"},
		{"--allowlist", `{"verdict":["DROPPED","ERROR"]}`},
		{"--denylist", `{"source_pod":["kube-system/"]}`, "--count"},
	} {
		args := append([]string{"filter"}, flags...)
		seqOut, seqErr, seqRes := run(append(append(args, "--parallel", "1"), fa, fb, fa)...)
		if !strings.Contains(seqErr, "a.log:12: ") || !strings.Contains(seqErr, "a.log:1503: line longer than 1 MiB") || seqRes == "" {
			t.Fatalf("%v: the sequential run did not see the bad lines: %q, %q", flags, seqErr, seqRes)
		}
		for _, n := range []string{"2", "3"} {
			out, errOut, res := run(append(append(args, "--parallel", n), fa, fb, fa)...)
			if out != seqOut {
				t.Errorf("%v --parallel %s: %d bytes of output, sequential %d, or different bytes", flags, n, len(out), len(seqOut))
			}
			if errOut != seqErr || res != seqRes {
				t.Errorf("%v --parallel %s: stderr %q (%s), sequential %q (%s)", flags, n, errOut, res, seqErr, seqRes)
			}
		}
	}
}

// runOutErr runs the flowaudit command line; it returns stdout and stderr
// apart, and the error.
func runOutErr(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestFilterGoesOnAfterADamagedFile: a .gz cut short and a file that cannot
// be opened, between good files: filter writes every kept line it could
// read, in input order (the damaged file's up to the damage), says where
// each file broke, and exits with status 3, with --parallel as without
// (issue finding 5: the output of the files before the damage was lost).
func TestFilterGoesOnAfterADamagedFile(t *testing.T) {
	dir := t.TempDir()
	var parts [3][]byte
	for i := range parts {
		g, err := gen.New(gen.Config{Seed: int64(20 + i), Nodes: 2, Rate: 50})
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 1500; j++ {
			if parts[i], err = g.AppendLine(parts[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	a, b, c := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log.gz"), filepath.Join(dir, "c.log")
	missing := filepath.Join(dir, "missing.log")
	if err := os.WriteFile(a, parts[0], 0o644); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(parts[1])
	zw.Close()
	if err := os.WriteFile(b, z.Bytes()[:z.Len()/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c, parts[2], 0o644); err != nil {
		t.Fatal(err)
	}
	// What can be read of b: its whole lines before the cut.
	zr, err := gzip.NewReader(bytes.NewReader(z.Bytes()[:z.Len()/2]))
	if err != nil {
		t.Fatal(err)
	}
	readable, err := io.ReadAll(zr)
	if err == nil || len(readable) == 0 {
		t.Fatalf("setup: %d bytes of the cut .gz read, error %v", len(readable), err)
	}
	readable = readable[:bytes.LastIndexByte(readable, '\n')+1]
	bPlain := filepath.Join(dir, "b-readable.log")
	if err := os.WriteFile(bPlain, readable, 0o644); err != nil {
		t.Fatal(err)
	}
	cutLine := bytes.Count(readable, []byte{'\n'}) + 1
	run := runOutErr
	for _, flags := range [][]string{{}, {"--allowlist", `{"verdict":["DROPPED","FORWARDED"]}`, "--fieldmask", "time,source,destination,verdict"}} {
		want, _, err := run(append(append([]string{"filter", "--parallel", "1"}, flags...), a, bPlain, c)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"1", "2", "3"} {
			out, errOut, err := run(append(append([]string{"filter", "--parallel", n}, flags...), a, b, missing, c)...)
			if out != want {
				t.Errorf("%v --parallel %s: %d bytes of output, want the %d of the readable lines", flags, n, len(out), len(want))
			}
			if exitStatus(err) != exitDamaged || !strings.Contains(err.Error(), "2 input file(s) damaged") {
				t.Errorf("%v --parallel %s: exit status %d (%v), want %d", flags, n, exitStatus(err), err, exitDamaged)
			}
			wantErr := fmt.Sprintf("%s:%d: damaged: unexpected EOF at content byte ", b, cutLine)
			if !strings.Contains(errOut, wantErr) || !strings.Contains(errOut, missing+": damaged: open "+missing) {
				t.Errorf("%v --parallel %s: stderr %q, want %q and the missing file", flags, n, errOut, wantErr)
			}
		}
	}
}
