package daemon

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// The file source waits for a file that does not exist yet (Cilium's
// exporter creates it, and its directory, with the first event it
// writes), so a wrong path is not an error: the source would wait
// forever, up and ready, archiving nothing. A missing directory is what a
// wrong path (or an exporter that is off, or a volume not mounted) looks
// like, so the daemon says so: a warning at start and every
// dirWarnEvery while it lasts, the source not ready and not up, and
// flowaudit_source_file_directory_missing. It keeps waiting: the exporter
// may still create it.
var (
	dirCheckEvery = 10 * time.Second
	dirWarnEvery  = 5 * time.Minute
)

// checkFileDirs looks at the directory of every file source once, and
// logs a warning for each that is missing if warn.
func (d *Daemon) checkFileDirs(warn bool) {
	for _, s := range d.sources {
		if s.cfg.File == "" {
			continue
		}
		dir := filepath.Dir(s.cfg.File)
		_, err := os.Stat(dir)
		missing := errors.Is(err, fs.ErrNotExist)
		was := s.dirMissing.Swap(missing)
		s.publishUp()
		switch {
		case missing:
			s.dirGauge.Set(1)
			if warn {
				d.log.Warn("the directory of the exporter's file does not exist: nothing to read; waiting for Cilium's exporter to create it (is the exporter enabled with this hubble-export-file-path, and the directory mounted into this pod?)",
					zap.String("source", s.in.ID()), zap.String("directory", dir))
			}
		case was:
			s.dirGauge.Set(0)
			d.log.Info("the directory of the exporter's file exists now", zap.String("source", s.in.ID()), zap.String("directory", dir))
		default:
			s.dirGauge.Set(0)
		}
	}
}

// fileDirLoop runs checkFileDirs every dirCheckEvery, with warnings every
// dirWarnEvery (Run made the first check, with its warning).
func (d *Daemon) fileDirLoop(ctx context.Context) {
	tick := time.NewTicker(dirCheckEvery)
	defer tick.Stop()
	lastWarn := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		warn := time.Since(lastWarn) >= dirWarnEvery
		if warn {
			lastWarn = time.Now()
		}
		d.checkFileDirs(warn)
	}
}

// publishUp sets flowaudit_source_up: 1 while the source runs and has
// something to read.
func (s *source) publishUp() {
	s.upMu.Lock() // the source's goroutine and the directory check both publish
	defer s.upMu.Unlock()
	if s.up.Load() && !s.dirMissing.Load() {
		s.upGauge.Set(1)
	} else {
		s.upGauge.Set(0)
	}
}
