package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestContainerMemoryLimit: the limit comes from cgroup v2's memory.max,
// else v1's memory.limit_in_bytes; none when unlimited or unreadable.
func TestContainerMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		name, file, body string
		want             int64
		ok               bool
	}{
		{"v2", "memory.max", "268435456\n", 268435456, true},
		{"v2 unlimited", "memory.max", "max\n", 0, false},
		{"v1", "memory/memory.limit_in_bytes", "134217728\n", 134217728, true},
		{"v1 unlimited", "memory/memory.limit_in_bytes", "9223372036854771712\n", 0, false},
		{"garbage", "memory.max", "lots", 0, false},
		{"none", "", "", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			if c.file != "" {
				p := filepath.Join(root, c.file)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(c.body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := containerMemoryLimit(root)
			if got != c.want || ok != c.ok {
				t.Fatalf("got %d %v, want %d %v", got, ok, c.want, c.ok)
			}
		})
	}
	if got := softMemoryLimit(256 << 20); got != 224<<20 {
		t.Fatalf("soft limit of 256 MiB: %d, want 224 MiB", got)
	}
}
