//go:build linux

package archive

import (
	"fmt"
	"syscall"
)

// DiskUsage reports the bytes available to an unprivileged writer (free) and
// the total size of the file system holding dir.
func DiskUsage(dir string) (free, size uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("archive: statfs %s: %w", dir, err)
	}
	bs := uint64(st.Bsize)
	return st.Bavail * bs, st.Blocks * bs, nil
}
