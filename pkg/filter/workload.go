package filter

import (
	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// workloadFilter: source_workload and destination_workload, an endpoint's
// workloads by name and kind (an empty one matches any).
func workloadFilter(ff *flowpb.FlowFilter) ([]check, error) {
	var out []check
	if wf := ff.GetSourceWorkload(); len(wf) > 0 {
		out = append(out, cheap(workloadPred(wf, func(f *flowpb.Flow) []*flowpb.Workload { return f.GetSource().GetWorkloads() }), "source.workloads")...)
	}
	if wf := ff.GetDestinationWorkload(); len(wf) > 0 {
		out = append(out, cheap(workloadPred(wf, func(f *flowpb.Flow) []*flowpb.Workload { return f.GetDestination().GetWorkloads() }), "destination.workloads")...)
	}
	return out, nil
}

func workloadPred(wf []*flowpb.Workload, get func(*flowpb.Flow) []*flowpb.Workload) pred {
	return func(f *flowpb.Flow) bool {
		for _, w := range get(f) {
			for _, x := range wf {
				if (x.GetName() == "" || x.GetName() == w.GetName()) && (x.GetKind() == "" || x.GetKind() == w.GetKind()) {
					return true
				}
			}
		}
		return false
	}
}
