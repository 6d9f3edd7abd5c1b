package filter

import (
	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"
)

// eventTypeFilter: the flow's event type (and sub-type, where asked) is one
// of event_type. Non-flow events are held to the list by eventTypeNonFlow
// (compiled.eventTypes): Cilium's rules differ by event kind.
func eventTypeFilter(ff *flowpb.FlowFilter) ([]check, error) {
	types := ff.GetEventType()
	if types == nil {
		return nil, nil
	}
	return cheap(func(f *flowpb.Flow) bool {
		if f == nil {
			return true // decided by eventTypeNonFlow
		}
		et := f.GetEventType()
		if et == nil {
			return false
		}
		for _, t := range types {
			if t.GetType() != 0 && et.Type != t.GetType() {
				continue
			}
			if t.GetMatchSubType() && t.GetSubType() != et.SubType {
				continue
			}
			return true
		}
		return false
	}, "event_type"), nil
}

// Monitor message types (pkg/monitor/api).
const (
	messageTypeDebug     = 2
	messageTypeAccessLog = 129
	messageTypeAgent     = 130
)

func eventTypeNonFlow(types []*flowpb.EventTypeFilter, ev proto.Message) bool {
	var want, sub int32
	switch e := ev.(type) {
	case *flowpb.LostEvent:
		return true // Cilium: lost events always pass event_type filters
	case *flowpb.AgentEvent:
		want, sub = messageTypeAgent, int32(e.GetType())
	case *flowpb.DebugEvent:
		want, sub = messageTypeDebug, int32(e.GetType())
	default:
		return false
	}
	for _, t := range types {
		if t.GetType() != 0 && t.GetType() != want {
			continue
		}
		if t.GetMatchSubType() && t.GetSubType() != sub {
			continue
		}
		return true
	}
	return false
}
