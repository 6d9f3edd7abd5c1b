package ingest

// The nodes behind a stream: Relay's node statuses, a node unverified until
// its next flow, the gaps of a stream that went down, and the overlap asked
// again on reconnect.

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	relaypb "github.com/cilium/cilium/api/v1/relay"
	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// nodeStatus handles a Relay node status: a node in error or unavailable
// is unverified until its next flow.
func (run *grpcRun) nodeStatus(lb *LineBatch) {
	e := &run.env
	state := relaypb.NodeState(e.state)
	if state != relaypb.NodeState_NODE_ERROR && state != relaypb.NodeState_NODE_UNAVAILABLE {
		return
	}
	why := fmt.Sprintf("Relay reported %s", state)
	if len(e.stateMsg) > 0 {
		why += ": " + string(e.stateMsg)
	}
	now := time.Now().UnixNano()
	for _, name := range e.names {
		n := run.nodes[string(name)]
		if n == nil {
			n = &nodeState{name: string(name)}
			run.nodes[n.name] = n
		}
		if at := e.timeNs; state == relaypb.NodeState_NODE_ERROR && !n.unverified && at != 0 && n.latest > at+n.disorder {
			// Relay holds a node's error up to its error aggregation
			// window (10 s) while it attaches the agent again: the node's
			// flows from after the error were read before this report.
			// What the agent no longer had lies between its last flow
			// read before the error and its first after it.
			run.lateError(lb, n, at, why, len(e.names) > 1)
			continue
		}
		if !n.unverified {
			n.unverified, n.why, n.whyAt = true, why, now
			run.startOverlap(n)
		} else if !strings.Contains(n.why, state.String()) {
			// Already unverified (a restart, a failed stream): the gap, if
			// any, says what Relay reported of the node too.
			n.why += "; " + why
		}
	}
	run.s.log.Warn("ingest: Relay reports nodes unreachable", zap.String("source", run.s.id), zap.String("state", state.String()),
		zap.ByteStrings("nodes", e.names), zap.ByteString("message", e.stateMsg))
}

// lateError records the gap of a node whose error Relay reported (at, its
// time) after the node's flows from after the error: from the last flow of
// the node read at or before at less the node's overlap (Relay's clock is
// not the agent's, and the agent died some time before Relay noticed) to
// the first read after at, as far as the flows last read (run.recent) go
// back; a gap of unknown amount, since the agent's ring may have held
// nothing more. A report that names several nodes (Relay merges the errors
// of one message within its window, under the first one's time) may be
// later for this node than at: its gap runs to the node's latest flow.
func (run *grpcRun) lateError(lb *LineBatch, n *nodeState, at int64, why string, merged bool) {
	early := at - overlap(n)
	var before, after int64 // 0: none read
	for _, r := range run.recent {
		if r.node != n {
			continue
		}
		switch {
		case r.timeNs <= early && r.timeNs > before:
			before = r.timeNs
		case r.timeNs > at && (after == 0 || r.timeNs < after):
			after = r.timeNs
		}
	}
	if after == 0 || merged {
		after = n.latest
	}
	from := before
	if from == 0 {
		from = early // older than every flow of the node still remembered
	}
	lb.AddLoss(flow.Loss{
		Node: n.name, Time: time.Unix(0, at).UTC(), From: time.Unix(0, from-n.disorder).UTC(), To: time.Unix(0, after+n.disorder).UTC(),
		Reason: flow.LossStreamDown, Amount: flow.AmountUnknown, Source: run.s.id, Bounded: true,
		Detail: fmt.Sprintf("%s; reported after the node's flows from after it: what %s no longer had lies between its last flow before the report's time and its first after it",
			why, run.s.cfg.Address),
	})
	run.s.m.gaps.WithLabelValues(run.s.id, flow.LossStreamDown, flow.AmountUnknown.String()).Inc()
}

// connected: a new stream starts, asked for flows since before every
// node's latest: each node is unverified until its first flow.
func (run *grpcRun) connected(when int64) {
	for _, n := range run.nodes {
		if n.latest == 0 {
			continue
		}
		if !n.unverified {
			n.unverified, n.why, n.whyAt = true, "the stream was reopened", when
		}
		run.startOverlap(n)
	}
}

func (run *grpcRun) disconnected(err string, when int64) {
	for _, n := range run.nodes {
		if n.latest != 0 {
			n.unverified, n.why, n.whyAt = true, "the stream failed ("+err+")", when
		}
	}
}

// startOverlap makes the flows of n read in its overlap the set a
// reconnect's flows are checked against.
func (run *grpcRun) startOverlap(n *nodeState) {
	n.overlapUntil = n.latest
	lo := n.latest - overlap(n)
	for _, r := range run.recent {
		if r.node == n && r.timeNs >= lo {
			run.seen[r.hash] = struct{}{}
		}
	}
	if len(run.seen) > 4*recentFlows {
		clear(run.seen) // bounded: the oldest overlaps are long past
		for _, r := range run.recent {
			if r.node != nil && r.node.overlapUntil != 0 {
				run.seen[r.hash] = struct{}{}
			}
		}
	}
}

// upNodes are the nodes the source vouches for now: every node it knows
// that is not unverified (heartbeat stats rows).
func (run *grpcRun) upNodes() []string {
	out := run.lb.Nodes[:0]
	for name, n := range run.nodes {
		if !n.unverified {
			out = append(out, name)
		}
	}
	return out
}

func (run *grpcRun) position() string {
	p := grpcPos{Nodes: make(map[string]nodePos, len(run.nodes))}
	for name, n := range run.nodes {
		if n.latest != 0 {
			p.Nodes[name] = nodePos{Latest: n.latest, Disorder: n.disorder}
			if n.unverified {
				p.Nodes[name] = nodePos{Latest: n.latest, Disorder: n.disorder, Why: n.why, WhyAt: n.whyAt}
			}
		}
	}
	b, _ := json.Marshal(p)
	return string(b)
}
