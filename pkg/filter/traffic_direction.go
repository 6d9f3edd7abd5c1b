package filter

import (
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// trafficDirectionFilter: the flow's traffic_direction is one of
// traffic_direction.
func trafficDirectionFilter(ff *flowpb.FlowFilter) ([]check, error) {
	ds := ff.GetTrafficDirection()
	if len(ds) == 0 {
		return nil, nil
	}
	return cheap(func(f *flowpb.Flow) bool { return f != nil && slices.Contains(ds, f.GetTrafficDirection()) }, "traffic_direction"), nil
}
