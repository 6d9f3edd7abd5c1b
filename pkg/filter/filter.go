package filter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// ParseFilters parses the hubble-export-allowlist / -denylist syntax exactly as
// Cilium's hubble.ParseFlowFilters does: a stream of JSON objects, each decoded
// through FlowFilter's protojson UnmarshalJSON (proto or camelCase keys, enums
// by name or number, unknown keys rejected). A JSON array or comma-separated
// objects are rejected, as Cilium rejects them. "" gives no filters.
func ParseFilters(s string) ([]*flowpb.FlowFilter, error) {
	var out []*flowpb.FlowFilter
	dec := json.NewDecoder(strings.NewReader(s))
	for i := 0; ; i++ {
		var ff flowpb.FlowFilter
		err := dec.Decode(&ff)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("filter #%d (byte %d): %w", i, dec.InputOffset(), err)
		}
		out = append(out, &ff)
	}
}

// pred is one compiled field test; it must give Cilium's answer for f == nil
// (a non-flow event).
type pred func(f *flowpb.Flow) bool

type compiled struct {
	preds []pred
	// eventTypes is the filter's event_type list, evaluated separately for
	// non-flow events (Cilium's rules differ by event kind).
	eventTypes []*flowpb.EventTypeFilter
	fields     flow.FieldSet
}

// Program is a compiled allow/deny pair. It is immutable and safe for
// concurrent use.
type Program struct {
	allow, deny []compiled
	fields      flow.FieldSet
}

// Compile compiles allow and deny filter lists with Cilium v1.18.4's
// semantics. Errors name the list, the filter's index and the field.
func Compile(allow, deny []*flowpb.FlowFilter) (*Program, error) {
	p := &Program{}
	for i, ff := range allow {
		c, err := compileOne(ff)
		if err != nil {
			return nil, fmt.Errorf("allowlist filter #%d: %w", i, err)
		}
		p.allow = append(p.allow, c)
		p.fields = p.fields.Union(c.fields)
	}
	for i, ff := range deny {
		c, err := compileOne(ff)
		if err != nil {
			return nil, fmt.Errorf("denylist filter #%d: %w", i, err)
		}
		p.deny = append(p.deny, c)
		p.fields = p.fields.Union(c.fields)
	}
	return p, nil
}

// Fields reports the Flow fields the program reads.
func (p *Program) Fields() flow.FieldSet { return p.fields }

// MatchFlow reports whether a flow is exported: allow.MatchOne && deny.MatchNone.
func (p *Program) MatchFlow(f *flowpb.Flow) bool {
	if len(p.allow) > 0 {
		ok := false
		for i := range p.allow {
			if p.allow[i].matchFlow(f) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for i := range p.deny {
		if p.deny[i].matchFlow(f) {
			return false
		}
	}
	return true
}

// MatchNonFlow gives Cilium's answer for a *flowpb.LostEvent, *flowpb.AgentEvent
// or *flowpb.DebugEvent.
func (p *Program) MatchNonFlow(ev proto.Message) bool {
	if len(p.allow) > 0 {
		ok := false
		for i := range p.allow {
			if p.allow[i].matchNonFlow(ev) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for i := range p.deny {
		if p.deny[i].matchNonFlow(ev) {
			return false
		}
	}
	return true
}

func (c *compiled) matchFlow(f *flowpb.Flow) bool {
	for _, t := range c.preds {
		if !t(f) {
			return false
		}
	}
	return true
}

func (c *compiled) matchNonFlow(ev proto.Message) bool {
	if c.eventTypes != nil && !eventTypeNonFlow(c.eventTypes, ev) {
		return false
	}
	for _, t := range c.preds {
		if !t(nil) {
			return false
		}
	}
	return true
}

// A check is one compiled test of a FlowFilter dimension and the Flow fields
// it reads. The decoder decodes only the fields a Program reads (Fields), so
// a test reading a field its check does not name would see it empty: the
// test and its fields are declared together, in one builder, so the two
// cannot drift apart (TestChecksReadOnlyDeclaredFields holds them to it).
type check struct {
	match pred
	reads flow.FieldSet
	// costly: regexps, label selectors, CEL. Such tests run after the
	// cheap ones (the order does not change a result: tests are pure).
	costly bool
}

func cheap(match pred, paths ...string) []check {
	return []check{{match: match, reads: flow.Fields(paths...)}}
}

func costly(match pred, paths ...string) []check {
	return []check{{match: match, reads: flow.Fields(paths...), costly: true}}
}

// A builder compiles one dimension of a FlowFilter (one field, or a few
// that Cilium compiles together), in the file of that dimension, as
// pkg/hubble/filters does: no checks when the filter does not set it.
// Errors start with the FlowFilter field's name.
type builder func(ff *flowpb.FlowFilter) ([]check, error)

// builders are every dimension of FlowFilter, in the order their checks run
// (cheap ones first).
var builders = []builder{
	uuidFilter,
	eventTypeFilter,
	verdictFilter,
	dropReasonFilter,
	replyFilter,
	identityFilter,
	protocolFilter,
	ipFilter,
	k8sNameFilter,
	workloadFilter,
	fqdnFilter,
	dnsQueryFilter,
	labelFilter,
	portFilter,
	httpFilter,
	tcpFlagsFilter,
	nodeNameFilter,
	clusterNameFilter,
	ipVersionFilter,
	traceIDFilter,
	trafficDirectionFilter,
	celFilter,
	interfaceFilter,
}

// compileOne builds one FlowFilter's tests, cheap ones first.
func compileOne(ff *flowpb.FlowFilter) (compiled, error) {
	var c compiled
	var later []pred
	for _, build := range builders {
		checks, err := build(ff)
		if err != nil {
			return c, err
		}
		for _, k := range checks {
			c.fields = c.fields.Union(k.reads)
			if k.costly {
				later = append(later, k.match)
			} else {
				c.preds = append(c.preds, k.match)
			}
		}
	}
	c.preds = append(c.preds, later...)
	// Non-flow events meet the event_type list by Cilium's rules for them.
	c.eventTypes = ff.GetEventType()
	return c, nil
}
