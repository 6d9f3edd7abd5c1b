package daemon

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	// /readyz?standby counts a standby (waiting for the collector it
	// replaces to release the archive) as ready: a DaemonSet rolling
	// update with maxSurge deletes the old pod only once the new one is
	// ready, so the DaemonSet's probe asks that way.
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		standbyOK := r.URL.Query().Has("standby")
		problems := d.notReady(standbyOK)
		if len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, "not ready:\n  "+strings.Join(problems, "\n  "))
			return
		}
		if e := d.standby.Load(); e != nil {
			_, _ = fmt.Fprintf(w, "ready (standby: %s)\n", standbyReason(e))
			return
		}
		_, _ = fmt.Fprintln(w, "ready")
	})
	return mux
}

// debugHandler serves Go's profiler (DebugListen): its own mux, not
// http.DefaultServeMux, so nothing else a package registers there is served.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// standbyReason says why a standby reads nothing yet.
func standbyReason(e *archive.LockedError) string {
	return fmt.Sprintf("waiting for the archive's writer lock, held by %s (the collector this one replaces releases it once it has committed, and this one resumes from there)", e.Holder)
}

// notReady lists why the daemon is not ready: the archive is not open
// (waiting for another writer to release it: a standby, which standbyOK
// counts as ready) or is failing or not writable, a source is not being
// read or its file's directory does not exist, or the flows being archived
// lag behind the clock by more than readiness.maxLag.
func (d *Daemon) notReady(standbyOK bool) []string {
	d.mu.Lock()
	dir, maxLag := d.cfg.Archive.Dir, time.Duration(d.cfg.Readiness.MaxLag)
	d.mu.Unlock()
	var out []string
	standby := d.standby.Load()
	switch {
	case standby != nil:
		if !standbyOK {
			out = append(out, "archive: "+standbyReason(standby))
		}
	case d.sink.Load() == nil:
		out = append(out, "archive: not open")
	case d.degraded.Load():
		out = append(out, "archive: the last write failed; retrying")
	}
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		out = append(out, fmt.Sprintf("archive %s: not writable: %v", dir, err))
	}
	if d.shipper.Load() != nil && standby == nil { // a standby ships nothing yet
		d.mu.Lock()
		maxBacklog := time.Duration(d.cfg.Archive.Upload.MaxBacklog)
		d.mu.Unlock()
		since := time.Unix(0, d.shipStart.Load())
		if ok := d.shipOK.Load(); ok != 0 {
			since = time.Unix(0, ok)
		}
		if behind := d.opts.Now().Sub(since); behind > maxBacklog {
			out = append(out, fmt.Sprintf("object store: not caught up for %s (archive.upload.maxBacklog %s): files wait to be shipped (flowaudit_ship_backlog_manifests)", behind.Round(time.Second), maxBacklog))
		}
	}
	for _, s := range d.sources {
		id := s.in.ID()
		if s.dirMissing.Load() {
			out = append(out, fmt.Sprintf("source %s: directory %s does not exist: nothing to read (waiting for Cilium's exporter to create it)", id, filepath.Dir(s.cfg.File)))
			continue
		}
		if !s.up.Load() {
			if standby == nil { // a standby's sources start once it has the archive
				out = append(out, fmt.Sprintf("source %s: not running", id))
			}
			continue
		}
		p := s.pipe.Load()
		if p == nil {
			continue
		}
		lastFlow, lastWrite := p.Progress()
		if lastFlow.IsZero() || lastWrite.IsZero() {
			continue
		}
		if lag := lastWrite.Sub(lastFlow); lag > maxLag {
			out = append(out, fmt.Sprintf("source %s: archiving flows %s old (readiness.maxLag %s): catching up", id, lag.Round(time.Second), maxLag))
		}
	}
	return out
}
