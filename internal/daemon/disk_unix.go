//go:build unix

package daemon

import "syscall"

// diskUsage returns the bytes available to an unprivileged user and the size
// of the file system holding dir.
func diskUsage(dir string) (free, size uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}
