package filter

import (
	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// interfaceFilter: the flow's network interface matches one of interface
// (by index and name where the filter gives them).
func interfaceFilter(ff *flowpb.FlowFilter) ([]check, error) {
	ifs := ff.GetInterface()
	if len(ifs) == 0 {
		return nil, nil
	}
	return cheap(func(f *flowpb.Flow) bool {
		iface := f.GetInterface()
		if iface == nil {
			return false
		}
		for _, w := range ifs {
			if idx := w.GetIndex(); idx > 0 && idx != iface.GetIndex() {
				continue
			}
			if name := w.GetName(); name != "" && name != iface.GetName() {
				continue
			}
			return true
		}
		return false
	}, "interface"), nil
}
