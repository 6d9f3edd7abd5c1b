package pipeline

import (
	"context"
	"sync"
	"time"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// sinkWriter hands batches to the sink and records the progress; after a
// sink error it writes nothing more and stops the source, so that nothing
// after the failed batch is acknowledged.
type sinkWriter struct {
	p      *Pipeline
	cancel context.CancelFunc
	err    error
}

func (w *sinkWriter) write(b *flow.Batch) {
	if w.err != nil {
		return
	}
	p := w.p
	start := time.Now()
	if err := p.sink.Write(b); err != nil {
		w.err = err
		w.cancel()
		return
	}
	p.m.sinkSeconds.Observe(time.Since(start).Seconds())
	// Progress moves with flows only: a batch of denied flows, or a quiet
	// source's empty one, says nothing about how far behind the flows
	// being archived are (readiness compares the two).
	if n := len(b.Flows); n > 0 {
		t := b.Flows[n-1].GetTime().AsTime().UnixNano()
		p.lastWriteNs.Store(start.UnixNano())
		p.lastFlowNs.Store(t)
		p.m.lastWrittenFlowTime.Set(float64(t) / 1e9)
	}
}

// handoff is how the source's goroutine (emit) gets a batch to fill and
// hands it to the sink: once a batch, never per flow.
type handoff interface {
	// take returns an empty batch, nil once ctx is done.
	take(ctx context.Context) *flow.Batch
	// send hands a filled batch over; it is not the caller's any more.
	send(ctx context.Context, b *flow.Batch)
	// stop waits until every batch sent is written.
	stop()
}

// inlineHandoff writes each batch on the source's goroutine before emit
// returns: one batch, reused.
type inlineHandoff struct {
	w *sinkWriter
	b flow.Batch
}

func (h *inlineHandoff) take(context.Context) *flow.Batch { return &h.b }

func (h *inlineHandoff) send(_ context.Context, b *flow.Batch) {
	h.w.write(b)
	b.Reset()
}

func (h *inlineHandoff) stop() {}

// queueHandoff writes batches on a goroutine of its own, behind a queue
// bounded in batches and in bytes, so the source reads on while the sink
// commits.
type queueHandoff struct {
	w          *sinkWriter
	free, full chan *flow.Batch
	gate       *gate
	wg         sync.WaitGroup
}

func newQueueHandoff(w *sinkWriter, batches int, bytes int64) *queueHandoff {
	h := &queueHandoff{w: w, free: make(chan *flow.Batch, batches), full: make(chan *flow.Batch, batches), gate: newGate(bytes)}
	for i := 0; i < batches; i++ {
		h.free <- &flow.Batch{}
	}
	m := w.p.m
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for b := range h.full {
			w.write(b)
			h.gate.release(b.Bytes)
			m.queueBytes.Set(float64(h.gate.inFlight()))
			b.Reset()
			h.free <- b
			m.queueBatches.Set(float64(len(h.full)))
		}
	}()
	return h
}

func (h *queueHandoff) take(ctx context.Context) *flow.Batch {
	select {
	case b := <-h.free:
		return b
	case <-ctx.Done():
		return nil
	}
}

func (h *queueHandoff) send(ctx context.Context, b *flow.Batch) {
	// Wait for room (or shutdown: a batch read is always handed over).
	h.gate.acquire(ctx, b.Bytes)
	m := h.w.p.m
	m.queueBytes.Set(float64(h.gate.inFlight()))
	h.full <- b
	m.queueBatches.Set(float64(len(h.full)))
}

func (h *queueHandoff) stop() {
	close(h.full)
	h.wg.Wait()
}
