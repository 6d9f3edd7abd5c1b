package filter

import (
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// identityFilter: source_identity and destination_identity, the endpoints'
// security identities.
func identityFilter(ff *flowpb.FlowFilter) ([]check, error) {
	var out []check
	if ids := ff.GetSourceIdentity(); ids != nil {
		out = append(out, cheap(func(f *flowpb.Flow) bool {
			ep := f.GetSource()
			return ep != nil && slices.Contains(ids, ep.Identity)
		}, "source.identity")...)
	}
	if ids := ff.GetDestinationIdentity(); ids != nil {
		out = append(out, cheap(func(f *flowpb.Flow) bool {
			ep := f.GetDestination()
			return ep != nil && slices.Contains(ids, ep.Identity)
		}, "destination.identity")...)
	}
	return out, nil
}
