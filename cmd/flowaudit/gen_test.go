package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestGenDuration: --duration without --start generates that much simulated
// time from the default start (it used to generate nothing).
func TestGenDuration(t *testing.T) {
	for _, args := range [][]string{
		{"gen", "--nodes", "2", "--rate", "50", "--duration", "10s"},
		{"gen", "--nodes", "2", "--rate", "50", "--duration", "10s", "--start", "2026-03-01T00:00:00Z"},
	} {
		var out bytes.Buffer
		cmd := newRootCmd()
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		lines := strings.Count(out.String(), "\n")
		// 2 nodes x 50 flows/s x 10 s, with Poisson arrivals and a few
		// non-flow events: about 1,000 lines.
		if lines < 700 || lines > 1300 {
			t.Fatalf("%v: %d lines, want about 1000", args, lines)
		}
	}
}
