// Bounds of a pipeline: the bytes queued between its source and the sink,
// and the rate of its error log lines.

package pipeline

import (
	"context"
	"sync"
	"time"
)

// gate bounds the bytes in flight between one source and the sink. It has
// one acquirer (the source goroutine) and one releaser (the sink goroutine);
// it is taken once per batch, never per flow.
type gate struct {
	mu   sync.Mutex
	n    int64
	max  int64
	wake chan struct{}
}

func newGate(max int64) *gate { return &gate{max: max, wake: make(chan struct{}, 1)} }

// acquire waits until w more bytes fit (an empty queue always admits one
// batch, whatever its size) or ctx is done, and then takes them regardless.
func (g *gate) acquire(ctx context.Context, w int64) {
	for {
		g.mu.Lock()
		if g.n == 0 || g.n+w <= g.max || ctx.Err() != nil {
			g.n += w
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		select {
		case <-g.wake:
		case <-ctx.Done():
		}
	}
}

func (g *gate) release(w int64) {
	g.mu.Lock()
	g.n -= w
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

func (g *gate) inFlight() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// throttle lets one log line through per interval and counts the rest.
type throttle struct {
	next       time.Time
	suppressed uint64
}

func (t *throttle) allow(now time.Time) bool {
	if now.Before(t.next) {
		t.suppressed++
		return false
	}
	t.next = now.Add(10 * time.Second)
	return true
}

func (t *throttle) takeSuppressed() uint64 {
	n := t.suppressed
	t.suppressed = 0
	return n
}
