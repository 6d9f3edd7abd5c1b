// Package gendec generates pkg/hubblejson's reflection-free JSON decoder and
// encoder for flowpb.Flow (codec_gen.go) from the protobuf descriptors of the Cilium
// version in go.mod, so that a Cilium upgrade that adds fields is one
// `go generate` away, and a test fails when the generated file is stale.
//
// The generated code follows protojson's rules for the common forms (field
// names in proto or JSON spelling, enums by name or number, 64-bit integers
// quoted or not, null as "not set", unknown fields skipped); every unusual
// form (escaped keys, exponents, Any, duplicate fields, ...) makes it return
// errFallback, and the caller decodes the line with protojson instead. It can
// therefore be faster than protojson, but never more lenient.
//
// The generator is one file, walking the descriptors once for the decoder
// and once for the encoder: the two must agree field for field, which is
// easiest to check when they are read side by side.
package gendec

import (
	"bytes"
	"fmt"
	"go/format"
	"reflect"
	"sort"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

type field struct {
	fd     protoreflect.FieldDescriptor
	idx    int
	goName string // struct field (or oneof wrapper field)
	names  []string
	// oneof members: the interface field and the wrapper type.
	oneofField, wrapper string
	oneofIdx            int
}

type message struct {
	md     protoreflect.MessageDescriptor
	goName string
	fields []field
	oneofs []string // Go field names, by oneof index
}

// Source returns the generated file.
func Source() ([]byte, error) {
	g := &generator{msgs: map[protoreflect.FullName]*message{}, enums: map[protoreflect.FullName]string{}}
	if err := g.walk(&flowpb.Flow{}); err != nil {
		return nil, err
	}
	g.numberMemos()
	g.emit()
	out, err := format.Source(g.buf.Bytes())
	if err != nil {
		return g.buf.Bytes(), fmt.Errorf("gendec: gofmt: %w", err)
	}
	return out, nil
}

type generator struct {
	buf   bytes.Buffer
	msgs  map[protoreflect.FullName]*message
	order []*message
	enums map[protoreflect.FullName]string // full name -> Go type
	// wrappers are the oneof wrapper Go types.
	wrappers []string
	// checkMemos and endpointMemos number the memoized and the
	// decodeMemoized fields: their memos in fastMemos.
	checkMemos, endpointMemos map[protoreflect.FullName]int
}

// numberMemos numbers the memoized fields in the order of the messages.
func (g *generator) numberMemos() {
	g.checkMemos, g.endpointMemos = map[protoreflect.FullName]int{}, map[protoreflect.FullName]int{}
	for _, m := range g.order {
		for _, f := range m.fields {
			if memoized(f.fd) {
				g.checkMemos[f.fd.FullName()] = len(g.checkMemos)
			}
			if decodeMemoized(f.fd) {
				g.endpointMemos[f.fd.FullName()] = len(g.endpointMemos)
			}
		}
	}
}

// decodeMemoized reports whether the decoded values of field fd are
// remembered (decEndpointMemo): the flow's endpoints.
func decodeMemoized(fd protoreflect.FieldDescriptor) bool {
	md := fd.Message()
	return md != nil && md.FullName() == "flow.Endpoint" && !fd.IsList() && !fd.IsMap()
}

// memoized reports whether the checked values of field fd are remembered
// (fastDec's memo): the fields that hold most of a flow's bytes and repeat
// from flow to flow, because they describe the endpoints (pods) and the
// policies of a node rather than one connection: the endpoints, their label
// lists, node labels, DNS names and the policy lists.
func memoized(fd protoreflect.FieldDescriptor) bool {
	if fd.IsMap() {
		return false
	}
	if md := fd.Message(); md != nil {
		switch md.FullName() {
		case "flow.Endpoint":
			return !fd.IsList()
		case "flow.Policy":
			return fd.IsList()
		}
		return false
	}
	return fd.IsList() && fd.Kind() == protoreflect.StringKind
}

func (g *generator) p(format string, args ...any) { fmt.Fprintf(&g.buf, format+"\n", args...) }

// walk records m's message type and every message type reachable from it.
func (g *generator) walk(m proto.Message) error {
	md := m.ProtoReflect().Descriptor()
	if _, ok := g.msgs[md.FullName()]; ok {
		return nil
	}
	rt := reflect.TypeOf(m).Elem()
	msg := &message{md: md, goName: rt.Name(), oneofs: make([]string, md.Oneofs().Len())}
	g.msgs[md.FullName()] = msg
	g.order = append(g.order, msg)
	if md.Fields().Len() > 64 {
		return fmt.Errorf("gendec: %s has %d fields; the decoder tracks at most 64", md.FullName(), md.Fields().Len())
	}
	byName := map[string]reflect.StructField{}
	oneofByName := map[string]reflect.StructField{}
	for i := 0; i < rt.NumField(); i++ {
		sf := rt.Field(i)
		if tag := sf.Tag.Get("protobuf"); tag != "" {
			for _, part := range strings.Split(tag, ",") {
				if name, ok := strings.CutPrefix(part, "name="); ok {
					byName[name] = sf
				}
			}
		}
		if o := sf.Tag.Get("protobuf_oneof"); o != "" {
			oneofByName[o] = sf
		}
	}
	var sub []proto.Message
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		f := field{fd: fd, idx: i, names: []string{string(fd.Name())}, oneofIdx: -1}
		if fd.JSONName() != string(fd.Name()) {
			f.names = append(f.names, fd.JSONName())
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			sf, ok := oneofByName[string(od.Name())]
			if !ok {
				return fmt.Errorf("gendec: %s: no Go field for oneof %s", md.FullName(), od.Name())
			}
			msg.oneofs[od.Index()] = sf.Name
			f.oneofField, f.oneofIdx = sf.Name, od.Index()
			getter, ok := reflect.PointerTo(rt).MethodByName("Get" + goCamel(string(fd.Name())))
			if !ok {
				return fmt.Errorf("gendec: %s: no getter for oneof member %s", md.FullName(), fd.Name())
			}
			_ = getter
			f.goName = goCamel(string(fd.Name()))
			f.wrapper = msg.goName + "_" + f.goName
			g.wrappers = append(g.wrappers, f.wrapper)
		} else {
			sf, ok := byName[string(fd.Name())]
			if !ok {
				return fmt.Errorf("gendec: %s: no Go field for %s", md.FullName(), fd.Name())
			}
			f.goName = sf.Name
			if fd.Enum() != nil {
				g.enums[fd.Enum().FullName()] = sf.Type.Name()
			}
		}
		if fd.IsMap() {
			return fmt.Errorf("gendec: %s.%s: map fields are not supported", md.FullName(), fd.Name())
		}
		switch fd.Kind() {
		case protoreflect.StringKind, protoreflect.BoolKind, protoreflect.EnumKind,
			protoreflect.Int32Kind, protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Int64Kind:
		case protoreflect.MessageKind:
			if fd.Message().FullName().Parent() != "google.protobuf" {
				sub = append(sub, reflect.New(goMessageType(rt, fd, f)).Interface().(proto.Message))
			}
		default:
			return fmt.Errorf("gendec: %s.%s: kind %v is not supported", md.FullName(), fd.Name(), fd.Kind())
		}
		if fd.Kind() == protoreflect.EnumKind && f.oneofField != "" {
			return fmt.Errorf("gendec: %s.%s: enum oneof members are not supported", md.FullName(), fd.Name())
		}
		msg.fields = append(msg.fields, f)
	}
	for _, s := range sub {
		if err := g.walk(s); err != nil {
			return err
		}
	}
	return nil
}

// goMessageType is the Go type (not pointer) of a message field's values.
func goMessageType(rt reflect.Type, fd protoreflect.FieldDescriptor, f field) reflect.Type {
	if f.oneofField != "" {
		m, _ := reflect.PointerTo(rt).MethodByName("Get" + f.goName)
		return m.Type.Out(0).Elem()
	}
	sf, _ := rt.FieldByName(f.goName)
	t := sf.Type
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t.Elem()
}

// goCamel is protoc-gen-go's GoCamelCase for the names used in flow.proto.
func goCamel(s string) string {
	var b strings.Builder
	up := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_':
			up = true
			continue
		case up && c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		up = false
		b.WriteByte(c)
	}
	return b.String()
}

func wkt(fd protoreflect.FieldDescriptor) string {
	if fd.Message() == nil || fd.Message().FullName().Parent() != "google.protobuf" {
		return ""
	}
	return string(fd.Message().Name())
}

func (g *generator) emit() {
	g.p("// Code generated by pkg/hubblejson/internal/gendec from the flowpb descriptors; DO NOT EDIT.")
	g.p("")
	g.p("package hubblejson")
	g.p("")
	g.p("import (")
	g.p("%q", "strconv")
	g.p("")
	g.p("flowpb %q", "github.com/cilium/cilium/api/v1/flow")
	g.p("%q", "google.golang.org/protobuf/types/known/timestamppb")
	g.p("%q", "google.golang.org/protobuf/types/known/wrapperspb")
	g.p(")")
	g.p("")
	// Free lists.
	g.p("// fastPools keeps nested messages detached from reused flows for the next")
	g.p("// flow, so that steady-state decoding allocates none.")
	g.p("type fastPools struct {")
	for _, m := range g.order[1:] {
		g.p("free%s []*flowpb.%s", m.goName, m.goName)
	}
	for _, w := range g.wrappers {
		g.p("free%s []*flowpb.%s", w, w)
	}
	g.p("freeTimestamp []*timestamppb.Timestamp")
	g.p("freeBoolValue []*wrapperspb.BoolValue")
	g.p("}")
	g.p("")
	// Learned member order.
	g.p("// fastSucc holds, per message type, the field that followed each field")
	g.p("// (and, at index len(fields), the first field) in the last object decoded:")
	g.p("// Hubble writes an object's members in one order, so the next member is")
	g.p("// tried as that field's exact \"name\": bytes before the name is scanned")
	g.p("// and looked up.")
	g.p("type fastSucc struct {")
	for _, m := range g.order {
		g.p("succ%s [%d]uint8", m.goName, len(m.fields)+1)
	}
	g.p("}")
	g.p("")
	// Scratch messages for checking fields that are not kept.
	g.p("// fastScratch holds, per message type, the message that fields outside the")
	g.p("// plan's selection are decoded into (strings not copied) to be checked as")
	g.p("// strictly as protojson checks them, then forgotten.")
	g.p("type fastScratch struct {")
	for _, m := range g.order {
		g.p("scr%s *flowpb.%s", m.goName, m.goName)
	}
	g.p("}")
	g.p("")
	g.p("// fastMemos holds a memo per memoized field of the values checked (see")
	g.p("// memo), and one per endpoint field of the endpoints decoded.")
	g.p("type fastMemos struct {")
	g.p("memos [%d]memo[struct{}]", len(g.checkMemos))
	g.p("endpoints [%d]memo[endpointDecoded]", len(g.endpointMemos))
	g.p("}")
	g.p("")
	types := []string{}
	for _, m := range g.order[1:] {
		types = append(types, "flowpb."+m.goName)
	}
	for _, w := range g.wrappers {
		types = append(types, "flowpb."+w)
	}
	types = append(types, "timestamppb.Timestamp", "wrapperspb.BoolValue")
	for _, t := range types {
		short := t[strings.IndexByte(t, '.')+1:]
		g.p("func (p *fastPools) new%s() *%s {", short, t)
		g.p("if n := len(p.free%s); n > 0 { x := p.free%s[n-1]; p.free%s = p.free%s[:n-1]; return x }", short, short, short, short)
		g.p("return new(%s)", t)
		g.p("}")
		g.p("")
	}
	// Enums.
	var enumNames []protoreflect.FullName
	enumDescs := map[protoreflect.FullName]protoreflect.EnumDescriptor{}
	for _, m := range g.order {
		for _, f := range m.fields {
			if ed := f.fd.Enum(); ed != nil {
				if _, ok := enumDescs[ed.FullName()]; !ok {
					enumNames = append(enumNames, ed.FullName())
					enumDescs[ed.FullName()] = ed
				}
			}
		}
	}
	sort.Slice(enumNames, func(i, j int) bool { return enumNames[i] < enumNames[j] })
	for _, n := range enumNames {
		ed := enumDescs[n]
		gt := g.enums[n]
		g.p("// enum%s maps a %s name to its number.", gt, n)
		g.p("func enum%s(b []byte) (flowpb.%s, bool) {", gt, gt)
		g.p("switch string(b) {")
		for i := 0; i < ed.Values().Len(); i++ {
			v := ed.Values().Get(i)
			g.p("case %q: return %d, true", v.Name(), v.Number())
		}
		g.p("}")
		g.p("return 0, false")
		g.p("}")
		g.p("")
	}
	for _, m := range g.order {
		g.emitMessage(m)
		g.emitCheck(m)
	}
	// Encoder: enum names, then one function per message.
	for _, n := range enumNames {
		ed := enumDescs[n]
		gt := g.enums[n]
		g.p("// name%s is the name of a %s number (false: not a known value).", gt, n)
		g.p("func name%s(v flowpb.%s) (string, bool) {", gt, gt)
		g.p("switch v {")
		seen := map[protoreflect.EnumNumber]bool{}
		for i := 0; i < ed.Values().Len(); i++ {
			v := ed.Values().Get(i)
			if seen[v.Number()] {
				continue // aliases: protojson writes the first name
			}
			seen[v.Number()] = true
			g.p("case %d: return %q, true", v.Number(), v.Name())
		}
		g.p("}")
		g.p(`return "", false`)
		g.p("}")
		g.p("")
	}
	for _, m := range g.order {
		g.emitEncoder(m)
	}
}

// emitEncoder writes enc<Msg>: protojson's output for the message with
// UseProtoNames (fields in declaration order, zero scalars and empty lists
// left out, set messages written even when empty), compacted and
// HTML-escaped as encoding/json's Encoder writes a Marshaler's output. It
// returns false where protojson must decide (Any, invalid UTF-8, timestamps
// out of range, a oneof wrapper holding nil).
func (g *generator) emitEncoder(m *message) {
	g.p("func enc%s(dst []byte, m *flowpb.%s) ([]byte, bool) {", m.goName, m.goName)
	g.p("dst = append(dst, '{')")
	g.p("first := true")
	g.p("ok := true")
	g.p("_ = ok")
	for _, f := range m.fields {
		fd := f.fd
		dst := "m." + f.goName
		open := func(cond string) {
			g.p("if %s {", cond)
			g.p("if !first { dst = append(dst, ',') }")
			g.p("first = false")
			g.p("dst = append(dst, %q...)", fmt.Sprintf("%q:", string(fd.Name())))
		}
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.StringKind:
			open(fmt.Sprintf("len(%s) > 0", dst))
			g.p("dst = append(dst, '[')")
			g.p("for n, s := range %s {", dst)
			g.p("if n > 0 { dst = append(dst, ',') }")
			g.p("if dst, ok = appendJSONString(dst, s); !ok { return dst, false }")
			g.p("}")
			g.p("dst = append(dst, ']')")
		case fd.IsList():
			sub := g.msgs[fd.Message().FullName()]
			open(fmt.Sprintf("len(%s) > 0", dst))
			g.p("dst = append(dst, '[')")
			g.p("for n, e := range %s {", dst)
			g.p("if e == nil { return dst, false }")
			g.p("if n > 0 { dst = append(dst, ',') }")
			g.p("if dst, ok = enc%s(dst, e); !ok { return dst, false }", sub.goName)
			g.p("}")
			g.p("dst = append(dst, ']')")
		case f.oneofField != "":
			sub := g.msgs[fd.Message().FullName()]
			g.p("if w, isSet := m.%s.(*flowpb.%s); isSet {", f.oneofField, f.wrapper)
			g.p("if w.%s == nil { return dst, false }", f.goName)
			g.p("if !first { dst = append(dst, ',') }")
			g.p("first = false")
			g.p("dst = append(dst, %q...)", fmt.Sprintf("%q:", string(fd.Name())))
			g.p("if dst, ok = enc%s(dst, w.%s); !ok { return dst, false }", sub.goName, f.goName)
		case fd.Kind() == protoreflect.MessageKind:
			switch wkt(fd) {
			case "Timestamp":
				open(dst + " != nil")
				g.p("if dst, ok = appendTimestamp(dst, %s); !ok { return dst, false }", dst)
			case "BoolValue":
				open(dst + " != nil")
				g.p("dst = strconv.AppendBool(dst, %s.Value)", dst)
			case "":
				open(dst + " != nil")
				g.p("if dst, ok = enc%s(dst, %s); !ok { return dst, false }", g.msgs[fd.Message().FullName()].goName, dst)
			default:
				g.p("if %s != nil {", dst)
				g.p("return dst, false")
			}
		case fd.Kind() == protoreflect.StringKind:
			open(dst + ` != ""`)
			g.p("if dst, ok = appendJSONString(dst, %s); !ok { return dst, false }", dst)
		case fd.Kind() == protoreflect.BoolKind:
			open(dst)
			g.p("dst = append(dst, \"true\"...)")
		case fd.Kind() == protoreflect.EnumKind:
			gt := g.enums[fd.Enum().FullName()]
			open(dst + " != 0")
			g.p("if name, known := name%s(%s); known {", gt, dst)
			g.p("dst = append(dst, '\"')")
			g.p("dst = append(dst, name...)")
			g.p("dst = append(dst, '\"')")
			g.p("} else {")
			g.p("dst = strconv.AppendInt(dst, int64(%s), 10)", dst)
			g.p("}")
		case fd.Kind() == protoreflect.Uint32Kind:
			open(dst + " != 0")
			g.p("dst = strconv.AppendUint(dst, uint64(%s), 10)", dst)
		case fd.Kind() == protoreflect.Int32Kind:
			open(dst + " != 0")
			g.p("dst = strconv.AppendInt(dst, int64(%s), 10)", dst)
		case fd.Kind() == protoreflect.Uint64Kind:
			open(dst + " != 0")
			g.p("dst = append(dst, '\"')")
			g.p("dst = strconv.AppendUint(dst, %s, 10)", dst)
			g.p("dst = append(dst, '\"')")
		case fd.Kind() == protoreflect.Int64Kind:
			open(dst + " != 0")
			g.p("dst = append(dst, '\"')")
			g.p("dst = strconv.AppendInt(dst, %s, 10)", dst)
			g.p("dst = append(dst, '\"')")
		default:
			panic(fmt.Sprintf("gendec: encode kind %v", fd.Kind()))
		}
		g.p("}")
	}
	g.p("return append(dst, '}'), true")
	g.p("}")
	g.p("")
}

// emitCheck writes check<Msg>Field: the value of field k decoded as
// dec<Msg> decodes it, into a scratch message and without copying strings,
// so that a field outside the plan's selection is still checked for its
// type, range, enum names and duplicates (protojson rejects the whole line
// for any of them, kept field or not) without being kept.
func (g *generator) emitCheck(m *message) {
	t := "flowpb." + m.goName
	g.p("// check%sField checks the value of field k at d.b[i:] without keeping it.", m.goName)
	g.p("// (A line Decode has checked whole is only skipped: see fastDec.checked.)")
	g.p("func (d *fastDec) check%sField(i int, k uint) (int, error) {", m.goName)
	g.p("if d.checked {")
	g.p("return d.skip(i, 0)")
	g.p("}")
	var cases []string
	for _, f := range m.fields {
		if n, ok := g.checkMemos[f.fd.FullName()]; ok {
			cases = append(cases, fmt.Sprintf("case %d: mo = &d.memos[%d] // %s", f.idx, n, f.fd.Name()))
		}
	}
	if len(cases) > 0 {
		g.p("var mo *memo[struct{}]")
		g.p("switch k {")
		for _, c := range cases {
			g.p("%s", c)
		}
		g.p("}")
		g.p("set := -1")
		g.p("if mo != nil {")
		g.p("var e *memoEntry[struct{}]")
		g.p("if e, set = mo.find(d.b, i); e != nil {")
		g.p("return i + len(e.b), nil")
		g.p("}")
		g.p("}")
	}
	g.p("d.noStore++")
	g.p("j, err := d.check%sFieldIn(i, k)", m.goName)
	g.p("d.noStore--")
	if len(cases) > 0 {
		g.p("if set >= 0 && err == nil {")
		g.p("mo.add(d.b, set, i, j)")
		g.p("}")
	}
	g.p("return j, err")
	g.p("}")
	g.p("")
	g.p("func (d *fastDec) check%sFieldIn(i int, k uint) (int, error) {", m.goName)
	g.p("m := d.scr%s", m.goName)
	g.p("if m == nil { m = new(%s); d.scr%s = m }", t, m.goName)
	g.p("var sel *fsel // everything below is checked")
	g.p("var err error")
	g.p("for range 1 { // the fields' code may continue (an unknown enum name)")
	g.emitFieldSwitch(m)
	g.p("}")
	g.p("_ = sel")
	g.p("return i, err")
	g.p("}")
	g.p("")
}

// emitFieldSwitch writes the switch that decodes field k's value into m.
func (g *generator) emitFieldSwitch(m *message) {
	g.p("switch k {")
	for _, f := range m.fields {
		g.p("case %d: // %s", f.idx, f.fd.Name())
		g.emitField(m, f)
	}
	g.p("}")
}

func (g *generator) emitMessage(m *message) {
	t := "flowpb." + m.goName
	g.p("// dec%s decodes the JSON object at d.b[i:] into m (every field m had is", m.goName)
	g.p("// overwritten or cleared), keeping only the fields sel selects.")
	g.p("func (d *fastDec) dec%s(i int, m *%s, sel *fsel) (int, error) {", m.goName, t)
	g.p("var seen, set uint64")
	if len(m.oneofs) > 0 {
		g.p("var oneofs uint64 // the oneofs already set")
	}
	g.p("i, err := d.objOpen(i)")
	g.p("if err != nil { return i, err }")
	g.p("prev := uint(%d) // before the first member", len(m.fields))
	g.p("for first := true; ; first = false {")
	if m.goName == "Flow" {
		g.p("if d.stopAt != 0 && seen&d.stopAt == d.stopAt { // the filter's fields are all decoded: see fastDec.stopAt")
		g.p("d.stopped = true")
		g.p("break")
		g.p("}")
	}
	g.p("var done bool")
	g.p("if i, done, err = d.objMore(i, first); err != nil { return i, err }")
	g.p("if done { break }")
	g.p("var k uint")
	g.p("p := d.succ%s[prev]", m.goName)
	g.p("if j := d.member%s(i, p); j > 0 {", m.goName)
	g.p("k = uint(p)")
	g.p("if i = d.ws(j); i >= len(d.b) { return i, errFallback }")
	g.p("} else {")
	g.p("var key []byte")
	g.p("if key, i, err = d.key(i); err != nil { return i, err }")
	g.p("switch string(key) {")
	for _, f := range m.fields {
		quoted := make([]string, len(f.names))
		for i, n := range f.names {
			quoted[i] = fmt.Sprintf("%q", n)
		}
		g.p("case %s: k = %d", strings.Join(quoted, ", "), f.idx)
	}
	g.p("default:")
	g.p("if i, err = d.skip(i, 0); err != nil { return i, err }")
	g.p("continue")
	g.p("}")
	g.p("d.succ%s[prev] = uint8(k)", m.goName)
	g.p("}")
	g.p("prev = k")
	g.p("if seen&(1<<k) != 0 { return i, errFallback } // duplicate field: protojson's error")
	g.p("seen |= 1 << k")
	g.p("if d.b[i] == 'n' {")
	g.p("if i, err = d.null(i); err != nil { return i, err }")
	g.p("continue")
	g.p("}")
	// oneof double set
	for oi := range m.oneofs {
		var mask uint64
		for _, f := range m.fields {
			if f.oneofIdx == oi {
				mask |= 1 << f.idx
			}
		}
		g.p("if (1<<k)&%#x != 0 {", mask)
		g.p("if oneofs&(1<<%d) != 0 { return i, errFallback } // oneof set twice", oi)
		g.p("oneofs |= 1 << %d", oi)
		g.p("}")
	}
	g.p("if !sel.has(k) {")
	g.p("if i, err = d.check%sField(i, k); err != nil { return i, err }", m.goName)
	g.p("continue")
	g.p("}")
	g.emitFieldSwitch(m)
	g.p("if err != nil { return i, err }")
	g.p("set |= 1 << k")
	g.p("}")
	// Clear what was not set.
	all := uint64(1)<<len(m.fields) - 1
	if len(m.fields) == 64 {
		all = ^uint64(0)
	}
	g.p("if set != %#x {", all)
	oneofDone := map[int]bool{}
	for _, f := range m.fields {
		if f.oneofIdx >= 0 {
			if oneofDone[f.oneofIdx] {
				continue
			}
			oneofDone[f.oneofIdx] = true
			var mask uint64
			for _, o := range m.fields {
				if o.oneofIdx == f.oneofIdx {
					mask |= 1 << o.idx
				}
			}
			g.p("if set&%#x == 0 && m.%s != nil {", mask, f.oneofField)
			g.p("d.release%s%s(m.%s)", m.goName, f.oneofField, f.oneofField)
			g.p("m.%s = nil", f.oneofField)
			g.p("}")
			continue
		}
		g.p("if set&(1<<%d) == 0 {", f.idx)
		g.emitClear(f)
		g.p("}")
	}
	g.p("}")
	g.p("return i, nil")
	g.p("}")
	g.p("")
	// The predicted member's name.
	g.p("// member%s returns the offset after `\"<name>\":` at d.b[i:] when field p's", m.goName)
	g.p("// name is there, else 0.")
	g.p("func (d *fastDec) member%s(i int, p uint8) int {", m.goName)
	g.p("if i >= len(d.b) { return 0 }")
	g.p("b := d.b[i:]")
	g.p("switch p {")
	for _, f := range m.fields {
		lit := fmt.Sprintf("%q:", f.names[0])
		g.p("case %d:", f.idx)
		g.p("if len(b) >= %d && string(b[:%d]) == %q { return i + %d }", len(lit), len(lit), lit, len(lit))
	}
	g.p("}")
	g.p("return 0")
	g.p("}")
	g.p("")
	// Oneof release helpers.
	for oi, of := range m.oneofs {
		g.p("func (d *fastDec) release%s%s(x any) {", m.goName, of)
		g.p("switch w := x.(type) {")
		for _, f := range m.fields {
			if f.oneofIdx != oi {
				continue
			}
			sub := g.msgs[f.fd.Message().FullName()]
			g.p("case *flowpb.%s:", f.wrapper)
			g.p("if w.%s != nil { d.free%s = append(d.free%s, w.%s); w.%s = nil }", f.goName, sub.goName, sub.goName, f.goName, f.goName)
			g.p("d.free%s = append(d.free%s, w)", f.wrapper, f.wrapper)
		}
		g.p("}")
		g.p("}")
		g.p("")
	}
}

func (g *generator) emitField(m *message, f field) {
	fd := f.fd
	dst := "m." + f.goName
	if fd.IsList() {
		switch fd.Kind() {
		case protoreflect.StringKind:
			g.p("%s, i, err = d.strList(i, %s[:0])", dst, dst)
		case protoreflect.MessageKind:
			sub := g.msgs[fd.Message().FullName()]
			g.p("if i, err = d.listOpen(i); err != nil { return i, err }")
			g.p("%s = %s[:0]", dst, dst)
			g.p("for lfirst := true; ; lfirst = false {")
			g.p("var ldone bool")
			g.p("if i, ldone, err = d.listMore(i, lfirst); err != nil { return i, err }")
			g.p("if ldone { break }")
			g.p("var e *flowpb.%s", sub.goName)
			g.p("if n := len(%s); n < cap(%s) {", dst, dst)
			g.p("%s = %s[:n+1]", dst, dst)
			g.p("if e = %s[n]; e == nil { e = d.new%s(); %s[n] = e }", dst, sub.goName, dst)
			g.p("} else {")
			g.p("e = d.new%s()", sub.goName)
			g.p("%s = append(%s, e)", dst, dst)
			g.p("}")
			g.p("if i, err = d.dec%s(i, e, sel.sub(k)); err != nil { return i, err }", sub.goName)
			g.p("}")
		default:
			panic(fmt.Sprintf("gendec: list of %v", fd.Kind()))
		}
		return
	}
	if f.oneofField != "" {
		sub := g.msgs[fd.Message().FullName()]
		g.p("w, ok := m.%s.(*flowpb.%s)", f.oneofField, f.wrapper)
		g.p("if !ok {")
		g.p("if m.%s != nil { d.release%s%s(m.%s) }", f.oneofField, m.goName, f.oneofField, f.oneofField)
		g.p("w = d.new%s()", f.wrapper)
		g.p("m.%s = w", f.oneofField)
		g.p("}")
		g.p("if w.%s == nil { w.%s = d.new%s() }", f.goName, f.goName, sub.goName)
		g.p("i, err = d.dec%s(i, w.%s, sel.sub(k))", sub.goName, f.goName)
		return
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		g.p("%s, i, err = d.str(i)", dst)
	case protoreflect.BoolKind:
		g.p("%s, i, err = d.boolean(i)", dst)
	case protoreflect.Uint32Kind:
		g.p("%s, i, err = d.u32(i)", dst)
	case protoreflect.Int32Kind:
		g.p("%s, i, err = d.i32(i)", dst)
	case protoreflect.Uint64Kind:
		g.p("%s, i, err = d.u64(i)", dst)
	case protoreflect.Int64Kind:
		g.p("%s, i, err = d.i64(i)", dst)
	case protoreflect.EnumKind:
		gt := g.enums[fd.Enum().FullName()]
		g.p("var name []byte")
		g.p("var num int32")
		g.p("if name, num, i, err = d.enum(i); err != nil { return i, err }")
		g.p("if name == nil {")
		g.p("%s = flowpb.%s(num)", dst, gt)
		g.p("} else if v, ok := enum%s(name); ok {", gt)
		g.p("%s = v", dst)
		g.p("} else {")
		g.p("continue // an unknown name leaves the field unset (DiscardUnknown)")
		g.p("}")
	case protoreflect.MessageKind:
		switch wkt(fd) {
		case "Timestamp":
			g.p("if %s == nil { %s = d.newTimestamp() }", dst, dst)
			g.p("i, err = d.timestamp(i, %s)", dst)
		case "BoolValue":
			g.p("if %s == nil { %s = d.newBoolValue() }", dst, dst)
			g.p("%s.Value, i, err = d.boolean(i)", dst)
		case "":
			sub := g.msgs[fd.Message().FullName()]
			g.p("if %s == nil { %s = d.new%s() }", dst, dst, sub.goName)
			if n, ok := g.endpointMemos[fd.FullName()]; ok {
				g.p("i, err = d.decEndpointMemo(&d.endpoints[%d], i, %s, sel.sub(k))", n, dst)
				break
			}
			g.p("i, err = d.dec%s(i, %s, sel.sub(k))", sub.goName, dst)
		default: // Any and other well-known types: protojson's business
			g.p("return i, errFallback")
		}
	default:
		panic(fmt.Sprintf("gendec: kind %v", fd.Kind()))
	}
}

func (g *generator) emitClear(f field) {
	fd := f.fd
	dst := "m." + f.goName
	switch {
	case fd.IsList():
		g.p("%s = %s[:0]", dst, dst)
	case fd.Kind() == protoreflect.MessageKind:
		short := string(fd.Message().Name())
		if w := wkt(fd); w == "" {
			short = g.msgs[fd.Message().FullName()].goName
		} else if w != "Timestamp" && w != "BoolValue" {
			g.p("%s = nil", dst)
			return
		}
		g.p("if %s != nil { d.free%s = append(d.free%s, %s); %s = nil }", dst, short, short, dst, dst)
	case fd.Kind() == protoreflect.StringKind:
		g.p(`%s = ""`, dst)
	case fd.Kind() == protoreflect.BoolKind:
		g.p("%s = false", dst)
	default:
		g.p("%s = 0", dst)
	}
}
