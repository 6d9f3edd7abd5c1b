package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/gen"
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
			a = append(a, bytes.Repeat([]byte("x"), maxLineBytes+10)...)
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
		var out, errOut bytes.Buffer
		cmd := newRootCmd()
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		err := cmd.Execute()
		return out.String(), errOut.String(), errString(err)
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

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
