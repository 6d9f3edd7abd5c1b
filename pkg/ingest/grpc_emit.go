package ingest

// From the ring to the pipeline: batches of received messages, each flow
// checked against what was archived before (the resume's overlap) and the
// ring-seek lost event held until the next flow.

import (
	"context"
	"fmt"
	"hash/maphash"
	"time"

	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// emitLoop hands the ring's messages to emit in batches: when a batch's
// worth is there, or FlushEvery after the first one, and an empty batch
// when IdleEvery passes without any.
func (run *grpcRun) emitLoop(ctx context.Context) error {
	s := run.s
	tick := time.NewTicker(s.cfg.FlushEvery)
	defer tick.Stop()
	run.lastEmit = time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-run.ring.ready:
		case <-tick.C:
		}
		from, to := run.ring.pending()
		if from == to {
			if every := s.cfg.IdleEvery; every > 0 && time.Since(run.lastEmit) >= every {
				run.lastEmit = time.Now()
				idle := LineBatch{Format: FormatProto, Nodes: run.upNodes()}
				if err := run.emit(&idle); err != nil {
					return err
				}
			}
			continue
		}
		for from < to {
			end := run.batchEnd(from, to)
			if err := run.batch(from, end); err != nil {
				return err
			}
			run.ring.release(end)
			from = end
		}
	}
}

// batchEnd is where the batch starting at slot from ends (before to): at
// BatchLines messages or BatchBytes bytes, at least one message.
func (run *grpcRun) batchEnd(from, to uint64) uint64 {
	end := min(to, from+uint64(run.s.cfg.BatchLines))
	size := 0
	for i := from; i < end; i++ {
		if size += len(run.ring.at(i).buf); size > run.s.cfg.BatchBytes && i > from {
			return i
		}
	}
	return end
}

// batch emits the messages of slots [from, to).
func (run *grpcRun) batch(from, to uint64) error {
	lb := &run.lb
	lb.reset()
	for i := from; i < to; i++ {
		slot := run.ring.at(i)
		switch slot.ctl {
		case ctlUp:
			run.release(lb)
			run.connected(slot.when)
			run.atStart = !run.s.relay
			continue
		case ctlDown:
			run.release(lb)
			run.disconnected(slot.err, slot.when)
			continue
		}
		msg := slot.buf
		atStart := run.atStart
		run.atStart = false
		if err := scanEnvelope(msg, &run.env); err != nil {
			// The pipeline's decoder counts it, with its position.
			run.release(lb)
			lb.Lines = append(lb.Lines, msg)
			continue
		}
		switch run.env.kind {
		case flow.KindFlow:
			if !run.flow(lb) {
				run.seekLost(false)
				continue
			}
			run.seekLost(true)
		case flow.KindLostEvents:
			if atStart && run.env.lostSource == lostHubbleRing && run.env.lostCount == 1 {
				run.held, run.holding = append(run.held[:0], msg...), true
				continue
			}
		case flow.KindNodeStatus:
			run.nodeStatus(lb)
		}
		run.release(lb)
		lb.Lines = append(lb.Lines, msg)
	}
	run.s.m.lines.WithLabelValues(run.s.id).Add(float64(len(lb.Lines)))
	lb.Checkpoint = flow.Checkpoint{Source: run.s.id, Position: run.position()}
	lb.Nodes = run.upNodes()
	run.mu.Lock()
	run.since = run.resumeSince()
	run.mu.Unlock()
	run.lastEmit = time.Now()
	return run.emit(lb)
}

// seekLost settles a held lost event by the stream's first flow (lost:
// whether that flow is new). Cilium's agent-side observer, asked for the
// flows since a time older than every flow of its full ring, seeks back
// through the whole ring and stops one slot past the oldest, so the stream
// opens with a ring-buffer lost event of 1 for the slot the writer has just
// overwritten (newRingReader in pkg/hubble/observer/local_observer.go,
// Cilium v1.18). The ring is in write order and the stream read it in that
// order: if the first flow after that event was read before, so was the
// overwritten slot's flow (or its loss was recorded then), and the event
// lost nothing; it is dropped. Otherwise it may be a real loss and is
// handed over, before the flow, as Hubble reported it.
func (run *grpcRun) seekLost(lost bool) {
	if !run.holding {
		return
	}
	if lost {
		// A copy per reconnect, not reused: the batch still refers to it.
		run.lb.Lines = append(run.lb.Lines, run.held)
		run.held, run.holding = nil, false
		return
	}
	run.holding = false
	run.artefacts++
	run.s.log.Info("ingest: the stream opened with the agent's lost event of 1 from its ring seek, and its first flow was read before: nothing was lost",
		zap.String("source", run.s.id), zap.Uint64("seek_artefacts", run.artefacts))
}

// release hands over a held lost event before anything other than a flow
// could settle it.
func (run *grpcRun) release(lb *LineBatch) {
	if run.holding {
		lb.Lines = append(lb.Lines, run.held)
		run.held, run.holding = nil, false
	}
}

// flow accounts for the flow in run.env: false when it was read before.
func (run *grpcRun) flow(lb *LineBatch) bool {
	e := &run.env
	n := run.nodes[string(e.node)]
	if n == nil {
		n = &nodeState{name: string(e.node)}
		run.nodes[n.name] = n
	}
	t := e.timeNs
	if t == 0 {
		return true // the decoder refuses it
	}
	if n.overlapUntil != 0 {
		if t <= n.overlapUntil {
			h := maphash.Bytes(run.s.seed, e.uuid)
			if _, ok := run.seen[h]; ok || t < n.latest-overlap(n) {
				run.s.m.grpcDups.WithLabelValues(run.s.id).Inc()
				run.dups++
				if n.unverified {
					n.unverified = false // the server still had the latest flow's neighbours
				}
				return false
			}
		} else if t > n.overlapUntil+overlap(n) {
			n.overlapUntil = 0
		}
	}
	// An unverified node is verified by a flow read before (above: the
	// server still had the latest flow's neighbours) or by a flow later
	// than the latest with none of those first (below: the server no
	// longer had what followed). A new flow no later than the latest proves
	// neither: a restarted agent's first flows can be stamped before the
	// latest one read from its predecessor (flows are out of order by up
	// to the disorder), so the node stays unverified until one of the two.
	if n.unverified && (n.latest == 0 || t > n.latest) {
		n.unverified = false
		if n.latest != 0 {
			// The server no longer had what came after the node's latest
			// flow: whatever was there is lost.
			lb.AddLoss(flow.Loss{
				Node: n.name, Time: time.Unix(0, n.whyAt).UTC(), From: time.Unix(0, n.latest-n.disorder).UTC(), To: time.Unix(0, t+n.disorder).UTC(),
				Reason: flow.LossStreamDown, Amount: flow.AmountUnknown, Source: run.s.id, Bounded: true,
				Detail: fmt.Sprintf("%s; the first flow after it is later than the latest read before it, which %s no longer had", n.why, run.s.cfg.Address),
			})
			run.s.m.gaps.WithLabelValues(run.s.id, flow.LossStreamDown, flow.AmountUnknown.String()).Inc()
		}
	}
	if t >= n.latest {
		n.latest = t
	} else if d := n.latest - t; d > n.disorder {
		n.disorder = d
	}
	r := &run.recent[run.recentNext]
	if r.node != nil && t-r.timeNs < overlap(r.node) && len(run.recent) < recentFlows {
		run.growRecent()
		r = &run.recent[run.recentNext]
	}
	r.node, r.timeNs, r.hash = n, t, maphash.Bytes(run.s.seed, e.uuid)
	run.recentNext = (run.recentNext + 1) % len(run.recent)
	return true
}

// growRecent doubles the ring of recent flows, oldest first, the next
// slot the first new one.
func (run *grpcRun) growRecent() {
	old := run.recent
	run.recent = make([]recentFlow, 2*len(old))
	n := copy(run.recent, old[run.recentNext:])
	copy(run.recent[n:], old[:run.recentNext])
	run.recentNext = len(old)
}
