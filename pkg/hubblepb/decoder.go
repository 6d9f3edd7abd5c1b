package hubblepb

import (
	"bytes"
	"time"
	"unicode/utf8"
	"unsafe"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

//go:generate go run ./internal/genpb/cmd

// The fields of observer.GetFlowsResponse (api/v1/observer/observer.proto),
// as wire tags; TestEnvelopeFields checks them against the descriptor.
const (
	tagFlow       = 1<<3 | 2    // oneof response_types: flow.Flow flow = 1
	tagNodeStatus = 2<<3 | 2    // relay.NodeStatusEvent node_status = 2
	tagLostEvents = 3<<3 | 2    // flow.LostEvent lost_events = 3
	tagNodeName   = 1000<<3 | 2 // string node_name = 1000
	tagTime       = 1001<<3 | 2 // google.protobuf.Timestamp time = 1001
)

// Decoder decodes the wire-format observer.GetFlowsResponse messages of a
// GetFlows stream into reused *flowpb.Flow slots, following a Plan. It is
// not safe for concurrent use. See the package documentation for what its
// results are and how long they stay valid.
type Decoder struct {
	pools
	memos
	plan  *Plan
	arena *flow.Arena
	strs  interner
	// internStats are the interned fields' lookups (and the envelope's
	// node_name's, last); arenaUses counts the strings put in the arena
	// (a memoized message holding one is not remembered).
	internStats [internedFields + 1]internStat
	arenaUses   int

	kind flow.Kind
	// flowMsgs are the occurrences of the flow member in the last message
	// (one, unless the sender split it: they merge), which Finish decodes
	// again with the kept fields. They point into the caller's message.
	flowMsgs [][]byte
	partial  bool // Finish has the kept fields to decode

	nodeName string
	time     timestamppb.Timestamp
	hasTime  bool
	lost     flowpb.LostEvent
	status   relaypb.NodeStatusEvent

	// With a filter, Decode decodes the filter's fields and Finish, for a
	// kept flow, the kept ones in a second pass over the flow. When most
	// flows are kept (a denylist), decoding the kept fields of every flow
	// at once costs less: eager does that. It is chosen from the share of
	// flows Finish was called for, every adaptFlows flows; the flows are
	// the same either way (but for what Decode leaves beyond the filter's
	// fields).
	eager       bool
	flows, kept int
}

// adaptFlows is how often (in flows) a Decoder with a filter chooses
// between one pass and two. With W the cost of Decode with the filter's
// fields (mostly the walk over the flow's fields) and X that of decoding
// the kept fields, one pass is cheaper when more than 1 - W/X of the flows
// are kept: about 0.6 for the docs example mask and for every field
// (BenchmarkEagerVsLazy). One pass is taken above eagerKept/eagerOf.
const (
	adaptFlows = 1024
	eagerKept  = 5
	eagerOf    = 8
)

// NewDecoder returns a decoder following plan p (nil: every field).
func NewDecoder(p *Plan) *Decoder {
	if p == nil {
		p = NewPlan(flow.AllFields(), flow.AllFields())
	}
	return &Decoder{plan: p}
}

// SetArena sets where decoded strings that are not interned go (the
// batch's arena, reset with the batch); nil means ordinary allocation.
func (d *Decoder) SetArena(a *flow.Arena) { d.arena = a }

// Decode decodes one wire-format observer.GetFlowsResponse message. For a
// flow it returns flow.KindFlow with f holding the plan's filter fields:
// the filter can decide on f; call Finish for the kept fields of a flow it
// keeps. The other fields of f are cleared, but when most flows are kept
// Decode already sets the kept fields too (Finish then does nothing). For
// node_status and lost_events it returns flow.KindNodeStatus or
// flow.KindLostEvents (NonFlow returns the event; f is left in an
// unspecified state), for a message with none of the three (a newer
// Hubble's response type, an empty message) flow.KindUnknown; the
// envelope's node_name and time are read for every kind. An error means
// the message is not one proto.Unmarshal accepts (see the package
// documentation for the fields the plan skips); f is then in an
// unspecified state.
//
// msg must stay unchanged until Finish returns, or until the next Decode
// for a flow the filter rejects.
func (d *Decoder) Decode(msg []byte, f *flowpb.Flow) (flow.Kind, error) {
	d.partial = false
	d.kind = flow.KindUnknown
	clear(d.flowMsgs) // the last message's: not kept alive
	d.flowMsgs = d.flowMsgs[:0]
	d.nodeName, d.hasTime = "", false
	s := d.plan.filterSel
	if d.eager {
		s = d.plan.finishSel
	}
	kind := flow.KindUnknown
	b := msg
	for len(b) > 0 {
		t, n := tagFast(b)
		if n == 0 {
			if t, n = tagSlow(b); n < 0 {
				return flow.KindUnknown, errAt("observer.GetFlowsResponse", n)
			}
		}
		b = b[n:]
		switch t {
		case tagFlow, tagNodeStatus, tagLostEvents, tagNodeName, tagTime:
			v, n := bytesFast(b)
			if n == 0 {
				if v, n = bytesSlow(b); n < 0 {
					return flow.KindUnknown, errAt("observer.GetFlowsResponse", n)
				}
			}
			b = b[n:]
			var err error
			switch t {
			case tagFlow:
				// A oneof member merges with itself and replaces another.
				merge := kind == flow.KindFlow
				if !merge {
					d.flowMsgs = d.flowMsgs[:0]
				}
				kind = flow.KindFlow
				d.flowMsgs = append(d.flowMsgs, v)
				err = d.decFlow(v, f, s, merge)
			case tagNodeStatus:
				err = d.decNodeStatusEvent(v, &d.status, nil, kind == flow.KindNodeStatus)
				kind = flow.KindNodeStatus
			case tagLostEvents:
				err = d.decLostEvent(v, &d.lost, nil, kind == flow.KindLostEvents)
				kind = flow.KindLostEvents
			case tagNodeName:
				var ok bool
				if d.nodeName, ok = d.intern(v, internedFields); !ok {
					err = errUTF8("observer.GetFlowsResponse.node_name")
				}
			case tagTime:
				err = d.decTimestamp(v, &d.time, nil, d.hasTime)
				d.hasTime = true
			}
			if err != nil {
				return flow.KindUnknown, err
			}
			continue
		}
		if n = skipField(t, b); n < 0 {
			return flow.KindUnknown, errAt("observer.GetFlowsResponse", n)
		}
		b = b[n:]
	}
	d.kind = kind
	if kind == flow.KindFlow {
		d.partial = !d.plan.oneStep && !d.plan.noFinish && !d.eager
		if !d.plan.oneStep && !d.plan.noFinish {
			if d.flows++; d.flows == adaptFlows {
				d.eager = d.kept*eagerOf > d.flows*eagerKept
				d.flows, d.kept = 0, 0
			}
		}
	}
	return kind, nil
}

// Finish completes the kept fields of the flow the last Decode returned
// (into the same f, the message given to Decode still unchanged). An
// error means a kept field is invalid: the flow must be dropped.
func (d *Decoder) Finish(f *flowpb.Flow) error {
	d.kept++
	if !d.partial {
		return nil
	}
	d.partial = false
	for i, v := range d.flowMsgs {
		if err := d.decFlow(v, f, d.plan.finishSel, i > 0); err != nil {
			return err
		}
	}
	return nil
}

// NonFlow returns the event of the last message when it was not a flow: a
// *flowpb.LostEvent or a *relaypb.NodeStatusEvent owned by the decoder,
// valid until the next Decode (its strings as long as a flow's). Nil
// otherwise.
func (d *Decoder) NonFlow() proto.Message {
	switch d.kind {
	case flow.KindLostEvents:
		return &d.lost
	case flow.KindNodeStatus:
		return &d.status
	}
	return nil
}

// EnvelopeNodeName is the node_name of the last message (the node that
// sent it; Relay sets its own for node_status). An interned string.
func (d *Decoder) EnvelopeNodeName() string { return d.nodeName }

// EnvelopeTime is the time of the last message, if it had one.
func (d *Decoder) EnvelopeTime() (time.Time, bool) {
	if !d.hasTime {
		return time.Time{}, false
	}
	return d.time.AsTime(), true
}

// internStat counts the lookups of one interned field, to tell a field
// whose values do not repeat after all (a generator's random MAC
// addresses, a node's many interfaces): its values then go to the arena
// for a while instead of filling (and emptying) the interner's table.
type internStat struct {
	tries, misses int32
	bypass        int32 // values left to put in the arena
}

const (
	internWindow = 1024 // lookups between two looks at a field's misses
	internBypass = 64 * internWindow
)

// intern returns the string of the bytes v of interned field k (see
// interner), and false when they are not valid UTF-8.
func (d *Decoder) intern(v []byte, k int) (string, bool) {
	if len(v) == 0 {
		return "", true
	}
	st := &d.internStats[k]
	if len(v) > internMaxLen || st.bypass > 0 {
		if st.bypass > 0 {
			st.bypass--
		}
		return d.arenaString(v)
	}
	s, hit, ok := d.strs.intern(v)
	if !hit {
		st.misses++
	}
	if st.tries++; st.tries == internWindow {
		if st.misses > internWindow/2 {
			st.bypass = internBypass
		}
		st.tries, st.misses = 0, 0
	}
	return s, ok
}

// arenaString returns the bytes v of a field whose values do not repeat as
// a string in the arena, and false when they are not valid UTF-8.
func (d *Decoder) arenaString(v []byte) (string, bool) {
	if !utf8.Valid(v) {
		return "", false
	}
	if len(v) == 0 {
		return "", true
	}
	d.arenaUses++
	if d.arena != nil {
		return d.arena.String(v), true
	}
	return string(v), true
}

// bytes returns a copy of a bytes field's value v in the arena (nil when
// empty, as proto.Unmarshal leaves it).
func (d *Decoder) bytes(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	d.arenaUses++
	if d.arena != nil {
		s := d.arena.String(v)
		return unsafe.Slice(unsafe.StringData(s), len(s))
	}
	return bytes.Clone(v)
}
