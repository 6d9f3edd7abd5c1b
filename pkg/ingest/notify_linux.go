//go:build linux

package ingest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// notifier reports the names of entries created, renamed into, modified or
// deleted in one directory (inotify). Events are handled as they come, on
// the notifier's goroutine, and sync handles every event already queued, so
// that a reader can act on a directory listing knowing that every entry
// created before it has been seen. The poll interval stays the safety net.
type notifier struct {
	f    *os.File
	rc   syscall.RawConn
	mu   sync.Mutex // one reader of the queue at a time, event handled before release
	buf  []byte
	fn   func(name []byte)
	done chan struct{}
	dead atomic.Bool // the directory went away (or the read failed): start anew
	rest func() time.Duration
}

// startNotify watches dir and calls fn with each event's entry name (nil on
// a queue overflow or when the directory goes away) until close. name is
// only valid during the call; fn must not call sync.
//
// After handling what was queued the notifier rests for rest() before it
// waits again: the exporter writes every event on its own, and the kernel
// merges a run of identical IN_MODIFY events that wait in the queue, so a
// busy file costs one wake-up per rest instead of one per flow. Other
// events queue meanwhile (and sync handles them at once).
func startNotify(dir string, rest func() time.Duration, fn func(name []byte)) (*notifier, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init: %w", err)
	}
	const mask = syscall.IN_CREATE | syscall.IN_MOVED_TO | syscall.IN_MODIFY | syscall.IN_DELETE |
		syscall.IN_DELETE_SELF | syscall.IN_MOVE_SELF | syscall.IN_ONLYDIR
	if _, err := syscall.InotifyAddWatch(fd, dir, mask); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("inotify_add_watch %s: %w", dir, err)
	}
	// A non-blocking descriptor becomes pollable: Close ends a waiting Read.
	f := os.NewFile(uintptr(fd), "inotify:"+dir)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("inotify: %w", err)
	}
	n := &notifier{f: f, rc: rc, buf: make([]byte, 64<<10), fn: fn, done: make(chan struct{}), rest: rest}
	go n.loop()
	return n, nil
}

func (n *notifier) loop() {
	defer close(n.done)
	defer n.dead.Store(true)
	// The callback runs whenever the queue is readable; false: wait again.
	_ = n.rc.Read(func(fd uintptr) bool {
		if n.drain(int(fd)) {
			return true
		}
		time.Sleep(n.rest())
		return false
	})
}

// drain handles every queued event; it reports whether the watch is over.
func (n *notifier) drain(fd int) (over bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		k, err := syscall.Read(fd, n.buf)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if errors.Is(err, syscall.EAGAIN) {
			return over
		}
		if err != nil || k <= 0 {
			return true
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= k; {
			mask := binary.NativeEndian.Uint32(n.buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(n.buf[off+12:]))
			start := off + syscall.SizeofInotifyEvent
			if start+nameLen > k {
				break
			}
			name := n.buf[start : start+nameLen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			off = start + nameLen
			switch {
			case mask&(syscall.IN_IGNORED|syscall.IN_DELETE_SELF|syscall.IN_MOVE_SELF) != 0:
				over = true
				n.fn(nil)
			case mask&syscall.IN_Q_OVERFLOW != 0:
				n.fn(nil)
			default:
				n.fn(name)
			}
		}
	}
}

// sync handles every event queued so far.
func (n *notifier) sync() {
	if n.isDead() {
		return
	}
	_ = n.rc.Control(func(fd uintptr) {
		if n.drain(int(fd)) {
			n.dead.Store(true)
		}
	})
}

// close stops the watch and waits for its goroutine.
func (n *notifier) close() {
	if n == nil {
		return
	}
	n.f.Close()
	<-n.done
}

func (n *notifier) isDead() bool { return n == nil || n.dead.Load() }
