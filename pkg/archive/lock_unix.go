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
// exits, however it exits: a SIGKILLed writer leaves no stale lock). A root
// has one writer: two would both append to the same manifests, number their
// commits alike and, opening, delete each other's unfinished files as crash
// leftovers. A file system without locks (ENOLCK, ENOTSUP) is used
// unlocked: ok is false.
//
// While another writer holds the lock, lockRoot fails with a *LockedError,
// or, given wait, calls wait with it and tries again when wait returns nil
// (it returns wait's error otherwise).
func lockRoot(root string, wait func(*LockedError) error) (f *os.File, ok bool, err error) {
	path := filepath.Join(root, lockFile)
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("archive: lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) {
			return f, false, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, false, fmt.Errorf("archive: lock %s: %w", path, err)
		}
		holder, _ := os.ReadFile(path)
		locked := &LockedError{Root: root, Holder: strings.TrimSpace(string(holder))}
		if wait == nil {
			_ = f.Close()
			return nil, false, locked
		}
		if err := wait(locked); err != nil {
			_ = f.Close()
			return nil, false, err
		}
	}
	// Who holds it, for the error above (best effort: the lock is the flock).
	host, _ := os.Hostname()
	if err := f.Truncate(0); err == nil {
		_, _ = fmt.Fprintf(f, "pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))
	}
	return f, true, nil
}
