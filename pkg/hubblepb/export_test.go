package hubblepb

// Eager reports whether the next Decode decodes the kept fields too (one
// pass: Finish has nothing left to do).
func (d *Decoder) Eager() bool { return d.eager && !d.plan.oneStep && !d.plan.noFinish }

// PinEager sets the decoder's mode for the next Decode (tests and
// benchmarks of the two modes; the adaptation does not come due before
// adaptFlows more flows).
func (d *Decoder) PinEager(eager bool) { d.eager, d.flows, d.kept = eager, 0, 0 }

// EnvelopeTags are the wire tags Decode reads GetFlowsResponse with.
var EnvelopeTags = map[string]uint64{
	"flow": tagFlow, "node_status": tagNodeStatus, "lost_events": tagLostEvents,
	"node_name": tagNodeName, "time": tagTime,
}

// MemoHits is how many messages and runs d took from its memos.
func (d *Decoder) MemoHits() (endpoints, policies, nodeLabels int64) {
	return d.memoEndpoint.found, d.memoPolicy.found, d.runFlowNodeLabels.found
}
