package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Abort releases the writer without committing: the open files are closed
// and removed, and every batch written since the last commit is forgotten,
// so the committed checkpoints stay the resume point. The daemon calls it
// after a failed Write or Flush (disk full, I/O error), then opens the
// archive again and re-reads from Checkpoints(): nothing half-written is
// ever committed and nothing is lost. Safe to call twice, and after Close.
func (w *Writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	var errs []error
	for _, of := range w.files {
		if of.f != nil {
			_ = of.f.Close()
		}
		if err := os.Remove(of.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("archive: abort: %w", err))
		}
	}
	clear(w.files)
	w.closeLog() // its records are commits: the next writer replays them
	w.m.openFiles.Set(0)
	w.unlock()
	return errors.Join(errs...)
}

// Seq is the sequence number of the last commit group (0: none yet); it
// changes exactly when a Write, Flush or Close commits.
func (w *Writer) Seq() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq
}

// SetConfigHash sets the configuration hash recorded in the files and stats
// rows opened from now on (call Flush first to separate the configurations
// in the archive, or Reconfigure).
func (w *Writer) SetConfigHash(h string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cfg.ConfigHash = h
}

// Reconfigure commits what is open and sets the configuration hash of what
// is written from now on, no batch being written in between.
func (w *Writer) Reconfigure(h string) error {
	return w.locked(func() error {
		if err := w.flush(); err != nil {
			return err
		}
		w.cfg.ConfigHash = h
		return nil
	})
}
