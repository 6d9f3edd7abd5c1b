package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedIsCurrent fails when shred_gen.go does not match FlowRow:
// run go generate ./pkg/archive.
func TestGeneratedIsCurrent(t *testing.T) {
	want, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../shred_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("pkg/archive/shred_gen.go is stale: run go generate ./pkg/archive")
	}
}
