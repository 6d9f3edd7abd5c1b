package hubblepb

import (
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// sel is a compiled subset of one message type's fields: bit k selects the
// field of descriptor index k, subs[k] narrows a selected message field
// (nil: the whole field). A nil *sel selects every field.
type sel struct {
	bits uint64
	subs []*sel
}

func (s *sel) has(k uint) bool { return s == nil || s.bits&(1<<k) != 0 }

func (s *sel) sub(k uint) *sel {
	if s == nil {
		return nil
	}
	return s.subs[k]
}

var flowDesc = (&flowpb.Flow{}).ProtoReflect().Descriptor()

// compileSel compiles fs over md (nil when fs is every field). Paths that
// name no field are ignored; a path below a repeated field selects the
// whole field (field masks may not descend into one).
func compileSel(fs flow.FieldSet, md protoreflect.MessageDescriptor) *sel {
	if fs.IsAll() {
		return nil
	}
	root := &sel{subs: make([]*sel, md.Fields().Len())}
	for _, p := range fs.Paths() {
		if parts := strings.Split(p, "."); valid(parts, md) {
			root.add(parts, md)
		}
	}
	return root
}

// valid reports whether parts name a field path of md (down to a repeated
// or scalar field, or to its end).
func valid(parts []string, md protoreflect.MessageDescriptor) bool {
	for i, part := range parts {
		fd := md.Fields().ByName(protoreflect.Name(part))
		if fd == nil {
			return false
		}
		if fd.Message() == nil || fd.IsList() || fd.IsMap() {
			return true // what is below is the whole field's
		}
		if i < len(parts)-1 {
			md = fd.Message()
		}
	}
	return true
}

func (s *sel) add(parts []string, md protoreflect.MessageDescriptor) {
	fd := md.Fields().ByName(protoreflect.Name(parts[0]))
	k := uint(fd.Index())
	whole := len(parts) == 1 || fd.Message() == nil || fd.IsList() || fd.IsMap()
	switch {
	case whole:
		s.bits |= 1 << k
		s.subs[k] = nil
	case s.bits&(1<<k) != 0 && s.subs[k] == nil: // already whole
	default:
		if s.subs[k] == nil {
			s.bits |= 1 << k
			s.subs[k] = &sel{subs: make([]*sel, fd.Message().Fields().Len())}
		}
		s.subs[k].add(parts[1:], fd.Message())
	}
}

// Plan says which Flow fields a Decoder produces: the filter's fields for
// every flow (Decode), and with them the kept (masked-in) fields for the
// flows the filter keeps (Finish). A Plan is immutable and may be shared by
// any number of Decoders.
type Plan struct {
	// filterSel selects the filter's fields; finishSel the filter's and the
	// kept fields (Finish decodes a kept flow again with it).
	filterSel, finishSel *sel
	// oneStep: the filter reads no field, so every flow is kept and Decode
	// decodes the kept fields at once.
	oneStep bool
	// noFinish: the filter's fields hold the kept ones, so Decode has
	// decoded everything Finish would.
	noFinish bool
}

// NewPlan returns the plan for a filter reading filterFields and a mask
// keeping keepFields, with hubblejson.NewPlan's meaning: flow.AllFields()
// for both is a full decode; an empty filterFields (no filter) makes Decode
// decode the kept fields at once. A flow the filter rejects costs a walk
// over its fields' tags and lengths plus the decoding of the filter's
// fields; a field neither reads nor keeps is skipped by its length.
func NewPlan(filterFields, keepFields flow.FieldSet) *Plan {
	if filterFields.IsEmpty() {
		return &Plan{filterSel: compileSel(keepFields, flowDesc), finishSel: compileSel(keepFields, flowDesc), oneStep: true}
	}
	return &Plan{
		filterSel: compileSel(filterFields, flowDesc),
		finishSel: compileSel(filterFields.Union(keepFields), flowDesc),
		noFinish:  filterFields.Covers(keepFields),
	}
}

// OnePass reports whether Decode decodes the kept fields itself (Finish
// has nothing to do): the filter reads no field, so every flow is kept.
func (p *Plan) OnePass() bool { return p.oneStep }
