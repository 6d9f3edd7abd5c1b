package hubblejson

import (
	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
)

// NewProtojsonDecoder is a Decoder that never takes the fast path: the
// oracle of the differential tests.
func NewProtojsonDecoder(p *Plan) *Decoder {
	d := NewDecoder(p)
	d.slow = true
	return d
}

// Fallbacks is how many lines d left to protojson.
func (d *Decoder) Fallbacks() uint64 { return d.fastFallbacks }

// AppendFlowLineProtojson is AppendFlowLine through protojson only.
func AppendFlowLineProtojson(dst []byte, f *flowpb.Flow) ([]byte, error) {
	return appendEventLineProtojson(dst, &observerpb.ExportEvent{
		Time:          f.GetTime(),
		NodeName:      f.GetNodeName(),
		ResponseTypes: &observerpb.ExportEvent_Flow{Flow: f},
	})
}

// LastEager reports whether the flow the last Decode returned has its kept
// fields too (one pass: Finish has nothing left to do).
func (d *Decoder) LastEager() bool { return !d.partial && !d.plan.oneStep }

// PinEager sets the decoder's mode for the next Decode (benchmarks of the
// two modes call it before every line; the adaptation never comes due).
func (d *Decoder) PinEager(eager bool) { d.eager, d.flows, d.kept = eager, 0, 0 }

// CanStop: Decode may stop reading a line after the filter's fields on this
// architecture.
const CanStop = canStop

// LastStopped reports whether the last Decode stopped reading its line after
// the filter's fields (Finish then reads it whole).
func (d *Decoder) LastStopped() bool { return d.stoppedLine != nil }
