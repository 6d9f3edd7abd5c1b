package ingest

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc/mem"
)

// msgRing hands the messages the gRPC stream receives from its receiving
// goroutine to the goroutine that emits batches: a ring of slots, each
// holding a reference to the buffers gRPC received the message in (from
// gRPC's buffer pool, returned to it when the slot is released: memory
// follows the messages in flight, not the ring's length), one producer and
// one consumer, and two counters. The producer publishes a
// message with one atomic store and waits only when the ring is full (the
// stream is then read no faster than the archive writes, and gRPC's flow
// control slows the sender: an agent that overruns its own ring reports the
// loss); the consumer takes every published message at once. Neither takes
// a lock per message, and memory is bounded by the slots' buffers.
type msgRing struct {
	slots    []ringSlot
	produced atomic.Uint64 // messages published
	consumed atomic.Uint64 // messages released (their slots reusable)
	// ready is signalled when a batch's worth is published; space when
	// slots are released. Both are non-blocking, capacity 1.
	ready, space chan struct{}
	batch        uint64
}

// ringSlot is one message, or a control event of the stream.
type ringSlot struct {
	// buf is the message's bytes: data's, when gRPC received it in one
	// buffer, else copied into one from gRPC's pool (data then holds it).
	buf  []byte
	data mem.BufferSlice
	ctl  streamEvent // ctlNone for a message
	err  string      // ctlDown: why
	when int64       // wall clock (ns) of a control event
}

// streamEvent is what a control slot says about the stream.
type streamEvent uint8

const (
	ctlNone streamEvent = iota
	// ctlUp: a stream was (re)opened; the flows that follow may repeat
	// those already read (since) and show what the server no longer had.
	ctlUp
	// ctlDown: the stream failed (err); flows stop until the next ctlUp.
	ctlDown
)

func newMsgRing(n, batch int) *msgRing {
	return &msgRing{slots: make([]ringSlot, n), ready: make(chan struct{}, 1), space: make(chan struct{}, 1), batch: uint64(batch)}
}

// slot waits for a free slot and returns it (producer only); false when ctx
// is done first.
func (r *msgRing) slot(ctx context.Context) (*ringSlot, bool) {
	p := r.produced.Load()
	for p-r.consumed.Load() >= uint64(len(r.slots)) {
		select {
		case <-r.space:
		case <-ctx.Done():
			return nil, false
		}
	}
	return &r.slots[p%uint64(len(r.slots))], true
}

// publish makes the slot returned by slot visible to the consumer.
func (r *msgRing) publish() {
	p := r.produced.Add(1)
	if p-r.consumed.Load() >= r.batch {
		r.signal(r.ready)
	}
}

// put publishes a control event (producer only).
func (r *msgRing) put(ctx context.Context, ev streamEvent, err string, when int64) bool {
	s, ok := r.slot(ctx)
	if !ok {
		return false
	}
	s.ctl, s.err, s.when = ev, err, when
	s.free()
	r.publish()
	r.signal(r.ready)
	return true
}

// pending returns the range of published, unreleased messages (consumer).
func (r *msgRing) pending() (from, to uint64) { return r.consumed.Load(), r.produced.Load() }

func (r *msgRing) at(i uint64) *ringSlot { return &r.slots[i%uint64(len(r.slots))] }

// release frees the slots before to (consumer).
func (r *msgRing) release(to uint64) {
	for i := r.consumed.Load(); i < to; i++ {
		r.at(i).free()
	}
	r.consumed.Store(to)
	r.signal(r.space)
}

func (r *msgRing) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// hold makes the slot the message data (which the slot takes a reference
// to: gRPC frees its own after the codec returns).
func (s *ringSlot) hold(data mem.BufferSlice) {
	s.free()
	if len(data) == 1 {
		data.Ref()
		s.data, s.buf = data, data[0].ReadOnlyData()
		return
	}
	b := data.MaterializeToBuffer(msgPool)
	s.data, s.buf = mem.BufferSlice{b}, b.ReadOnlyData()
}

// free returns the slot's buffers to gRPC's pool.
func (s *ringSlot) free() {
	if s.data != nil {
		s.data.Free()
		s.data = nil
	}
	s.buf = nil
}
