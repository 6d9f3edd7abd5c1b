package daemon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/objstore"
	"github.com/flowaudit/flowaudit/pkg/ship"
)

// newShipper prepares the shipping of archive.upload (nil when it is off).
func (d *Daemon) newShipper(ctx context.Context, cfg Config) (*ship.Shipper, error) {
	u := cfg.Archive.Upload
	if u.To == "" {
		return nil, nil
	}
	loc, err := objstore.ParseURL(u.To)
	if err != nil {
		return nil, fmt.Errorf("archive.upload.to: %w", err)
	}
	client, err := objstore.New(ctx, objstore.Options{Endpoint: u.Endpoint})
	if err != nil {
		return nil, fmt.Errorf("archive.upload: %w", err)
	}
	return ship.New(ship.Config{Root: cfg.Archive.Dir, To: loc, Client: client, LockMode: u.ObjectLock.Mode,
		LockRetain: time.Duration(u.ObjectLock.Retain), Log: d.log.Named("ship"), Metrics: d.shipMetrics, Now: d.opts.Now})
}

// shipLoop ships the archive's closed files and manifests every
// archive.upload.every; after an error it tries again sooner, backing off
// to that interval. What is not shipped is kept from retention (Held).
//
// It starts once the daemon has the archive: a standby beside the
// collector it replaces (an upgrade) leaves the shipping to that one until
// then, and reads what it shipped from the ledger.
func (d *Daemon) shipLoop(ctx context.Context, s *ship.Shipper, every time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-d.opened:
	}
	// The backlog is counted from when this daemon could ship: a standby
	// waiting on the archive's lock ships nothing, the daemon it replaces
	// does.
	d.shipStart.Store(d.opts.Now().UnixNano())
	if err := s.ReadLedger(); err != nil {
		d.log.Error("shipping to object storage stopped: its ledger is unreadable", zap.Error(err))
		return
	}
	wait := every
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		res, err := s.Once(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.log.Warn("shipping the archive to object storage failed; retrying", zap.Error(err),
				zap.Int("files_shipped", res.Files), zap.Duration("in", backoff))
			wait = backoff + time.Duration(rand.Int64N(int64(backoff)/2+1))
			backoff = min(2*backoff, every)
			continue
		}
		d.shipOK.Store(d.opts.Now().UnixNano())
		if res.Files+res.Manifests > 0 {
			d.log.Info("shipped to object storage", zap.Int("files", res.Files), zap.Int("manifests", res.Manifests), zap.Int64("bytes", res.Bytes))
		}
		wait, backoff = every, time.Second
	}
}
