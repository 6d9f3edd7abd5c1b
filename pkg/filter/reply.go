package filter

import (
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// replyFilter: the flow's is_reply is one of reply. Cilium reads a dropped
// flow without is_reply as not a reply; any other flow without it matches
// nothing.
func replyFilter(ff *flowpb.FlowFilter) ([]check, error) {
	rs := ff.GetReply()
	if rs == nil {
		return nil, nil
	}
	return cheap(func(f *flowpb.Flow) bool {
		if len(rs) == 0 {
			return true
		}
		if f == nil {
			return false
		}
		if f.GetIsReply() == nil && f.GetVerdict() != flowpb.Verdict_DROPPED {
			return false
		}
		return slices.Contains(rs, f.GetIsReply().GetValue())
	}, "is_reply", "verdict"), nil
}
