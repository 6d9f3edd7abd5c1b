package pipeline

// The gaps a pipeline records: a source's losses, bounded or open until the
// next flow, and Hubble's own lost events.

import (
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// addLoss adds a gap the source found before the next line to b: it
// starts at the latest flow read and ends at the next one (closeLosses),
// both widened by the disorder seen.
func (p *Pipeline) addLoss(b *flow.Batch, l flow.Loss) {
	if l.Node == "" {
		l.Node = p.lastNode
	}
	if l.Time.IsZero() {
		l.Time = p.cfg.Now()
	}
	if l.Source == "" {
		l.Source = p.src.ID()
	}
	if l.Bounded {
		b.Losses = append(b.Losses, l)
		p.m.lost.WithLabelValues(l.Reason).Add(float64(l.Events))
		return
	}
	if p.latest != 0 && l.From.IsZero() {
		l.From = time.Unix(0, p.latest-p.disorder).UTC()
	}
	if l.Bytes > 0 && l.Events == 0 && l.Estimated == 0 && p.lines > 0 && p.lineBytes > 0 {
		l.Estimated = max(1, l.Bytes*p.lines/p.lineBytes)
	}
	p.open = append(p.open, len(b.Losses))
	b.Losses = append(b.Losses, l)
	p.m.lost.WithLabelValues(l.Reason).Add(float64(l.Events))
}

// closeLosses ends the open gaps at the flow just decoded, whose time is
// t: a flow lost before it has a time up to disorder after t.
//
// A flow after the gap that is older than the latest before it comes from a
// stream that went back (a gRPC source's resumed overlap, where Hubble's
// ring, overrun while it sought the resume time, reports one lost event
// before its oldest flow): the events were lost just before that flow,
// wherever the one read before them was, so the range runs from the flow
// after the gap to the latest before it, never backwards.
func (p *Pipeline) closeLosses(b *flow.Batch, t int64) {
	to := time.Unix(0, t+p.disorder).UTC()
	for _, i := range p.open {
		l := &b.Losses[i]
		if !l.To.IsZero() {
			continue
		}
		l.To = to
		if from := time.Unix(0, t-p.disorder).UTC(); from.Before(l.From) {
			l.From, l.To = from, maxTime(to, l.From)
		}
	}
	p.open = p.open[:0]
}

// recordLost turns a Hubble lost_events line into a Loss record.
func (p *Pipeline) recordLost(b *flow.Batch, dec decoder) {
	ev, _ := dec.NonFlow().(*flowpb.LostEvent)
	t, ok := dec.EnvelopeTime()
	if !ok {
		t = p.cfg.Now()
	}
	node := p.nodeOf(dec.EnvelopeNodeName())
	// Hubble counts what it lost: the amount is exact, and the events were
	// lost between the flows around the line.
	l := flow.Loss{Node: node, Time: t, Reason: flow.LossHubbleLostEvents, Amount: flow.AmountExact}
	if ev != nil {
		l.Events = ev.GetNumEventsLost()
		l.Detail = ev.GetSource().String()
	}
	p.addLoss(b, l)
	b.AddStat(node, minuteOf(t.Unix()), flow.Counts{NonFlow: 1})
}
