package daemon

import (
	"fmt"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/pipeline"
)

// pushDown is what a gRPC source with pushDown asks the server to do for
// spec: the allowlist and denylist as the request's whitelist and
// blacklist, and a field mask, or none when the server must send whole
// flows.
//
// Hubble filters the whole flow and masks it afterwards, but the pipeline
// filters what arrives again, so the mask sent keeps what the filter reads
// as well as what the archive keeps, and the uuid the source deduplicates
// by. A field the filter reads is sent whole (its top-level field): a
// nested path makes Hubble's mask create the messages on the way (source
// {} for a flow without source), on which a filter could decide otherwise
// than on the flow itself. A mask that crosses the members of a oneof is
// not sent: Cilium 1.18 applies it wrongly.
func pushDown(spec pipeline.Spec) (allow, deny []*flowpb.FlowFilter, mask []string, err error) {
	if allow, err = filter.ParseFilters(spec.Allowlist); err != nil {
		return nil, nil, nil, fmt.Errorf("allowlist: %w", err)
	}
	if deny, err = filter.ParseFilters(spec.Denylist); err != nil {
		return nil, nil, nil, fmt.Errorf("denylist: %w", err)
	}
	prog, err := filter.Compile(allow, deny)
	if err != nil {
		return nil, nil, nil, err
	}
	user, err := fieldmask.Compile(spec.FieldMask)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("fieldmask: %w", err)
	}
	read := prog.Fields()
	if !user.Active() || read.IsAll() {
		return allow, deny, nil, nil
	}
	keep := user.Fields().Union(flow.Fields("time", "node_name", "uuid"))
	for _, p := range read.Paths() {
		top, _, _ := strings.Cut(p, ".")
		keep = keep.Union(flow.Fields(top))
	}
	m, err := fieldmask.Compile(keep.Paths())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("fieldmask pushed down: %w", err)
	}
	if m.CrossesOneof() {
		return allow, deny, nil, nil
	}
	return allow, deny, m.Paths(), nil
}
