//go:build unix

package archive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// lockRoot takes the archive root's writer lock: an exclusive flock(2) on
// root/_writer.lock, held until the returned file is closed (or the process
// exits, however it exits). A root has one writer: two would both append to
// the same manifests, number their commits alike and, opening, delete each
// other's unfinished files as crash leftovers. A file system without locks
// (ENOLCK, ENOTSUP) is used unlocked: ok is false.
func lockRoot(root string) (f *os.File, ok bool, err error) {
	path := filepath.Join(root, lockFile)
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("archive: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) {
			return f, false, nil
		}
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, fmt.Errorf("archive: %s is in use by another writer (%s): an archive root has one writer (a daemon, an import), so stop it or use another --archive",
				root, strings.TrimSpace(string(holder)))
		}
		return nil, false, fmt.Errorf("archive: lock %s: %w", path, err)
	}
	// Who holds it, for the error above (best effort: the lock is the flock).
	host, _ := os.Hostname()
	if err := f.Truncate(0); err == nil {
		_, _ = fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	}
	return f, true, nil
}
