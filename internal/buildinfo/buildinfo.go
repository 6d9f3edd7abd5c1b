// Package buildinfo carries the version stamped into the binary with -ldflags.
package buildinfo

import "runtime"

// Version and Commit are set at build time:
//
//	-ldflags "-X github.com/flowaudit/flowaudit/internal/buildinfo.Version=v0.1.0"
var (
	Version = "dev"
	Commit  = "unknown"
)

// GoVersion is the Go toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }
