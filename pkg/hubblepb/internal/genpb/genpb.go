// Package genpb generates pkg/hubblepb's reflection-free protobuf decoder
// (decode_gen.go) from the descriptors of the Cilium version in go.mod: one
// function per message type reachable from flow.Flow, flow.LostEvent and
// relay.NodeStatusEvent. A Cilium upgrade that adds fields is then one `go
// generate` away, and a test fails while the generated file is stale.
//
// The generated code follows proto.Unmarshal's rules for the fields it
// decodes: the last value of a scalar wins, a message field's occurrences
// merge, a oneof member replaces another one and merges with itself, a field
// whose wire type is not its own is an unknown field, strings must be valid
// UTF-8, and unknown fields are skipped with protowire.ConsumeFieldValue (so
// groups and their nesting limit are protowire's). A field the plan does not
// select is skipped by its length, without descending into it.
package genpb

import (
	"bytes"
	"fmt"
	"go/format"
	"reflect"
	"slices"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/runtime/protoimpl"
)

// roots are the message types the generated decoder starts from: the
// GetFlowsResponse members (its envelope is hubblepb's own, decoder.go).
var roots = []proto.Message{&flowpb.Flow{}, &flowpb.LostEvent{}, &relaypb.NodeStatusEvent{}}

// packages are the Go import paths of the message types, by the name the
// generated file imports them as.
var packages = map[string]string{
	"github.com/cilium/cilium/api/v1/flow":               "flowpb",
	"github.com/cilium/cilium/api/v1/relay":              "relaypb",
	"google.golang.org/protobuf/types/known/timestamppb": "timestamppb",
	"google.golang.org/protobuf/types/known/wrapperspb":  "wrapperspb",
	"google.golang.org/protobuf/types/known/anypb":       "anypb",
}

// arenaStrings are the string fields whose values are many, or new with
// every event: an event's own identifiers, addresses (a cluster's pods have
// thousands, and the interner's table would grow past the caches), free
// text, URLs, DNS answers. They are copied into the batch's arena. Every
// other string field holds one of a cluster's few values (namespaces, pod
// and node names, labels, policies, workloads) and is interned: a value
// seen before costs a lookup and no copy.
var arenaStrings = map[protoreflect.FullName]bool{
	"flow.Flow.uuid":                true,
	"flow.Flow.Summary":             true,
	"flow.Ethernet.source":          true,
	"flow.Ethernet.destination":     true,
	"flow.IP.source":                true,
	"flow.IP.source_xlated":         true,
	"flow.IP.destination":           true,
	"flow.NetworkInterface.name":    true,
	"flow.TraceParent.trace_id":     true,
	"flow.HTTP.url":                 true,
	"flow.HTTPHeader.value":         true,
	"flow.DNS.ips":                  true,
	"relay.NodeStatusEvent.message": true,
}

// memoized are the message types whose decoded values are remembered by
// their bytes (hubblepb's memo): the endpoints, most of a flow's bytes and
// strings, the same from flow to flow for a node's pods.
var memoized = map[protoreflect.FullName]bool{"flow.Endpoint": true, "flow.Policy": true}

// runMemoized are the repeated string fields whose runs of values are
// remembered by their bytes (hubblepb's strRun): a node's labels, the same
// in every flow of the node.
var runMemoized = map[protoreflect.FullName]bool{"flow.Flow.node_labels": true}

type field struct {
	fd     protoreflect.FieldDescriptor
	idx    int    // descriptor index: the field's bit in sel and in the set mask
	goName string // struct field, or the oneof wrapper's field
	goType string // Go type of an enum field's values
	// Oneof members: the message's interface field and the wrapper type.
	oneofField, wrapper string
	sub                 *message // message fields: their type
	intern              int      // interned string fields: their index in the decoder's statistics
}

type message struct {
	md     protoreflect.MessageDescriptor
	goType string // qualified: flowpb.Flow
	name   string // for function names: Flow
	fields []*field
	nested bool // the type of some field (else a root only): pooled
	copied bool // a memoized type or one of its fields': has a copy function
}

type generator struct {
	buf    bytes.Buffer
	msgs   map[protoreflect.FullName]*message
	order  []*message
	names  map[string]protoreflect.FullName
	wraps  []string // oneof wrapper types, qualified
	pkgs   map[string]bool
	errors []string
	// interned counts the interned string fields.
	interned int
}

// Source returns the generated file.
func Source() ([]byte, error) {
	g := &generator{msgs: map[protoreflect.FullName]*message{}, names: map[string]protoreflect.FullName{}, pkgs: map[string]bool{}}
	for _, r := range roots {
		g.walk(r.ProtoReflect().Descriptor(), nil)
	}
	if len(g.errors) == 0 {
		g.emit()
	}
	if len(g.errors) > 0 {
		return nil, fmt.Errorf("genpb: %s", strings.Join(g.errors, "; "))
	}
	out, err := format.Source(g.buf.Bytes())
	if err != nil {
		return g.buf.Bytes(), fmt.Errorf("genpb: gofmt: %w", err)
	}
	return out, nil
}

func (g *generator) fail(format string, args ...any) {
	g.errors = append(g.errors, fmt.Sprintf(format, args...))
}

func (g *generator) p(format string, args ...any) { fmt.Fprintf(&g.buf, format+"\n", args...) }

// goType returns the qualified Go type of message md.
func (g *generator) goType(md protoreflect.MessageDescriptor) (reflect.Type, string) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		g.fail("%s: %v", md.FullName(), err)
		return nil, ""
	}
	rt := reflect.TypeOf(mt.Zero().Interface()).Elem()
	pkg, ok := packages[rt.PkgPath()]
	if !ok {
		g.fail("%s: Go package %s has no import name", md.FullName(), rt.PkgPath())
		return rt, ""
	}
	g.pkgs[rt.PkgPath()] = true
	return rt, pkg + "." + rt.Name()
}

// walk records md's message type and every message type reachable from it.
// path holds the types being walked (a recursive type is refused: the
// decoder's recursion is then bounded by the schema).
func (g *generator) walk(md protoreflect.MessageDescriptor, path []protoreflect.FullName) *message {
	if slices.Contains(path, md.FullName()) {
		g.fail("%s is recursive (%v); the decoder supports acyclic schemas only", md.FullName(), path)
		return nil
	}
	if m, ok := g.msgs[md.FullName()]; ok {
		return m
	}
	rt, goType := g.goType(md)
	if rt == nil {
		return nil
	}
	m := &message{md: md, goType: goType, name: rt.Name()}
	if other, dup := g.names[m.name]; dup {
		g.fail("%s and %s have the same Go name %s", other, md.FullName(), m.name)
	}
	g.names[m.name] = md.FullName()
	g.msgs[md.FullName()] = m
	g.order = append(g.order, m)
	if md.Fields().Len() > 64 {
		g.fail("%s has %d fields; the decoder tracks at most 64", md.FullName(), md.Fields().Len())
		return m
	}
	byName := map[string]reflect.StructField{}
	oneofByName := map[string]reflect.StructField{}
	for i := 0; i < rt.NumField(); i++ {
		sf := rt.Field(i)
		for _, part := range strings.Split(sf.Tag.Get("protobuf"), ",") {
			if name, ok := strings.CutPrefix(part, "name="); ok {
				byName[name] = sf
			}
		}
		if o := sf.Tag.Get("protobuf_oneof"); o != "" {
			oneofByName[o] = sf
		}
	}
	// Oneof wrappers by field number, from the message's runtime info.
	wrappers := map[protoreflect.FieldNumber]reflect.Type{}
	if mi, ok := reflect.New(rt).Interface().(proto.Message).ProtoReflect().Type().(*protoimpl.MessageInfo); ok {
		for _, w := range mi.OneofWrappers {
			wt := reflect.TypeOf(w).Elem()
			for _, part := range strings.Split(wt.Field(0).Tag.Get("protobuf"), ",") {
				var n int
				if _, err := fmt.Sscanf(part, "%d", &n); err == nil && n > 0 {
					wrappers[protoreflect.FieldNumber(n)] = wt
					break
				}
			}
		}
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		f := &field{fd: fd, idx: i}
		where := string(fd.FullName())
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			sf, ok := oneofByName[string(od.Name())]
			wt, wok := wrappers[fd.Number()]
			if !ok || !wok {
				g.fail("%s: no Go field or wrapper for oneof %s", where, od.Name())
				continue
			}
			if fd.Message() == nil {
				g.fail("%s: scalar oneof members are not supported", where)
				continue
			}
			f.oneofField = sf.Name
			f.goName = wt.Field(0).Name
			f.wrapper = packages[wt.PkgPath()] + "." + wt.Name()
			g.wraps = append(g.wraps, f.wrapper)
		} else {
			if fd.HasPresence() && fd.Message() == nil {
				g.fail("%s: scalar fields with presence (proto2, optional) are not supported", where)
				continue
			}
			sf, ok := byName[string(fd.Name())]
			if !ok {
				g.fail("%s: no Go field", where)
				continue
			}
			f.goName = sf.Name
			if fd.Enum() != nil {
				t := sf.Type
				if t.Kind() == reflect.Slice {
					t = t.Elem()
				}
				f.goType = packages[t.PkgPath()] + "." + t.Name()
			}
		}
		if fd.IsMap() {
			g.fail("%s: map fields are not supported", where)
			continue
		}
		switch fd.Kind() {
		case protoreflect.StringKind, protoreflect.BytesKind:
			if fd.IsList() && fd.Kind() == protoreflect.BytesKind {
				g.fail("%s: repeated bytes are not supported", where)
				continue
			}
			if fd.Kind() == protoreflect.StringKind && !arenaStrings[fd.FullName()] {
				f.intern = g.interned
				g.interned++
			}
		case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Uint32Kind,
			protoreflect.Int64Kind, protoreflect.Uint64Kind:
			if fd.IsList() {
				// No field of the supported schemas is a repeated number;
				// its packed and unpacked forms would need code and tests.
				g.fail("%s: repeated %v fields are not supported", where, fd.Kind())
				continue
			}
		case protoreflect.MessageKind:
			f.sub = g.walk(fd.Message(), append(path, md.FullName()))
			if f.sub == nil {
				continue
			}
			f.sub.nested = true
		default:
			g.fail("%s: kind %v is not supported", where, fd.Kind())
			continue
		}
		m.fields = append(m.fields, f)
	}
	return m
}

// bit is the mask of field index i.
func bit(i int) string { return fmt.Sprintf("1<<%d", i) }

// markCopied marks m and the types of its message fields as copied.
func (g *generator) markCopied(m *message) {
	if m.copied {
		return
	}
	m.copied = true
	for _, f := range m.fields {
		if f.oneofField != "" {
			g.fail("%s: a memoized type may not have oneofs", m.md.FullName())
		}
		if f.sub != nil {
			g.markCopied(f.sub)
		}
	}
}

func (g *generator) emit() {
	for _, m := range g.order {
		if memoized[m.md.FullName()] {
			g.markCopied(m)
		}
	}
	g.p("// Code generated by pkg/hubblepb/internal/genpb from the protobuf descriptors; DO NOT EDIT.")
	g.p("")
	g.p("package hubblepb")
	g.p("")
	g.p("import (")
	var paths []string
	for p := range g.pkgs {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		g.p("%s %q", packages[p], p)
	}
	g.p(")")
	g.p("")
	g.p("// pools keeps the nested messages and oneof wrappers that decoding")
	g.p("// detached from a flow (a field the next flow does not have) for the")
	g.p("// next flow that has it, so that steady-state decoding allocates none.")
	g.p("type pools struct {")
	for _, m := range g.order {
		if m.nested {
			g.p("free%s []*%s", m.name, m.goType)
		}
	}
	for _, w := range g.wraps {
		g.p("free%s []*%s", shortName(w), w)
	}
	g.p("}")
	g.p("")
	types := []string{}
	for _, m := range g.order {
		if m.nested {
			types = append(types, m.goType)
		}
	}
	types = append(types, g.wraps...)
	for _, t := range types {
		s := shortName(t)
		g.p("func (p *pools) new%s() *%s {", s, t)
		g.p("if n := len(p.free%s); n > 0 {", s)
		g.p("x := p.free%s[n-1]", s)
		g.p("p.free%s = p.free%s[:n-1]", s, s)
		g.p("return x")
		g.p("}")
		g.p("return new(%s)", t)
		g.p("}")
		g.p("")
	}
	g.p("// internedFields is the number of interned string fields: their")
	g.p("// statistics (Decoder.intern) are by the index the generated code gives.")
	g.p("const internedFields = %d", g.interned)
	g.p("")
	g.p("// memos holds a memo per memoized message type.")
	g.p("type memos struct {")
	for _, m := range g.order {
		if memoized[m.md.FullName()] {
			g.p("memo%s memo[%s]", m.name, m.goType)
		}
		for _, f := range m.fields {
			if runMemoized[f.fd.FullName()] {
				g.p("run%s%s memo[strList]", m.name, f.goName)
			}
		}
	}
	g.p("}")
	g.p("")
	for _, m := range g.order {
		g.emitMessage(m)
		if memoized[m.md.FullName()] {
			g.emitMemo(m)
		}
		if m.copied {
			g.emitCopy(m)
		}
	}
}

// emitMemo writes dec<Msg>Memo: dec<Msg> through the type's memo.
func (g *generator) emitMemo(m *message) {
	g.p("// dec%sMemo is dec%s, from the memo when b was decoded with s before.", m.name, m.name)
	g.p("func (d *Decoder) dec%sMemo(b []byte, m *%s, s *sel, merge bool) error {", m.name, m.goType)
	g.p("if merge { return d.dec%s(b, m, s, true) }", m.name)
	g.p("mo := &d.memo%s", m.name)
	g.p("x, set := mo.find(b, s)")
	g.p("if x != nil {")
	g.p("d.copy%s(m, x)", m.name)
	g.p("return nil")
	g.p("}")
	g.p("arena := d.arenaUses")
	g.p("if err := d.dec%s(b, m, s, false); err != nil { return err }", m.name)
	g.p("if set >= 0 && d.arenaUses == arena { // strings that die with the batch are not remembered")
	g.p("if x = mo.add(b, s, set); x != nil { d.copy%s(x, m) }", m.name)
	g.p("}")
	g.p("return nil")
	g.p("}")
	g.p("")
}

// emitCopy writes copy<Msg>: dst becomes a copy of src, sharing its
// strings, with dst's own lists and nested messages (reused, or from the
// pools).
func (g *generator) emitCopy(m *message) {
	g.p("func (d *Decoder) copy%s(dst, src *%s) {", m.name, m.goType)
	for _, f := range m.fields {
		fd := f.fd
		n := f.goName
		switch {
		case fd.IsList() && f.sub != nil:
			sub := f.sub.name
			g.p("dst.%s = dst.%s[:0]", n, n)
			g.p("for _, e := range src.%s {", n)
			g.p("var c *%s", f.sub.goType)
			g.p("if k := len(dst.%s); k < cap(dst.%s) {", n, n)
			g.p("dst.%s = dst.%s[:k+1]", n, n)
			g.p("if c = dst.%s[k]; c == nil { c = d.new%s(); dst.%s[k] = c }", n, sub, n)
			g.p("} else {")
			g.p("c = d.new%s()", sub)
			g.p("dst.%s = append(dst.%s, c)", n, n)
			g.p("}")
			g.p("d.copy%s(c, e)", sub)
			g.p("}")
		case fd.IsList():
			g.p("dst.%s = append(dst.%s[:0], src.%s...)", n, n, n)
		case f.sub != nil:
			sub := f.sub.name
			g.p("if src.%s == nil {", n)
			g.p("if dst.%s != nil { d.free%s = append(d.free%s, dst.%s); dst.%s = nil }", n, sub, sub, n, n)
			g.p("} else {")
			g.p("if dst.%s == nil { dst.%s = d.new%s() }", n, n, sub)
			g.p("d.copy%s(dst.%s, src.%s)", sub, n, n)
			g.p("}")
		default:
			g.p("dst.%s = src.%s", n, n)
		}
	}
	g.p("}")
	g.p("")
}

// shortName is the name after the package: flowpb.Layer4_TCP -> Layer4_TCP.
func shortName(t string) string { return t[strings.IndexByte(t, '.')+1:] }

// tag is the wire tag of field f in its own wire type (varint 0 or
// length-delimited 2).
func tag(f *field) string {
	switch f.fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return fmt.Sprintf("%d<<3 | 2", f.fd.Number())
	}
	return fmt.Sprintf("%d << 3", f.fd.Number())
}

func (g *generator) emitMessage(m *message) {
	g.p("// dec%s decodes the wire-format %s in b into m, the fields s selects;", m.name, m.md.FullName())
	g.p("// the others are skipped (and cleared unless merging). With merge, b is a")
	g.p("// later occurrence of the same message: what it holds is merged into m.")
	g.p("func (d *Decoder) dec%s(b []byte, m *%s, s *sel, merge bool) error {", m.name, m.goType)
	g.p("var set uint64 // fields set by b (descriptor index bits)")
	g.p("for len(b) > 0 {")
	g.p("t, n := tagFast(b)")
	g.p("if n == 0 {")
	g.p("if t, n = tagSlow(b); n < 0 { return errAt(%q, n) }", string(m.md.FullName()))
	g.p("}")
	g.p("b = b[n:]")
	g.p("switch t {")
	for _, f := range m.fields {
		g.p("case %s: // %s", tag(f), f.fd.Name())
		g.emitField(m, f)
	}
	g.p("}")
	g.p("// An unknown field, one in another wire type than its own (unknown to")
	g.p("// proto.Unmarshal too), or one s does not select.")
	g.p("if n = skipField(t, b); n < 0 { return errAt(%q, n) }", string(m.md.FullName()))
	g.p("b = b[n:]")
	g.p("}")
	g.p("if !merge && set != %#x {", fieldsMask(m))
	g.emitClears(m)
	g.p("}")
	g.p("return nil")
	g.p("}")
	g.p("")
	g.emitReleases(m)
}

// fieldsMask is the mask of every field of m.
func fieldsMask(m *message) uint64 {
	var all uint64
	for _, f := range m.fields {
		all |= 1 << f.idx
	}
	return all
}

// oneofMask is the mask of the members of f's oneof.
func oneofMask(m *message, f *field) uint64 {
	var mask uint64
	for _, o := range m.fields {
		if o.oneofField == f.oneofField {
			mask |= 1 << o.idx
		}
	}
	return mask
}

// conv converts the varint v to field f's Go type as proto.Unmarshal does
// (truncating: an int32 or enum sent as a 64-bit varint keeps its low bits).
func conv(f *field) string {
	switch f.fd.Kind() {
	case protoreflect.BoolKind:
		return "v != 0"
	case protoreflect.EnumKind:
		return f.goType + "(int32(v))"
	case protoreflect.Int32Kind:
		return "int32(v)"
	case protoreflect.Uint32Kind:
		return "uint32(v)"
	case protoreflect.Int64Kind:
		return "int64(v)"
	case protoreflect.Uint64Kind:
		return "v"
	}
	panic("genpb: conv " + f.fd.Kind().String())
}

// str is the expression that makes field f's string from the bytes v.
func str(f *field) string {
	if arenaStrings[f.fd.FullName()] {
		return "d.arenaString(v)"
	}
	return fmt.Sprintf("d.intern(v, %d)", f.intern)
}

func (g *generator) emitField(m *message, f *field) {
	fd := f.fd
	name := string(fd.FullName())
	dst := "m." + f.goName
	g.p("if s.has(%d) {", f.idx)
	if runMemoized[fd.FullName()] {
		if !fd.IsList() || fd.Kind() != protoreflect.StringKind || arenaStrings[fd.FullName()] || m.copied {
			g.fail("%s: only repeated interned string fields outside memoized types have runs remembered", fd.FullName())
		}
		g.p("if set&(%s) == 0 && !merge { // the run of values starting here, remembered", bit(f.idx))
		g.p("var n int")
		g.p("var err error")
		g.p("if %s, n, err = d.strRun(b, t, %d, &d.run%s%s, %s[:0], %q); err != nil { return err }", dst, f.intern, m.name, f.goName, dst, name)
		g.p("b = b[n:]")
		g.p("set |= %s", bit(f.idx))
		g.p("continue")
		g.p("}")
	}
	kind := "varint"
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind {
		kind = "bytes"
	}
	g.p("v, n := %sFast(b)", kind)
	g.p("if n == 0 {")
	g.p("if v, n = %sSlow(b); n < 0 { return errAt(%q, n) }", kind, name)
	g.p("}")
	g.p("b = b[n:]")
	switch {
	case fd.Kind() == protoreflect.StringKind:
		g.p("x, ok := %s", str(f))
		g.p("if !ok { return errUTF8(%q) }", name)
		if fd.IsList() {
			g.p("if set&(%s) == 0 && !merge { %s = %s[:0] }", bit(f.idx), dst, dst)
			g.p("%s = append(%s, x)", dst, dst)
		} else {
			g.p("%s = x", dst)
		}
	case fd.Kind() == protoreflect.BytesKind:
		g.p("%s = d.bytes(v)", dst)
	case fd.Kind() != protoreflect.MessageKind:
		g.p("%s = %s", dst, conv(f))
	case fd.IsList():
		t, sub := f.sub.goType, f.sub.name
		g.p("if set&(%s) == 0 && !merge { %s = %s[:0] }", bit(f.idx), dst, dst)
		g.p("var e *%s", t)
		g.p("if k := len(%s); k < cap(%s) {", dst, dst)
		g.p("%s = %s[:k+1]", dst, dst)
		g.p("if e = %s[k]; e == nil { e = d.new%s(); %s[k] = e }", dst, sub, dst)
		g.p("} else {")
		g.p("e = d.new%s()", sub)
		g.p("%s = append(%s, e)", dst, dst)
		g.p("}")
		memo := ""
		if memoized[f.sub.md.FullName()] {
			memo = "Memo"
		}
		g.p("if err := d.dec%s%s(v, e, nil, false); err != nil { return err }", sub, memo)
	case f.oneofField != "":
		sub := f.sub.name
		of := "m." + f.oneofField
		g.p("w, ok := %s.(*%s)", of, f.wrapper)
		g.p("mg := ok && (merge || set&(%s) != 0) // the member it holds was set by this message", bit(f.idx))
		g.p("if !ok {")
		g.p("if %s != nil { d.release%s%s(%s) }", of, m.name, f.oneofField, of)
		g.p("w = d.new%s()", shortName(f.wrapper))
		g.p("%s = w", of)
		g.p("}")
		g.p("if w.%s == nil { w.%s = d.new%s(); mg = false }", f.goName, f.goName, sub)
		g.p("if err := d.dec%s(v, w.%s, s.sub(%d), mg); err != nil { return err }", sub, f.goName, f.idx)
	default:
		sub := f.sub.name
		g.p("x, mg := %s, merge || set&(%s) != 0", dst, bit(f.idx))
		g.p("if x == nil { x = d.new%s(); %s = x; mg = false }", sub, dst)
		memo := ""
		if memoized[f.sub.md.FullName()] {
			memo = "Memo"
		}
		g.p("if err := d.dec%s%s(v, x, s.sub(%d), mg); err != nil { return err }", sub, memo, f.idx)
	}
	g.p("set |= %s", bit(f.idx))
	g.p("continue")
	g.p("}")
	if f.oneofField != "" {
		of := "m." + f.oneofField
		g.p("// Not selected: the oneof now holds this member, which the plan drops.")
		g.p("if %s != nil { d.release%s%s(%s); %s = nil }", of, m.name, f.oneofField, of, of)
	}
}

// emitClears writes the clearing of the fields b did not set.
func (g *generator) emitClears(m *message) {
	done := map[string]bool{}
	for _, f := range m.fields {
		fd := f.fd
		dst := "m." + f.goName
		switch {
		case f.oneofField != "":
			if done[f.oneofField] {
				continue
			}
			done[f.oneofField] = true
			of := "m." + f.oneofField
			g.p("if set&%#x == 0 && %s != nil { d.release%s%s(%s); %s = nil }", oneofMask(m, f), of, m.name, f.oneofField, of, of)
			continue
		case fd.IsList():
			g.p("if set&(%s) == 0 { %s = %s[:0] }", bit(f.idx), dst, dst)
		case fd.Kind() == protoreflect.MessageKind:
			g.p("if set&(%s) == 0 && %s != nil { d.free%s = append(d.free%s, %s); %s = nil }", bit(f.idx), dst, f.sub.name, f.sub.name, dst, dst)
		case fd.Kind() == protoreflect.StringKind:
			g.p(`if set&(%s) == 0 { %s = "" }`, bit(f.idx), dst)
		case fd.Kind() == protoreflect.BytesKind:
			g.p("if set&(%s) == 0 { %s = nil }", bit(f.idx), dst)
		case fd.Kind() == protoreflect.BoolKind:
			g.p("if set&(%s) == 0 { %s = false }", bit(f.idx), dst)
		default:
			g.p("if set&(%s) == 0 { %s = 0 }", bit(f.idx), dst)
		}
	}
}

// emitReleases writes, per oneof of m, the function that puts the wrapper
// a oneof holds (with its message) back into the pools.
func (g *generator) emitReleases(m *message) {
	done := map[string]bool{}
	for _, f := range m.fields {
		if f.oneofField == "" || done[f.oneofField] {
			continue
		}
		done[f.oneofField] = true
		g.p("func (d *Decoder) release%s%s(x any) {", m.name, f.oneofField)
		g.p("switch w := x.(type) {")
		for _, o := range m.fields {
			if o.oneofField != f.oneofField {
				continue
			}
			s := shortName(o.wrapper)
			g.p("case *%s:", o.wrapper)
			g.p("d.free%s = append(d.free%s, w)", s, s)
		}
		g.p("}")
		g.p("}")
		g.p("")
	}
}
