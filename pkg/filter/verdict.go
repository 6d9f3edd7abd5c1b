package filter

import (
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// verdictFilter: the flow's verdict is one of verdict.
func verdictFilter(ff *flowpb.FlowFilter) ([]check, error) {
	vs := ff.GetVerdict()
	if vs == nil {
		return nil, nil
	}
	return cheap(func(f *flowpb.Flow) bool { return f != nil && slices.Contains(vs, f.GetVerdict()) }, "verdict"), nil
}
