package filter

import (
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// uuidFilter: the flow's uuid is one of uuid.
func uuidFilter(ff *flowpb.FlowFilter) ([]check, error) {
	ids := ff.GetUuid()
	if len(ids) == 0 {
		return nil, nil
	}
	return cheap(func(f *flowpb.Flow) bool { return f != nil && slices.Contains(ids, f.GetUuid()) }, "uuid"), nil
}
