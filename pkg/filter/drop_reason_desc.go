package filter

import (
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// dropReasonFilter: a dropped flow whose drop reason is one of
// drop_reason_desc.
func dropReasonFilter(ff *flowpb.FlowFilter) ([]check, error) {
	drs := ff.GetDropReasonDesc()
	if drs == nil {
		return nil, nil
	}
	return cheap(func(f *flowpb.Flow) bool {
		return f != nil && f.GetVerdict() == flowpb.Verdict_DROPPED && slices.Contains(drs, f.GetDropReasonDesc())
	}, "verdict", "drop_reason_desc"), nil
}
