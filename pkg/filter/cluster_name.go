package filter

import (
	"fmt"
	"slices"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// clusterNameFilter: source_cluster_name and destination_cluster_name, the
// endpoints' cluster names (exact).
func clusterNameFilter(ff *flowpb.FlowFilter) ([]check, error) {
	var out []check
	for _, cf := range []struct {
		name, path string
		vals       []string
		get        func(*flowpb.Flow) string
	}{
		{"source_cluster_name", "source.cluster_name", ff.GetSourceClusterName(), func(f *flowpb.Flow) string { return f.GetSource().GetClusterName() }},
		{"destination_cluster_name", "destination.cluster_name", ff.GetDestinationClusterName(), func(f *flowpb.Flow) string { return f.GetDestination().GetClusterName() }},
	} {
		if cf.vals == nil {
			continue
		}
		if slices.Contains(cf.vals, "") {
			return nil, fmt.Errorf("%s: invalid filter, name must not be empty", cf.name)
		}
		vals, get := cf.vals, cf.get
		out = append(out, cheap(func(f *flowpb.Flow) bool { return slices.Contains(vals, get(f)) }, cf.path)...)
	}
	return out, nil
}
