package hubblejson

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// marshalOpts are the options of Cilium's generated MarshalJSON methods
// (api/v1/observer/observer.pb.json.go).
var marshalOpts = protojson.MarshalOptions{UseProtoNames: true}

// appendCompact appends protojson output the way encoding/json's Encoder
// writes a json.Marshaler's output: white space outside strings removed
// (protojson inserts spaces at random to keep its output from being relied
// on), and <, >, &, U+2028 and U+2029 inside strings escaped as \u003c etc.
// One pass, no allocation. raw must be valid JSON (protojson's output is).
func appendCompact(dst, raw []byte) ([]byte, error) {
	const hex = "0123456789abcdef"
	inString := false
	start := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch {
			case c == '\\':
				i++ // the escaped byte cannot end the string
			case c == '"':
				inString = false
			case c == '<' || c == '>' || c == '&':
				dst = append(dst, raw[start:i]...)
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
				start = i + 1
			case c == 0xE2 && i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xA8:
				dst = append(dst, raw[start:i]...)
				dst = append(dst, '\\', 'u', '2', '0', '2', hex[raw[i+2]&0xF])
				i += 2
				start = i + 1
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ' ', '\t', '\n', '\r':
			dst = append(dst, raw[start:i]...)
			start = i + 1
		}
	}
	if inString {
		return dst, errors.New("unterminated string")
	}
	return append(dst, raw[start:]...), nil
}

// AppendEventLine appends the events.log line Cilium v1.18.4's exporter writes
// for ev (json.Encoder over the protojson Marshaler, then '\n'). It fails, and
// appends nothing, where Cilium's encoder fails (invalid UTF-8 in a string, an
// unknown Any type).
func AppendEventLine(dst []byte, ev *observerpb.ExportEvent) ([]byte, error) {
	if x, ok := ev.GetResponseTypes().(*observerpb.ExportEvent_Flow); ok && x.Flow != nil {
		if out, ok := appendFlowEvent(dst, x.Flow, ev.GetNodeName(), ev.GetTime()); ok {
			return out, nil
		}
	}
	return appendEventLineProtojson(dst, ev)
}

// appendFlowEvent is the fast encoder's events.log line for a flow event.
func appendFlowEvent(dst []byte, f *flowpb.Flow, node string, t *timestamppb.Timestamp) ([]byte, bool) {
	n := len(dst)
	dst = append(dst, `{"flow":`...)
	dst, ok := encFlow(dst, f)
	if ok && node != "" {
		dst = append(dst, `,"node_name":`...)
		dst, ok = appendJSONString(dst, node)
	}
	if ok && t != nil {
		dst = append(dst, `,"time":`...)
		dst, ok = appendTimestamp(dst, t)
	}
	if !ok {
		return dst[:n], false
	}
	return append(dst, '}', '\n'), true
}

func appendEventLineProtojson(dst []byte, ev *observerpb.ExportEvent) ([]byte, error) {
	raw, err := marshalOpts.Marshal(ev)
	if err != nil {
		return dst, fmt.Errorf("hubblejson: encode: %w", err)
	}
	n := len(dst)
	dst, err = appendCompact(dst, raw)
	if err != nil {
		return dst[:n], fmt.Errorf("hubblejson: encode: %w", err)
	}
	return append(dst, '\n'), nil
}

// AppendFlowLine appends the events.log line for a flow: {"flow":…,
// "node_name":…, "time":…} with the envelope taken from the flow itself, as
// the exporter does (so a mask without time drops the top-level time too).
func AppendFlowLine(dst []byte, f *flowpb.Flow) ([]byte, error) {
	if out, ok := appendFlowEvent(dst, f, f.GetNodeName(), f.GetTime()); ok {
		return out, nil
	}
	return appendEventLineProtojson(dst, &observerpb.ExportEvent{
		Time:          f.GetTime(),
		NodeName:      f.GetNodeName(),
		ResponseTypes: &observerpb.ExportEvent_Flow{Flow: f},
	})
}

// AppendFlow appends the JSON object of a flow alone (compacted,
// HTML-escaped), without a newline.
func AppendFlow(dst []byte, f *flowpb.Flow) ([]byte, error) {
	n := len(dst)
	if out, ok := encFlow(dst, f); ok {
		return out, nil
	}
	return appendProtojson(dst[:n], f)
}

// AppendJSON appends m's JSON as Hubble writes it (proto field names,
// compact): the same bytes for the same message, whichever build wrote them
// (protojson's own output has spaces inserted at random). A Layer4 (the
// tunnel's) takes the generated encoder and allocates nothing.
func AppendJSON(dst []byte, m proto.Message) ([]byte, error) {
	if l4, ok := m.(*flowpb.Layer4); ok {
		n := len(dst)
		if out, ok := encLayer4(dst, l4); ok {
			return out, nil
		}
		dst = dst[:n]
	}
	return appendProtojson(dst, m)
}

// appendProtojson appends protojson's encoding of m, compacted.
func appendProtojson(dst []byte, m proto.Message) ([]byte, error) {
	n := len(dst)
	raw, err := marshalOpts.Marshal(m)
	if err != nil {
		return dst, fmt.Errorf("hubblejson: encode: %w", err)
	}
	if dst, err = appendCompact(dst, raw); err != nil {
		return dst[:n], fmt.Errorf("hubblejson: encode: %w", err)
	}
	return dst, nil
}

// MaxLineBytes is the longest line the decoder accepts.
const MaxLineBytes = 1 << 20

// Plan says which Flow fields a Decoder must produce: the filter's fields for
// every flow, and the kept (masked-in) fields for flows the filter keeps.
type Plan struct {
	// filterSel selects the filter's fields; finishSel the filter's and the
	// kept fields (protojson resets the message it decodes into). nil: every
	// field.
	filterSel, finishSel *fsel
	// oneStep: the filter reads no field, so every flow is kept and Decode
	// decodes the kept fields at once (Finish has nothing to do).
	oneStep bool
	// stopAt: the Flow members the filter reads (bits by descriptor index);
	// Decode stops reading a line once it has read them all. Zero: never
	// (no filter, or one that reads every field).
	stopAt uint64
	// archive: the plan feeds the archive (NewArchivePlan), so a flow it
	// cannot place, or a time it cannot store, is a decode error.
	archive bool
}

// NewPlan returns the plan for a filter reading filterFields and a mask
// keeping keepFields (flow.AllFields() for both: a full decode). A flow the
// filter rejects then costs a scan of its line plus the decoding of the few
// members the filter reads; fields neither reads nor keeps are never decoded.
func NewPlan(filterFields, keepFields flow.FieldSet) *Plan {
	if filterFields.IsEmpty() {
		filterFields = keepFields
		return &Plan{
			oneStep:   true,
			filterSel: compileFsel(keepFields, flowDesc), finishSel: compileFsel(keepFields, flowDesc),
		}
	}
	return &Plan{
		stopAt:    stopAt(filterFields),
		filterSel: compileFsel(filterFields, flowDesc),
		finishSel: compileFsel(filterFields.Union(keepFields), flowDesc),
	}
}

// placeFields are the fields the archive places every flow by: its
// partition (date and node) and its time column.
var placeFields = flow.Fields("time", "node_name")

// NewArchivePlan is NewPlan for a decoder whose flows go to the archive,
// which places every row by its time and node_name and stores time as int64
// nanoseconds since the epoch. Decode then reads both fields of every flow
// (they join the filter's fields, and the kept ones) and returns an error
// for a flow without a time, or with a time outside StorableTimes, where
// protojson accepts any time in years 0001 to 9999: such a flow can only be
// counted as a decode error, not archived at 1970, with no node, or at a
// time wrapped around int64. Non-flow events are refused for an envelope
// time outside that range (it becomes the time of a loss record). This is
// the one place where a decoder's verdict differs from protojson's on
// purpose (NewPlan's decoders agree with it everywhere, for `flowaudit
// filter`, which writes such lines as Cilium does).
func NewArchivePlan(filterFields, keepFields flow.FieldSet) *Plan {
	if !filterFields.IsEmpty() {
		filterFields = filterFields.Union(placeFields)
	}
	p := NewPlan(filterFields, keepFields.Union(placeFields))
	p.archive = true
	return p
}

// The archive's time range: int64 nanoseconds since the epoch, as
// seconds and nanoseconds (the seconds of the lowest are math.MinInt64
// ns rounded down, its nanos the rest).
const (
	minStorableSeconds = -9223372037
	minStorableNanos   = 145224192
	maxStorableSeconds = 9223372036
	maxStorableNanos   = 854775807
)

// StorableTimes are the first and last times the archive can store
// (1677-09-21T00:12:43.145224192Z and 2262-04-11T23:47:16.854775807Z).
func StorableTimes() (first, last time.Time) {
	return time.Unix(minStorableSeconds, minStorableNanos).UTC(), time.Unix(maxStorableSeconds, maxStorableNanos).UTC()
}

// Storable reports whether the archive can store a time of seconds and
// nanos (protojson's ranges: nanos in [0, 1e9)).
func Storable(seconds int64, nanos int32) bool { return storable(seconds, nanos) }

func storable(seconds int64, nanos int32) bool {
	switch {
	case seconds > minStorableSeconds && seconds < maxStorableSeconds:
		return true
	case seconds == minStorableSeconds:
		return nanos >= minStorableNanos
	case seconds == maxStorableSeconds:
		return nanos <= maxStorableNanos
	}
	return false
}

// stopAt is the set of top-level Flow members fs reads, as descriptor index
// bits (zero when fs is every field, or where the check of the rest of a
// line has no vector code: canStop).
func stopAt(fs flow.FieldSet) uint64 {
	if fs.IsAll() || !canStop {
		return 0
	}
	var bits uint64
	for _, p := range fs.Paths() {
		name, _, _ := strings.Cut(p, ".")
		if fd := flowDesc.Fields().ByName(protoreflect.Name(name)); fd != nil {
			bits |= 1 << uint(fd.Index())
		}
	}
	return bits
}

// Decoder decodes Hubble JSON event lines (events.log, `hubble observe -o
// json`) into a reused *flowpb.Flow. It is not safe for concurrent use.
type Decoder struct {
	plan    *Plan
	arena   *flow.Arena
	ev      observerpb.ExportEvent
	nonFlow proto.Message
	opts    protojson.UnmarshalOptions

	// partial is set when the last line's flow was decoded through the plan:
	// flowJSON is its "flow" member, which Finish decodes again with the
	// kept fields.
	partial  bool
	flowJSON []byte
	buf      []byte
	// stoppedLine is the line when Decode stopped reading it after the
	// filter's fields (flowJSON then ends there); Finish reads it whole.
	stoppedLine []byte

	fast   fastDec
	evTime timestamppb.Timestamp
	// With a filter, Decode decodes the filter's fields and Finish, for a
	// kept flow, the kept ones in a second pass over the flow. When most
	// flows are kept (a denylist) that pass costs more than decoding the
	// kept fields of every flow at once: eager does that. It is chosen
	// from the share of flows Finish was called for (kept), every
	// adaptFlows flows; the result is the same either way.
	eager       bool
	flows, kept int
	// fastFallbacks counts lines the fast decoder left to protojson.
	fastFallbacks uint64
	slow          bool // protojson only (the tests' oracle)
}

// adaptFlows is how often (in flows) a Decoder with a filter chooses
// between one pass and two; eagerAbove: one pass when more than one flow
// in eagerAbove was kept. Decoding a kept field costs little more than
// checking it, so one pass pays from a small share of kept flows on;
// BenchmarkEagerVsLazy measures where (its table is in bench/README.md).
const (
	adaptFlows = 1024
	eagerAbove = 8
)

// NewDecoder returns a decoder following plan p.
func NewDecoder(p *Plan) *Decoder {
	if p == nil {
		p = NewPlan(flow.AllFields(), flow.AllFields())
	}
	return &Decoder{plan: p, opts: protojson.UnmarshalOptions{DiscardUnknown: true}}
}

// SetArena sets where decoded strings go; nil means ordinary allocation.
func (d *Decoder) SetArena(a *flow.Arena) { d.arena = a }

// ErrLineTooLong is returned for lines over MaxLineBytes.
var ErrLineTooLong = errors.New("hubblejson: line longer than 1 MiB")

// Decode decodes one line. For a flow, f receives the flow (at least the plan's
// filter fields; call Finish before using the kept fields) and KindFlow is
// returned; for other events NonFlow returns the message. Errors say what is
// wrong and where (byte offset).
//
// With a filter, Decode may stop reading a flow's line once it has decoded
// every member the filter reads (see Plan): the rest of the line is then
// only checked to be the complete end of a JSON object (restComplete), not
// decoded. Finish, for a flow the filter keeps, reads the whole line as
// protojson would, so a kept line is validated in full and any error is
// reported there.
func (d *Decoder) Decode(line []byte, f *flowpb.Flow) (flow.Kind, error) {
	d.stoppedLine = nil
	return d.decode(line, f, true)
}

// decode is Decode; first is false when Finish reads again a line Decode
// stopped reading early (it is then read whole and not counted again).
func (d *Decoder) decode(line []byte, f *flowpb.Flow, first bool) (flow.Kind, error) {
	kind, err := d.decodeLine(line, f, first)
	if err == nil && d.plan.archive {
		err = d.placeable(line, kind, f)
	}
	return kind, err
}

// placeable is an archive plan's check of a decoded line (NewArchivePlan):
// a flow has a time the archive stores and a node_name, a non-flow event no
// envelope time outside the archive's range.
func (d *Decoder) placeable(line []byte, kind flow.Kind, f *flowpb.Flow) error {
	if kind != flow.KindFlow {
		if t := d.ev.GetTime(); t != nil && !storable(t.GetSeconds(), t.GetNanos()) {
			return unstorable(memberOffset(line, "time"), t.GetSeconds(), t.GetNanos(), "time")
		}
		return nil
	}
	t := f.GetTime()
	switch {
	case t == nil:
		return errors.New("hubblejson: flow without time: the archive cannot place it (a field mask without time? Cilium's exporter writes only what hubble-export-fieldmask keeps)")
	case !storable(t.GetSeconds(), t.GetNanos()):
		return unstorable(flowTimeOffset(line), t.GetSeconds(), t.GetNanos(), "flow time")
	}
	// A flow without node_name is its source's node's, where the source
	// has one: the pipeline decides.
	return nil
}

func unstorable(off int, seconds int64, nanos int32, what string) error {
	first, last := StorableTimes()
	at := ""
	if off >= 0 {
		at = fmt.Sprintf("offset %d: ", off)
	}
	return fmt.Errorf("hubblejson: %s%s %s is outside the times the archive stores (%s to %s, int64 nanoseconds)",
		at, what, time.Unix(seconds, int64(nanos)).UTC().Format(time.RFC3339Nano),
		first.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
}

// flowTimeOffset is the offset in line of the flow's time value (an
// events.log line's flow.time, or a bare flow's time), or -1.
func flowTimeOffset(line []byte) int {
	if start, end, err := flowMember(line); err == nil {
		if off := memberOffset(line[start:end], "time"); off >= 0 {
			return start + off
		}
		return -1
	}
	return memberOffset(line, "time")
}

// memberOffset is the offset of the value of obj's top-level member name,
// or -1.
func memberOffset(obj []byte, name string) int {
	off := -1
	_ = members(obj, func(key []byte, vStart, _ int) bool {
		if string(key) == name {
			off = vStart
			return false
		}
		return true
	})
	return off
}

// decodeLine is decode without the archive plan's check.
func (d *Decoder) decodeLine(line []byte, f *flowpb.Flow, first bool) (flow.Kind, error) {
	d.nonFlow = nil
	if len(line) > MaxLineBytes {
		return flow.KindUnknown, ErrLineTooLong
	}
	d.partial = false
	err := errFallback
	var start, end int
	eager := false
	if !d.slow {
		sel, stop := d.plan.filterSel, d.plan.stopAt
		if d.eager && !d.plan.oneStep {
			sel, eager, stop = d.plan.finishSel, true, 0
		}
		if !first {
			stop = 0
		}
		d.fast.b, d.fast.arena, d.fast.stopAt, d.fast.stopped = line, d.arena, stop, false
		start, end, err = d.fast.fastEvent(f, sel, &d.ev, &d.evTime)
		if err == nil && d.fast.stopped && !restComplete(line, end) {
			// Damaged (or unusual: escapes, non-ASCII) after the filter's
			// fields: read the whole line, for protojson's verdict.
			d.fast.stopAt, d.fast.stopped = 0, false
			start, end, err = d.fast.fastEvent(f, sel, &d.ev, &d.evTime)
		}
		d.fast.b, d.fast.stopAt = nil, 0
	}
	if err == nil {
		if !d.plan.oneStep && !eager { // Finish decodes the kept fields
			d.flowJSON = line[start:end]
			d.partial = true
			if d.fast.stopped {
				d.stoppedLine = line
			}
		}
		if first { // Finish's second read is not a flow more
			if d.flows++; d.flows == adaptFlows {
				d.eager = d.kept*eagerAbove > d.flows
				d.flows, d.kept = 0, 0
			}
		}
		return flow.KindFlow, nil
	}
	// protojson below decodes the filter's fields, Finish the rest.
	d.fastFallbacks++
	// The fast path validates UTF-8 in the strings it reads; protojson needs
	// valid input, and the error names the offset.
	if !utf8.Valid(line) {
		off := 0
		for off < len(line) {
			r, size := utf8.DecodeRune(line[off:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			off += size
		}
		return flow.KindUnknown, fmt.Errorf("hubblejson: offset %d: invalid UTF-8", off)
	}
	// The whole line first, not just the plan's fields: protojson rejects a
	// line for a wrong type or a duplicate in any field, kept or not (the
	// fast path's failures are rare: an Any, exponents, escapes in names).
	d.ev.Reset()
	if err := d.opts.Unmarshal(line, &d.ev); err != nil {
		// The legacy `hubble observe -o json` form is a bare Flow object.
		f.Reset()
		if lerr := d.opts.Unmarshal(line, f); lerr == nil && isBareFlow(line) {
			return flow.KindFlow, nil
		}
		return flow.KindUnknown, fmt.Errorf("hubblejson: %w", err)
	}
	if _, isFlow := d.ev.GetResponseTypes().(*observerpb.ExportEvent_Flow); isFlow && d.plan.filterSel != nil {
		// The plan's fields only, as the fast path decodes them (Finish
		// decodes the kept ones).
		start, end, err := flowMember(line)
		if err != nil {
			return flow.KindUnknown, fmt.Errorf("hubblejson: %w", err)
		}
		d.flowJSON = line[start:end]
		if d.buf, _, err = filterObject(d.buf[:0], d.flowJSON, d.plan.filterSel, flowDesc); err != nil {
			return flow.KindUnknown, fmt.Errorf("hubblejson: flow: %w", err)
		}
		if err := d.opts.Unmarshal(d.buf, f); err != nil {
			return flow.KindUnknown, fmt.Errorf("hubblejson: %w", err)
		}
		d.partial = !d.plan.oneStep
		return flow.KindFlow, nil
	}
	switch x := d.ev.GetResponseTypes().(type) {
	case *observerpb.ExportEvent_Flow:
		f.Reset()
		proto.Merge(f, x.Flow)
		return flow.KindFlow, nil
	case *observerpb.ExportEvent_LostEvents:
		d.nonFlow = x.LostEvents
		return flow.KindLostEvents, nil
	case *observerpb.ExportEvent_AgentEvent:
		d.nonFlow = x.AgentEvent
		return flow.KindAgentEvent, nil
	case *observerpb.ExportEvent_DebugEvent:
		d.nonFlow = x.DebugEvent
		return flow.KindDebugEvent, nil
	case *observerpb.ExportEvent_NodeStatus:
		d.nonFlow = x.NodeStatus
		return flow.KindNodeStatus, nil
	default:
		return flow.KindUnknown, errors.New("hubblejson: event without flow, lost_events, agent_event, debug_event or node_status")
	}
}

// isBareFlow reports whether a line that is not an ExportEvent looks like a
// bare Flow (legacy JSON output): an object with a "time" or "verdict" key
// and none of ExportEvent's event members. A corrupt ExportEvent line (a
// "flow" member protojson rejects) also parses as a Flow, whose fields
// include the envelope's "time" and "node_name": without the second check
// it became a flow of just those two fields instead of a decode error.
func isBareFlow(line []byte) bool {
	if !bytes.Contains(line, []byte(`"verdict"`)) && !bytes.Contains(line, []byte(`"time"`)) {
		return false
	}
	return !hasEventMember(line)
}

// eventMembers are ExportEvent's oneof members, by JSON and proto name.
var eventMembers = map[string]bool{
	"flow": true, "node_status": true, "nodeStatus": true, "lost_events": true, "lostEvents": true,
	"agent_event": true, "agentEvent": true, "debug_event": true, "debugEvent": true,
}

// hasEventMember reports whether the top-level object of line has one of
// ExportEvent's event members (or cannot be listed, which no bare Flow is).
func hasEventMember(line []byte) bool {
	found := false
	err := members(line, func(key []byte, _, _ int) bool {
		found = eventMembers[string(key)]
		return !found
	})
	return found || err != nil
}

// Finish completes the kept fields of the flow last decoded (the line given
// to Decode must still be intact).
func (d *Decoder) Finish(f *flowpb.Flow) error {
	d.kept++
	if line := d.stoppedLine; line != nil {
		// Decode read the line only as far as the filter's fields: read it
		// whole now, every member checked, before the kept fields.
		d.stoppedLine = nil
		if _, err := d.decode(line, f, false); err != nil {
			return err
		}
	}
	if !d.partial {
		return nil
	}
	d.partial = false
	err := errFallback
	if !d.slow {
		// Decode checked the whole line: what the plan does not keep is
		// skipped.
		d.fast.b, d.fast.arena, d.fast.checked = d.flowJSON, d.arena, true
		_, err = d.fast.decFlow(0, f, d.plan.finishSel)
		d.fast.b, d.fast.checked = nil, false
	}
	if err == nil {
		return nil
	}
	d.fastFallbacks++
	src := d.flowJSON
	if d.plan.finishSel != nil {
		var err error
		if d.buf, _, err = filterObject(d.buf[:0], d.flowJSON, d.plan.finishSel, flowDesc); err != nil {
			return fmt.Errorf("hubblejson: flow: %w", err)
		}
		src = d.buf
	}
	if err := d.opts.Unmarshal(src, f); err != nil {
		return fmt.Errorf("hubblejson: %w", err)
	}
	return nil
}

// NonFlow returns the non-flow event of the last line, or nil.
func (d *Decoder) NonFlow() proto.Message { return d.nonFlow }

// EnvelopeNodeName is the top-level node_name of the last line.
func (d *Decoder) EnvelopeNodeName() string { return d.ev.GetNodeName() }

// EnvelopeTime is the top-level time of the last line.
func (d *Decoder) EnvelopeTime() (time.Time, bool) {
	if t := d.ev.GetTime(); t != nil {
		return t.AsTime(), true
	}
	return time.Time{}, false
}
