package hubblepb_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/hubblepb"
)

var (
	respDesc = (&observerpb.GetFlowsResponse{}).ProtoReflect().Descriptor()
	flowDesc = (&flowpb.Flow{}).ProtoReflect().Descriptor()
)

func fixtureDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "fixtures")
}

// fixtureResponses is every event of the .jsonl fixtures as the
// GetFlowsResponse a GetFlows stream would carry (agent and debug events,
// which GetFlows does not send, left out), in wire format.
func fixtureResponses(t testing.TB) [][]byte {
	dir := fixtureDir()
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("fixtures: %v", err)
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	more, _ := filepath.Glob(filepath.Join(dir, "*", "*.jsonl"))
	var out [][]byte
	for _, p := range append(paths, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			opts := protojson.UnmarshalOptions{DiscardUnknown: true}
			var ev observerpb.ExportEvent
			resp := &observerpb.GetFlowsResponse{}
			if err := opts.Unmarshal(line, &ev); err == nil {
				if resp = responseOf(&ev); resp == nil {
					continue
				}
			} else if err := opts.Unmarshal(line, resp); err != nil || resp.GetResponseTypes() == nil {
				f := &flowpb.Flow{} // the legacy bare flow
				if opts.Unmarshal(line, f) != nil {
					continue // ServerStatus and the like
				}
				resp.ResponseTypes = &observerpb.GetFlowsResponse_Flow{Flow: f}
			}
			out = append(out, marshal(t, resp))
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d fixture events in %s", len(out), dir)
	}
	return out
}

func marshal(t testing.TB, m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// genResponses are n events of the generator as GetFlowsResponses (its
// agent events left out): flows, and lost events now and then.
func genResponses(t testing.TB, n int, seed int64) [][]byte {
	g, err := gen.New(gen.Config{Seed: seed, Nodes: 3, LostEventEvery: 500, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, 0, n)
	for len(out) < n {
		if resp := responseOf(g.Next()); resp != nil {
			out = append(out, marshal(t, resp))
		}
	}
	return out
}

// responseOf is the GetFlowsResponse carrying the event of ev (nil for the
// agent and debug events GetFlows does not send).
func responseOf(ev *observerpb.ExportEvent) *observerpb.GetFlowsResponse {
	resp := &observerpb.GetFlowsResponse{NodeName: ev.GetNodeName(), Time: ev.GetTime()}
	switch x := ev.GetResponseTypes().(type) {
	case *observerpb.ExportEvent_Flow:
		resp.ResponseTypes = &observerpb.GetFlowsResponse_Flow{Flow: x.Flow}
	case *observerpb.ExportEvent_LostEvents:
		resp.ResponseTypes = &observerpb.GetFlowsResponse_LostEvents{LostEvents: x.LostEvents}
	case *observerpb.ExportEvent_NodeStatus:
		resp.ResponseTypes = &observerpb.GetFlowsResponse_NodeStatus{NodeStatus: x.NodeStatus}
	default:
		return nil
	}
	return resp
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 77)) }

// randomValues are the strings random messages take most of theirs from,
// so that values repeat as a cluster's do (and the interner is exercised).
var randomValues = []string{"", "kube-system", "default", "k8s:app=api", "reserved:world", "node-1", "10.0.0.1", "é€😀", "a\x00b"}

// fill sets fields of m at random through protoreflect: every field with
// probability p (each oneof's members in turn), recursively; strings,
// bytes, numbers over their whole range, enums known and unknown.
func fill(r *rand.Rand, m protoreflect.Message, p float64) {
	md := m.Descriptor()
	for i := 0; i < md.Oneofs().Len(); i++ {
		od := md.Oneofs().Get(i)
		if r.Float64() < p {
			fd := od.Fields().Get(r.IntN(od.Fields().Len()))
			fill(r, m.Mutable(fd).Message(), p)
		}
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if fd.ContainingOneof() != nil || r.Float64() >= p {
			continue
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for n := 1 + r.IntN(4); n > 0; n-- {
				if fd.Message() != nil {
					fill(r, l.AppendMutable().Message(), p)
				} else {
					l.Append(randomScalar(r, fd))
				}
			}
		case fd.Message() != nil:
			fill(r, m.Mutable(fd).Message(), p)
		default:
			m.Set(fd, randomScalar(r, fd))
		}
	}
}

func randomScalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if r.IntN(3) > 0 {
			return protoreflect.ValueOfString(randomValues[r.IntN(len(randomValues))])
		}
		b := make([]rune, r.IntN(40))
		for i := range b {
			b[i] = rune(32 + r.IntN(95))
			if r.IntN(20) == 0 {
				b[i] = rune(0x80 + r.IntN(0x10000-0x80))
				if b[i] >= 0xD800 && b[i] < 0xE000 {
					b[i] = 'x'
				}
			}
		}
		return protoreflect.ValueOfString(string(b))
	case protoreflect.BytesKind:
		b := make([]byte, r.IntN(30))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if r.IntN(5) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(int32(r.Uint32()))) // unknown (or not) numbers
		}
		return protoreflect.ValueOfEnum(vals.Get(r.IntN(vals.Len())).Number())
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(int32(randomBits(r)))
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32(uint32(randomBits(r)))
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(int64(randomBits(r)))
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(randomBits(r))
	}
	panic(fmt.Sprintf("randomScalar: kind %v", fd.Kind()))
}

// randomBits is a number of 1 to 64 random bits: small and large values
// (varints of every length).
func randomBits(r *rand.Rand) uint64 {
	return r.Uint64() >> r.IntN(64)
}

// randomResponse is a GetFlowsResponse with a random member: mostly a
// flow with every field set (p 1) or some (p 0.5), sometimes a lost event
// or a node status; a random envelope.
func randomResponse(r *rand.Rand) *observerpb.GetFlowsResponse {
	resp := &observerpb.GetFlowsResponse{}
	m := resp.ProtoReflect()
	p := 1.0
	if r.IntN(2) == 0 {
		p = 0.5
	}
	od := respDesc.Oneofs().ByName("response_types")
	fd := od.Fields().ByName("flow")
	if k := r.IntN(10); k == 0 {
		fd = od.Fields().ByName("lost_events")
	} else if k == 1 {
		fd = od.Fields().ByName("node_status")
	}
	fill(r, m.Mutable(fd).Message(), p)
	if r.IntN(4) > 0 {
		resp.NodeName = randomValues[r.IntN(len(randomValues))]
	}
	if r.IntN(4) > 0 {
		fill(r, m.Mutable(respDesc.Fields().ByName("time")).Message(), 1)
	}
	return resp
}

// wfield is one field of a message in wire format.
type wfield struct {
	num protowire.Number
	typ protowire.Type
	val []byte // the value's bytes as on the wire (a length-delimited one without its length)
	pad int    // a length-delimited value's length written in this many bytes (0: as few as it takes)
}

// parseWire splits a valid wire-format message into its fields.
func parseWire(b []byte) []wfield {
	var out []wfield
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			panic("parseWire: invalid input")
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			panic("parseWire: invalid input")
		}
		v := b[:m]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(v)
		}
		out = append(out, wfield{num: num, typ: typ, val: v})
		b = b[m:]
	}
	return out
}

func appendWire(dst []byte, fs []wfield) []byte {
	for _, f := range fs {
		dst = protowire.AppendTag(dst, f.num, f.typ)
		if f.typ == protowire.BytesType {
			dst = padVarint(dst, uint64(len(f.val)), max(f.pad, protowire.SizeVarint(uint64(len(f.val)))))
		}
		dst = append(dst, f.val...)
	}
	return dst
}

// padVarint encodes v in n bytes (1 to 10, at least its length): the
// non-minimal forms proto.Unmarshal accepts.
func padVarint(dst []byte, v uint64, n int) []byte {
	for i := 0; i < n-1; i++ {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// mutate rewrites a valid wire-format message of type md into another
// valid one with the same or another meaning, in the ways proto.Unmarshal
// must be followed exactly: fields reordered, message fields split in two
// occurrences (they merge), scalars given an earlier value (the last
// wins), oneof members replaced and repeated, unknown fields of every wire
// type (groups too) and known fields in a wrong wire type (unknown),
// non-minimal varints and lengths, nested messages mutated the same way.
func mutate(r *rand.Rand, b []byte, md protoreflect.MessageDescriptor) []byte {
	fs := parseWire(b)
	var out []wfield
	for _, f := range fs {
		fd := md.Fields().ByNumber(f.num)
		if fd != nil && fd.Message() != nil && f.typ == protowire.BytesType && r.IntN(2) == 0 {
			f.val = mutate(r, f.val, fd.Message())
		}
		switch k := r.IntN(12); {
		case k == 0 && fd != nil && fd.Message() != nil && f.typ == protowire.BytesType && !fd.IsList():
			// Split: the first fields, then the rest (maybe after others).
			sub := parseWire(f.val)
			cut := r.IntN(len(sub) + 1)
			out = append(out, wfield{num: f.num, typ: f.typ, val: appendWire(nil, sub[:cut])})
			f.val = appendWire(nil, sub[cut:])
		case k == 1 && fd != nil && fd.Message() == nil && !fd.IsList() && f.typ == protowire.VarintType:
			out = append(out, wfield{num: f.num, typ: f.typ, val: protowire.AppendVarint(nil, randomBits(r))}) // overridden below
		case k == 2 && fd != nil && fd.ContainingOneof() != nil:
			// Another member first (replaced by this one), or this one
			// with other contents (merged).
			od := fd.ContainingOneof()
			o := od.Fields().Get(r.IntN(od.Fields().Len()))
			m := newMessage(o.Message())
			fill(r, m, 0.5)
			out = append(out, wfield{num: o.Number(), typ: protowire.BytesType, val: mustMarshal(m.Interface())})
		case k == 3:
			out = append(out, randomUnknown(r, md))
		case k == 4 && f.typ == protowire.VarintType:
			v, _ := protowire.ConsumeVarint(f.val)
			f.val = padVarint(nil, v, max(protowire.SizeVarint(v), 1+r.IntN(10)))
		case k == 5 && f.typ == protowire.BytesType:
			f.pad = 1 + r.IntN(10)
		}
		out = append(out, f)
		if r.IntN(16) == 0 {
			out = append(out, randomUnknown(r, md))
		}
	}
	if r.IntN(8) == 0 {
		r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	if md.Oneofs().Len() > 0 && r.IntN(6) == 0 {
		// A member after everything: it replaces (or merges with) what the
		// message held.
		od := md.Oneofs().Get(r.IntN(md.Oneofs().Len()))
		o := od.Fields().Get(r.IntN(od.Fields().Len()))
		m := newMessage(o.Message())
		fill(r, m, 0.5)
		out = append(out, wfield{num: o.Number(), typ: protowire.BytesType, val: mustMarshal(m.Interface())})
	}
	return appendWire(nil, out)
}

// newMessage is a new message of type md (any type of the schema).
func newMessage(md protoreflect.MessageDescriptor) protoreflect.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		panic(err)
	}
	return mt.New()
}

// mustMarshal is proto.Marshal of a message fill made (which cannot fail).
func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// randomUnknown is a field proto.Unmarshal skips: a number md does not
// have, or one it has in another wire type; any wire type, groups with
// nested fields included.
func randomUnknown(r *rand.Rand, md protoreflect.MessageDescriptor) wfield {
	num := protowire.Number(1 + r.IntN(40))
	if r.IntN(4) == 0 {
		num = protowire.Number(1 + r.IntN(int(protowire.MaxValidNumber)))
	}
	typ := []protowire.Type{protowire.VarintType, protowire.Fixed32Type, protowire.Fixed64Type, protowire.BytesType, protowire.StartGroupType}[r.IntN(5)]
	if fd := md.Fields().ByNumber(num); fd != nil {
		own := protowire.VarintType
		if fd.Message() != nil || fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind {
			own = protowire.BytesType
		}
		if typ == own {
			typ = protowire.Fixed32Type
		}
	}
	var v []byte
	switch typ {
	case protowire.VarintType:
		v = protowire.AppendVarint(nil, randomBits(r))
	case protowire.Fixed32Type:
		v = protowire.AppendFixed32(nil, r.Uint32())
	case protowire.Fixed64Type:
		v = protowire.AppendFixed64(nil, r.Uint64())
	case protowire.BytesType:
		v = make([]byte, r.IntN(20))
		for i := range v {
			v[i] = byte(r.Uint32())
		}
	case protowire.StartGroupType:
		v = protowire.AppendTag(nil, 7, protowire.VarintType)
		v = protowire.AppendVarint(v, 1)
		v = protowire.AppendTag(v, 8, protowire.StartGroupType)
		v = protowire.AppendTag(v, 8, protowire.EndGroupType)
		v = protowire.AppendTag(v, num, protowire.EndGroupType)
	}
	return wfield{num: num, typ: typ, val: v}
}

// damage returns b with a random defect: cut short, a byte changed, a
// length or varint made longer, bytes inserted: mostly invalid input,
// sometimes still valid with another meaning.
func damage(r *rand.Rand, b []byte) []byte {
	if len(b) == 0 {
		return []byte{byte(r.Uint32())}
	}
	out := bytes.Clone(b)
	i := r.IntN(len(out))
	switch r.IntN(6) {
	case 0:
		return out[:i]
	case 1:
		out[i] = byte(r.Uint32())
	case 2:
		out[i] ^= 1 << r.IntN(8)
	case 3:
		out[i] |= 0x80 // a varint continues
	case 4:
		return slices.Insert(out, i, byte(r.Uint32()), byte(r.Uint32()))
	case 5:
		for k := 0; k < 4; k++ {
			out[r.IntN(len(out))] = byte(r.Uint32())
		}
	}
	return out
}

// plan is a decoding plan under test.
type plan struct {
	name         string
	filter, keep flow.FieldSet
}

var plans = []plan{
	{"full", flow.AllFields(), flow.AllFields()},
	{"verdict-docs-mask", flow.Fields("verdict", "time", "node_name"), flow.Fields(append(fieldmask.ParsePaths(fieldmask.DocsExample), "time", "node_name")...)},
	{"labels-ports-l7", flow.Fields("source.labels", "destination.labels", "l4.TCP.destination_port", "l4.UDP.destination_port", "event_type"), flow.Fields("l7", "time")},
	{"none-all", flow.Fields(), flow.AllFields()},
	{"deep", flow.Fields("time.seconds", "is_reply.value", "l7.http.url", "l7.dns", "tunnel.l4.TCP.flags.SYN", "source.workloads", "l4.ICMPv4"),
		flow.Fields("extensions", "destination.namespace", "egress_allowed_by", "tunnel.IP", "l7.kafka.topic", "l7.type")},
	{"none-docs", flow.Fields(), flow.Fields(fieldmask.ParsePaths(fieldmask.DocsExample)...)},
}

// allPaths lists every field path of flow.Flow a field mask may name
// (descending through singular messages only).
func allPaths() []string {
	var out []string
	var walk func(md protoreflect.MessageDescriptor, prefix string, depth int)
	walk = func(md protoreflect.MessageDescriptor, prefix string, depth int) {
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			p := prefix + string(fd.Name())
			out = append(out, p)
			if fd.Message() != nil && !fd.IsList() && depth < 5 {
				walk(fd.Message(), p+".", depth+1)
			}
		}
	}
	walk(flowDesc, "", 1)
	return out
}

// randomPlan picks a filter of a few paths and a mask of some more.
func randomPlan(r *rand.Rand, paths []string) plan {
	pick := func(n int) flow.FieldSet {
		var ps []string
		for range n {
			ps = append(ps, paths[r.IntN(len(paths))])
		}
		return flow.Fields(ps...)
	}
	p := plan{name: "random", filter: pick(r.IntN(4)), keep: pick(1 + r.IntN(12))}
	if r.IntN(8) == 0 {
		p.keep = flow.AllFields()
	}
	return p
}

// pruned is f (a copy) with only the fields of fs, as pkg/fieldmask
// prunes a flow.
func pruned(t testing.TB, f *flowpb.Flow, fs flow.FieldSet) *flowpb.Flow {
	if f == nil || fs.IsAll() {
		return f
	}
	f = proto.Clone(f).(*flowpb.Flow)
	if fs.IsEmpty() {
		f.Reset()
		return f
	}
	m, ok := masks.Load(fs.String())
	if !ok {
		mask, err := fieldmask.Compile(fs.Paths())
		if err != nil {
			t.Fatalf("mask %s: %v", fs, err)
		}
		m, _ = masks.LoadOrStore(fs.String(), mask)
	}
	m.(*fieldmask.Mask).Prune(f)
	return f
}

// masks caches the compiled masks of pruned, by FieldSet.String.
var masks sync.Map

// selection is the test's own compiled field set (the oracle does not use
// the package's): nil selects the whole message.
type selection map[protoreflect.FieldNumber]selection

func selectionOf(fs flow.FieldSet) selection {
	if fs.IsAll() {
		return nil
	}
	root := selection{}
	for _, p := range fs.Paths() {
		cur, md := root, flowDesc
		for i, part := range strings.Split(p, ".") {
			fd := md.Fields().ByName(protoreflect.Name(part))
			last := i == len(strings.Split(p, "."))-1 || fd.Message() == nil || fd.IsList()
			if last {
				cur[fd.Number()] = nil
				break
			}
			next, ok := cur[fd.Number()]
			if ok && next == nil {
				break // whole already
			}
			if !ok {
				next = selection{}
				cur[fd.Number()] = next
			}
			cur, md = next, fd.Message()
		}
	}
	return root
}

// strip is the oracle for a plan's decoding: the wire-format message b
// of type md with only the fields sel selects, the rest removed without
// being looked into (a oneof member left as an empty one: it still
// replaces what the oneof held). proto.Unmarshal of the result, pruned to
// the selection, is what the plan must produce, and its error is the
// plan's. The framing of every field of the messages it descends into is
// checked as proto.Unmarshal checks it.
func strip(b []byte, md protoreflect.MessageDescriptor, sel selection) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber || typ == protowire.EndGroupType {
			return nil, fmt.Errorf("bad tag")
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		raw, val := b[:n+m], b[n:n+m]
		b = b[n+m:]
		fd := md.Fields().ByNumber(num)
		if fd == nil {
			continue
		}
		sub, selected := sel[num]
		switch {
		case sel == nil:
			out = append(out, raw...)
		case !selected:
			if fd.ContainingOneof() != nil && typ == protowire.BytesType {
				out = protowire.AppendTag(out, num, typ)
				out = protowire.AppendVarint(out, 0)
			}
		case sub != nil && typ == protowire.BytesType:
			v, _ := protowire.ConsumeBytes(val)
			s, err := strip(v, fd.Message(), sub)
			if err != nil {
				return nil, err
			}
			out = protowire.AppendTag(out, num, typ)
			out = protowire.AppendBytes(out, s)
		default:
			out = append(out, raw...)
		}
	}
	return out, nil
}

// unmarshalAs is proto.Unmarshal of a GetFlowsResponse with the flow
// stripped to fs (strip), the flow pruned to fs.
func unmarshalAs(t testing.TB, wire []byte, fs flow.FieldSet) (*observerpb.GetFlowsResponse, error) {
	sel := selection{1: selectionOf(fs)}
	for i := 0; i < respDesc.Fields().Len(); i++ {
		if n := respDesc.Fields().Get(i).Number(); n != 1 {
			sel[n] = nil
		}
	}
	if fs.IsAll() {
		sel = nil
	}
	b, err := strip(wire, respDesc, sel)
	if err != nil {
		return nil, err
	}
	resp := &observerpb.GetFlowsResponse{}
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, resp); err != nil {
		return nil, err
	}
	if x, ok := resp.GetResponseTypes().(*observerpb.GetFlowsResponse_Flow); ok {
		x.Flow = pruned(t, x.Flow, fs)
	}
	return resp, nil
}

// checker decodes messages with a plan, as a source would (slots reused in
// turn, an arena reset now and then), and compares every result with the
// oracle: unmarshalAs with the filter's fields after Decode, with the
// filter's and the kept fields after Finish.
type checker struct {
	t     testing.TB
	p     plan
	d     *hubblepb.Decoder
	arena flow.Arena
	slots []*flowpb.Flow
	n     int
	// finishEvery: Finish is called for one flow in finishEvery (the
	// filter "keeps" it).
	finishEvery int
	accepted    int
}

func newChecker(t testing.TB, p plan) *checker {
	c := &checker{t: t, p: p, d: hubblepb.NewDecoder(hubblepb.NewPlan(p.filter, p.keep)), finishEvery: 1}
	c.d.SetArena(&c.arena)
	for range 3 {
		c.slots = append(c.slots, &flowpb.Flow{})
	}
	return c
}

func (c *checker) check(wire []byte) {
	t := c.t
	t.Helper()
	c.n++
	if c.n%50 == 0 {
		c.arena.Reset()
	}
	f := c.slots[c.n%len(c.slots)]
	eager := c.d.Eager()
	filterFields := c.p.filter
	if c.p.filter.IsEmpty() || eager {
		filterFields = c.p.filter.Union(c.p.keep)
	}
	finishFields := c.p.filter.Union(c.p.keep)
	kind, err := c.d.Decode(wire, f)
	want, werr := unmarshalAs(t, wire, filterFields)
	if (err == nil) != (werr == nil) {
		t.Fatalf("%s: Decode: %v, proto.Unmarshal: %v (eager %v)\n%x", c.p.name, err, werr, eager, wire)
	}
	if err != nil {
		return
	}
	c.accepted++
	c.checkEnvelope(kind, want, wire)
	if kind != flow.KindFlow {
		return
	}
	if !proto.Equal(f, want.GetFlow()) {
		t.Fatalf("%s: after Decode (eager %v):\ngot  %v\nwant %v\n%x", c.p.name, eager, f, want.GetFlow(), wire)
	}
	if c.n%c.finishEvery != 0 {
		return
	}
	err = c.d.Finish(f)
	want, werr = unmarshalAs(t, wire, finishFields)
	if (err == nil) != (werr == nil) {
		t.Fatalf("%s: Finish: %v, proto.Unmarshal: %v\n%x", c.p.name, err, werr, wire)
	}
	if err == nil && !proto.Equal(f, want.GetFlow()) {
		t.Fatalf("%s: after Finish:\ngot  %v\nwant %v\n%x", c.p.name, f, want.GetFlow(), wire)
	}
}

func (c *checker) checkEnvelope(kind flow.Kind, want *observerpb.GetFlowsResponse, wire []byte) {
	t := c.t
	t.Helper()
	wantKind := flow.KindUnknown
	switch want.GetResponseTypes().(type) {
	case *observerpb.GetFlowsResponse_Flow:
		wantKind = flow.KindFlow
	case *observerpb.GetFlowsResponse_LostEvents:
		wantKind = flow.KindLostEvents
		if !proto.Equal(c.d.NonFlow(), want.GetLostEvents()) {
			t.Fatalf("%s: lost event %v, want %v\n%x", c.p.name, c.d.NonFlow(), want.GetLostEvents(), wire)
		}
	case *observerpb.GetFlowsResponse_NodeStatus:
		wantKind = flow.KindNodeStatus
		if !proto.Equal(c.d.NonFlow(), want.GetNodeStatus()) {
			t.Fatalf("%s: node status %v, want %v\n%x", c.p.name, c.d.NonFlow(), want.GetNodeStatus(), wire)
		}
	}
	if kind != wantKind {
		t.Fatalf("%s: kind %v, want %v\n%x", c.p.name, kind, wantKind, wire)
	}
	if kind != flow.KindLostEvents && kind != flow.KindNodeStatus && c.d.NonFlow() != nil {
		t.Fatalf("%s: NonFlow %v for a %v", c.p.name, c.d.NonFlow(), kind)
	}
	if got := c.d.EnvelopeNodeName(); got != want.GetNodeName() {
		t.Fatalf("%s: node_name %q, want %q", c.p.name, got, want.GetNodeName())
	}
	tm, ok := c.d.EnvelopeTime()
	if ok != (want.GetTime() != nil) || (ok && !tm.Equal(want.GetTime().AsTime())) {
		t.Fatalf("%s: time %v %v, want %v", c.p.name, tm, ok, want.GetTime())
	}
}
