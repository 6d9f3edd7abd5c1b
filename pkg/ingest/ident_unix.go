//go:build unix

package ingest

import (
	"os"
	"syscall"
)

// fileIdent returns the device and inode of a file (0, 0 when unknown).
func fileIdent(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // types differ by platform
	}
	return 0, 0
}
