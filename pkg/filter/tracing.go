package filter

import (
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// traceIDFilter: the flow's trace context's parent trace id is one of
// trace_id.
func traceIDFilter(ff *flowpb.FlowFilter) ([]check, error) {
	ids := ff.GetTraceId()
	if ids == nil {
		return nil, nil
	}
	return cheap(func(f *flowpb.Flow) bool {
		return slices.Contains(ids, f.GetTraceContext().GetParent().GetTraceId())
	}, "trace_context"), nil
}
