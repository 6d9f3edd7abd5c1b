package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// TestImportAndCompactSigned: an import into small files, then compact,
// both signing with --signing-key: fewer files, every row kept, and verify
// with the public key finds nothing (the compaction's entries are signed
// too). A second writer on the root is refused while one is open.
func TestImportAndCompactSigned(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "archive")
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	keyFile, pubFile := filepath.Join(dir, "sign.key"), filepath.Join(dir, "sign.pub")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(seed)), 0o600); err != nil {
		t.Fatal(err)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if err := os.WriteFile(pubFile, []byte(hex.EncodeToString(pub)), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := newRootCmd()
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		err := cmd.Execute()
		return out.String(), err
	}
	// Three imports into one January day: three files per node.
	var total int
	for i := 0; i < 3; i++ {
		ev := filepath.Join(dir, "ev"+string(rune('a'+i))+".log")
		out, err := run("gen", "--seed", string(rune('1'+i)), "--nodes", "2", "--rate", "5", "--count", "300", "--start", "2026-01-01T0"+string(rune('1'+3*i))+":00:00Z")
		if err != nil {
			t.Fatal(err)
		}
		total += strings.Count(out, `"flow":`)
		if err := os.WriteFile(ev, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := run("import", "--progress", "never", "--archive", root, "--signing-key", keyFile, ev); err != nil {
			t.Fatalf("import: %v\n%s", err, out)
		}
	}
	files := func() int {
		m, _ := filepath.Glob(filepath.Join(root, "flows", "*", "*", "*.parquet"))
		return len(m)
	}
	before := files()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run("compact", "--archive", root); err == nil || !strings.Contains(err.Error(), "in use by another writer") {
		t.Fatalf("compact while a writer is open: %v\n%s", err, out)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := run("compact", "--archive", root, "--signing-key", keyFile)
	if err != nil {
		t.Fatalf("compact: %v\n%s", err, out)
	}
	if after := files(); after >= before || !strings.Contains(out, "files merged") {
		t.Fatalf("compact: %d flow files before, %d after; output %q", before, after, out)
	}
	out, err = run("verify", "--archive", root, "--public-key", pubFile)
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	sc, err := archive.OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	if err := sc.ScanFlows(t.Context(), archive.ScanOptions{}, func(r []archive.FlowRow) error { rows += len(r); return nil }); err != nil {
		t.Fatal(err)
	}
	if rows != total {
		t.Fatalf("%d rows after compaction, %d flows generated", rows, total)
	}
}
