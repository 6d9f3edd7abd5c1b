package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// ConfigPollInterval is how often WatchConfig reads the configuration
// inputs.
const ConfigPollInterval = 5 * time.Second

// WatchConfig calls reload, from a goroutine that ends with ctx, when the
// content of a configuration input changes from what it is now: the
// --config file, and the mounted cilium-config ConfigMap's keys and the
// flowlogs file its hubble-flowlogs-config-path names (Cilium reloads its
// dynamic exporter's filters from that file itself; flowaudit follows).
// The content it starts from is read before it returns, so that a change
// made as the daemon starts is not taken for the running configuration.
// Nothing is watched when file and ciliumDir are both empty.
func WatchConfig(ctx context.Context, file, ciliumDir string, interval time.Duration, reload func() error, log *zap.Logger) {
	if file == "" && ciliumDir == "" {
		return
	}
	sum := configSum(file, ciliumDir)
	go watchConfig(ctx, file, ciliumDir, sum, interval, reload, log)
}

// watchConfig is WatchConfig's loop, from the content last (configSum's).
// A mounted ConfigMap is replaced through a symlink swap, which content
// polling sees whatever the mechanism, so it polls every interval rather
// than relying on inotify. A change is acted on when two polls in a row
// see the same new content: a file caught while an editor or a script
// rewrites it in place (truncated, half written) is never loaded.
func watchConfig(ctx context.Context, file, ciliumDir string, last []byte, interval time.Duration, reload func() error, log *zap.Logger) {
	var pending []byte // new content seen at the previous poll
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch cur := configSum(file, ciliumDir); {
		case cur == nil || bytes.Equal(cur, last):
			pending = nil
		case !bytes.Equal(cur, pending):
			pending = cur // reloaded if the next poll sees it too
		default:
			last, pending = cur, nil
			log.Info("configuration changed: reloading", zap.String("config", file), zap.String("ciliumConfigDir", ciliumDir))
			_ = reload()
		}
	}
}

// configSum hashes the names and contents of watchConfig's inputs; nil when
// one of them cannot be read (a file being replaced): no change is seen
// until it can, as a reload would only fail. The cilium-config keys are what
// the directory lists, so a key that appears or goes away is a change.
func configSum(file, ciliumDir string) []byte {
	h := sha256.New()
	ok := true
	add := func(path string) []byte {
		b, err := os.ReadFile(path)
		ok = ok && err == nil
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return b
	}
	if file != "" {
		add(file)
	}
	if ciliumDir != "" {
		entries, err := os.ReadDir(ciliumDir)
		ok = ok && err == nil
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, "..") { // the ConfigMap mount's own ..data links
				continue
			}
			b := add(filepath.Join(ciliumDir, name))
			if p := strings.TrimSpace(string(b)); name == "hubble-flowlogs-config-path" && p != "" {
				add(p)
			}
		}
	}
	if !ok {
		return nil
	}
	return h.Sum(nil)
}

// HandleSignals applies the daemon's signal policy until stop is called:
// SIGHUP reloads the configuration; the first SIGTERM or SIGINT calls
// drain (the sources stop, what was read is committed); a second one exits
// at once with status 1, since the commit protocol keeps the archive
// consistent either way and the rest is re-read on restart.
func HandleSignals(drain func(), reload func() error, log *zap.Logger) (stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		stopping := false
		for s := range sigs {
			switch {
			case s == syscall.SIGHUP:
				log.Info("SIGHUP: reloading the configuration")
				_ = reload()
			case !stopping:
				stopping = true
				log.Info("signal received: draining and committing", zap.String("signal", s.String()))
				drain()
			default:
				log.Warn("second signal: exiting without draining; the archive stays consistent and the rest is re-read on restart", zap.String("signal", s.String()))
				_ = log.Sync()
				os.Exit(1)
			}
		}
	}()
	return func() { signal.Stop(sigs) }
}
