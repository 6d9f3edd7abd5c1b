package fieldmask

import (
	"reflect"
	"strings"
	"unsafe"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The fast path of Copy: the compiled tree addresses the fields of the
// generated Go structs directly (offsets resolved once at Compile time from the
// protobuf struct tags), so applying a mask costs a few typed loads and stores
// per path and allocates nothing once dst's intermediates exist. Fields that
// are members of a (non-synthetic) oneof have no struct field of their own; a
// node containing one falls back to protoreflect for that field's subtree.

type fastKind uint8

const (
	kindPtr    fastKind = iota + 1 // message pointer, map or proto3 optional pointer
	kindString                     // string
	kindSlice                      // any slice (bytes, repeated)
	kind1                          // 1-byte scalar (bool)
	kind4                          // 4-byte scalar (int32, uint32, enum, float)
	kind8                          // 8-byte scalar (int64, uint64, double)
	kindSlow                       // oneof member: protoreflect
	kindIface                      // oneof wrapper interface (Prune only)
)

// clearOp zeroes one struct field (Prune of a field the mask does not keep).
type clearOp struct {
	off  uintptr
	kind fastKind
}

type fastField struct {
	off  uintptr
	kind fastKind
	fd   protoreflect.FieldDescriptor
	idx  int       // index in the protoreflect node's fields
	next *fastNode // nested path; nil for a leaf
	slow *node     // kindSlow: the protoreflect subtree (nil for a leaf)
}

type fastNode struct {
	typ    reflect.Type // struct type of the message
	fields []fastField
	// slow is the protoreflect node of the same message, used for kindSlow fields.
	slow *node
	// clears zeroes the fields the mask does not keep; pruneSlow is set when
	// the mask names a oneof member here (Prune then uses protoreflect).
	clears    []clearOp
	pruneSlow bool
}

// compileFast builds the fast tree for n (a message of Go struct type typ).
func compileFast(n *node, typ reflect.Type) *fastNode {
	fn := &fastNode{typ: typ, slow: n}
	for i := range n.fields {
		f := &n.fields[i]
		ff := fastField{fd: f.fd, idx: i}
		sf, ok := structField(typ, string(f.fd.Name()))
		if !ok || (f.fd.ContainingOneof() != nil && !f.fd.ContainingOneof().IsSynthetic()) {
			ff.kind = kindSlow
			ff.slow = f.next
			fn.fields = append(fn.fields, ff)
			continue
		}
		ff.off = sf.Offset
		switch sf.Type.Kind() {
		case reflect.Pointer, reflect.Map:
			ff.kind = kindPtr
		case reflect.String:
			ff.kind = kindString
		case reflect.Slice:
			ff.kind = kindSlice
		case reflect.Bool, reflect.Int8, reflect.Uint8:
			ff.kind = kind1
		case reflect.Int32, reflect.Uint32, reflect.Float32:
			ff.kind = kind4
		case reflect.Int64, reflect.Uint64, reflect.Float64:
			ff.kind = kind8
		default:
			ff.kind = kindSlow
			ff.slow = f.next
			fn.fields = append(fn.fields, ff)
			continue
		}
		if f.next != nil {
			if ff.kind != kindPtr || sf.Type.Kind() != reflect.Pointer {
				ff.kind = kindSlow
				ff.slow = f.next
			} else {
				ff.next = compileFast(f.next, sf.Type.Elem())
			}
		}
		fn.fields = append(fn.fields, ff)
	}
	fn.compileClears()
	return fn
}

// compileClears lists the generated fields of the message the mask does not
// keep.
func (n *fastNode) compileClears() {
	kept := map[uintptr]bool{}
	for _, f := range n.fields {
		if f.kind == kindSlow {
			n.pruneSlow = true
		}
		kept[f.off] = true
	}
	for i := 0; i < n.typ.NumField(); i++ {
		sf := n.typ.Field(i)
		if sf.Tag.Get("protobuf") == "" && sf.Tag.Get("protobuf_oneof") == "" {
			continue
		}
		if kept[sf.Offset] {
			continue
		}
		op := clearOp{off: sf.Offset}
		switch sf.Type.Kind() {
		case reflect.Pointer, reflect.Map:
			op.kind = kindPtr
		case reflect.String:
			op.kind = kindString
		case reflect.Slice:
			op.kind = kindSlice
		case reflect.Bool, reflect.Int8, reflect.Uint8:
			op.kind = kind1
		case reflect.Int32, reflect.Uint32, reflect.Float32:
			op.kind = kind4
		case reflect.Int64, reflect.Uint64, reflect.Float64:
			op.kind = kind8
		case reflect.Interface:
			op.kind = kindIface
		default:
			n.pruneSlow = true
			continue
		}
		n.clears = append(n.clears, op)
	}
}

// prune clears, in the message at p, every field the mask does not keep,
// recursing into kept nested messages that exist.
func (n *fastNode) prune(p unsafe.Pointer) {
	if n.pruneSlow {
		n.slow.prune(n.message(p))
		return
	}
	for _, c := range n.clears {
		d := unsafe.Add(p, c.off)
		switch c.kind {
		case kindPtr:
			*(*unsafe.Pointer)(d) = nil
		case kindString:
			*(*string)(d) = ""
		case kindSlice:
			*(*[]byte)(d) = nil
		case kind1:
			*(*uint8)(d) = 0
		case kind4:
			*(*uint32)(d) = 0
		case kind8:
			*(*uint64)(d) = 0
		case kindIface:
			*(*any)(d) = nil
		}
	}
	for i := range n.fields {
		f := &n.fields[i]
		if f.next == nil {
			continue
		}
		if sub := *(*unsafe.Pointer)(unsafe.Add(p, f.off)); sub != nil {
			f.next.prune(sub)
		}
	}
}

// structField finds the Go struct field generated for the proto field name.
func structField(typ reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < typ.NumField(); i++ {
		sf := typ.Field(i)
		tag := sf.Tag.Get("protobuf")
		if tag == "" {
			continue
		}
		for _, part := range strings.Split(tag, ",") {
			if part == "name="+name {
				return sf, true
			}
		}
	}
	return reflect.StructField{}, false
}

// copy applies the mask at this level. src may be nil (the parent lacks this
// message): every masked leaf is then cleared, and intermediates are still
// created in dst, as Cilium does.
func (n *fastNode) copy(dst, src unsafe.Pointer) {
	for i := range n.fields {
		f := &n.fields[i]
		d := unsafe.Add(dst, f.off)
		if f.next != nil {
			sub := *(*unsafe.Pointer)(d)
			if sub == nil {
				sub = reflect.New(f.next.typ).UnsafePointer()
				*(*unsafe.Pointer)(d) = sub
			}
			var ssub unsafe.Pointer
			if src != nil {
				ssub = *(*unsafe.Pointer)(unsafe.Add(src, f.off))
			}
			f.next.copy(sub, ssub)
			continue
		}
		if src == nil {
			switch f.kind {
			case kindPtr:
				*(*unsafe.Pointer)(d) = nil
			case kindString:
				*(*string)(d) = ""
			case kindSlice:
				*(*[]byte)(d) = nil
			case kind1:
				*(*uint8)(d) = 0
			case kind4:
				*(*uint32)(d) = 0
			case kind8:
				*(*uint64)(d) = 0
			case kindSlow:
				n.copySlow(f, dst, nil)
			}
			continue
		}
		s := unsafe.Add(src, f.off)
		switch f.kind {
		case kindPtr:
			*(*unsafe.Pointer)(d) = *(*unsafe.Pointer)(s)
		case kindString:
			*(*string)(d) = *(*string)(s)
		case kindSlice:
			if v := *(*[]byte)(s); len(v) > 0 {
				*(*[]byte)(d) = v
			} else {
				*(*[]byte)(d) = nil
			}
		case kind1:
			*(*uint8)(d) = *(*uint8)(s)
		case kind4:
			*(*uint32)(d) = *(*uint32)(s)
		case kind8:
			*(*uint64)(d) = *(*uint64)(s)
		case kindSlow:
			n.copySlow(f, dst, src)
		}
	}
}

// copySlow handles one oneof-member field through protoreflect.
func (n *fastNode) copySlow(f *fastField, dst, src unsafe.Pointer) {
	dm := n.message(dst)
	var sm protoreflect.Message
	if src != nil {
		sm = n.message(src)
	} else {
		sm = reflect.Zero(reflect.PointerTo(n.typ)).Interface().(proto.Message).ProtoReflect()
	}
	n.slow.copyField(f.idx, dm, sm)
}

func (n *fastNode) message(p unsafe.Pointer) protoreflect.Message {
	return reflect.NewAt(n.typ, p).Interface().(proto.Message).ProtoReflect()
}
