package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// containerMemoryLimit reads the memory limit of the cgroup the process
// runs in (a container's, under cgroupRoot, normally /sys/fs/cgroup):
// cgroup v2's memory.max, else v1's memory/memory.limit_in_bytes. ok is
// false without a limit ("max", or v1's page-rounded maximum).
func containerMemoryLimit(cgroupRoot string) (limit int64, ok bool) {
	for _, name := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		b, err := os.ReadFile(filepath.Join(cgroupRoot, name))
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// softMemoryLimit is the Go runtime's soft memory limit for a container
// limit: 7/8 of it, so the GC collects harder before the kernel's OOM
// killer is reached (the DaemonSet's 224MiB of 256Mi).
func softMemoryLimit(limit int64) int64 { return limit / 8 * 7 }
