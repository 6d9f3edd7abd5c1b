package exporter

import (
	"errors"
	"fmt"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// Config is one exporter configuration, already parsed (see filter.ParseFilters,
// filter.ParseFlowLogs and fieldmask.ParsePaths).
type Config struct {
	Allow, Deny []*flowpb.FlowFilter
	FieldMask   []string
}

// Counts are what an Exporter has seen.
type Counts struct {
	Read   uint64 // lines given to Line
	Kept   uint64 // lines written
	Denied uint64 // events the filters dropped
	// Errors: lines that could not be decoded, or events that could not be
	// encoded. A line the filters drop is decoded only up to the fields they
	// read (the rest checked to look complete): a wrong value after those is
	// counted in Denied.
	Errors  uint64
	NonFlow uint64 // lost/agent/debug events among Read
}

// Exporter applies one configuration. It is not safe for concurrent use; it
// allocates nothing per flow in steady state.
type Exporter struct {
	prog *filter.Program
	mask *fieldmask.Mask
	dec  *hubblejson.Decoder

	src, dst *flowpb.Flow
	// arena holds the strings of the line being processed.
	arena  flow.Arena
	counts Counts
}

// New compiles cfg. Errors name the filter or path at fault.
func New(cfg Config) (*Exporter, error) {
	prog, err := filter.Compile(cfg.Allow, cfg.Deny)
	if err != nil {
		return nil, err
	}
	mask, err := fieldmask.Compile(cfg.FieldMask)
	if err != nil {
		return nil, fmt.Errorf("fieldmask: %w", err)
	}
	e := &Exporter{
		prog: prog,
		mask: mask,
		dec:  hubblejson.NewDecoder(hubblejson.NewPlan(prog.Fields(), mask.Fields())),
		src:  &flowpb.Flow{},
		dst:  &flowpb.Flow{},
	}
	e.dec.SetArena(&e.arena)
	return e, nil
}

// Counts returns the running totals.
func (e *Exporter) Counts() Counts { return e.counts }

// ErrNodeStatus is returned for node_status events: they exist only in Relay's
// stream, and no exporter writes them.
var ErrNodeStatus = errors.New("node_status events are not exported")

// Line processes one event line and appends the exported line, if the event
// is kept, to dst. On error dst is returned unchanged and the line is counted
// as an error: Cilium's exporter writes nothing for an event it cannot marshal.
func (e *Exporter) Line(dst, line []byte) ([]byte, error) {
	e.counts.Read++
	e.arena.Reset() // the previous line's strings are written out
	kind, err := e.dec.Decode(line, e.src)
	if err != nil {
		e.counts.Errors++
		return dst, err
	}
	if kind != flow.KindFlow {
		e.counts.NonFlow++
		return e.nonFlow(dst)
	}
	if !e.prog.MatchFlow(e.src) {
		e.counts.Denied++
		return dst, nil
	}
	if err := e.dec.Finish(e.src); err != nil {
		e.counts.Errors++
		return dst, err
	}
	out := e.src
	if e.mask.Active() {
		e.mask.Copy(e.dst, e.src)
		out = e.dst
	}
	res, err := hubblejson.AppendFlowLine(dst, out)
	if err != nil {
		e.counts.Errors++
		return dst, err
	}
	e.counts.Kept++
	return res, nil
}

func (e *Exporter) nonFlow(dst []byte) ([]byte, error) {
	msg := e.dec.NonFlow()
	if msg == nil || !e.prog.MatchNonFlow(msg) {
		e.counts.Denied++
		return dst, nil
	}
	// Masks apply to flows only; other events are exported whole.
	ev := &observerpb.ExportEvent{NodeName: e.dec.EnvelopeNodeName()}
	if t, ok := e.dec.EnvelopeTime(); ok {
		ev.Time = timestamppb.New(t)
	}
	switch m := msg.(type) {
	case *flowpb.LostEvent:
		ev.ResponseTypes = &observerpb.ExportEvent_LostEvents{LostEvents: m}
	case *flowpb.AgentEvent:
		ev.ResponseTypes = &observerpb.ExportEvent_AgentEvent{AgentEvent: m}
	case *flowpb.DebugEvent:
		ev.ResponseTypes = &observerpb.ExportEvent_DebugEvent{DebugEvent: m}
	default:
		e.counts.Errors++
		return dst, ErrNodeStatus
	}
	res, err := hubblejson.AppendEventLine(dst, ev)
	if err != nil {
		e.counts.Errors++
		return dst, err
	}
	e.counts.Kept++
	return res, nil
}
