package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedIsCurrent fails when wal_gen.go does not match the
// messages of Cilium's flow.Flow (a new Cilium version):
// run go generate ./pkg/archive.
func TestGeneratedIsCurrent(t *testing.T) {
	want, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../wal_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("pkg/archive/wal_gen.go is stale: run go generate ./pkg/archive")
	}
}
