package filter

import (
	"fmt"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// nodeNameFilter: the flow's node name ("default/" before a name without a
// cluster) matches one of the node_name patterns.
func nodeNameFilter(ff *flowpb.FlowFilter) ([]check, error) {
	names := ff.GetNodeName()
	if names == nil {
		return nil, nil
	}
	re, err := compileNodeNamePattern(names)
	if err != nil {
		return nil, fmt.Errorf("node_name: %w", err)
	}
	return costly(func(f *flowpb.Flow) bool {
		name := f.GetNodeName()
		if name == "" {
			return false
		}
		if strings.IndexByte(name, '/') < 0 {
			return re.MatchString("default/" + name)
		}
		return re.MatchString(name)
	}, "node_name"), nil
}
