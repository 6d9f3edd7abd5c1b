package fieldmask

import (
	"reflect"
	"slices"
	"strings"
	"unsafe"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// ParsePaths splits a hubble-export-fieldmask value exactly as Cilium's
// configuration decoder does (mapstructure's comma split, then hive's
// fixupStringSliceHookFunc): on ",", and when that yields a single element,
// again with strings.Fields (what Helm renders, space-joined). Nothing is
// trimmed, so "time, verdict" yields " verdict", which Compile rejects as
// Cilium does. An empty value yields nil. The result is a new slice owned by
// the caller.
func ParsePaths(s string) []string {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	if len(parts) == 1 {
		parts = strings.Fields(parts[0])
	}
	if len(parts) == 0 {
		return nil
	}
	return parts
}

// node is one message level of a compiled mask.
type node struct {
	fields []field
	// keep[i] says whether field number-index i of the message survives Prune.
	desc protoreflect.MessageDescriptor
}

type field struct {
	fd   protoreflect.FieldDescriptor
	next *node // nil for a leaf: the whole field is kept
	// siblings is set for a nested oneof member when the mask names other
	// members of the same oneof (the case Cilium 1.18 gets wrong).
	crossesOneof bool
}

// Mask is a compiled field mask. It is immutable and safe for concurrent use;
// Copy and Prune write only to the message they are given.
type Mask struct {
	paths []string
	root  *node
	fast  *fastNode
}

// Compile validates paths against flow.Flow exactly as Cilium does
// (fieldmaskpb.New, so the same error text for an invalid path), normalises
// them, and compiles the mask. No paths gives an inactive mask.
func Compile(paths []string) (*Mask, error) {
	if len(paths) == 0 {
		return &Mask{}, nil
	}
	fm, err := fieldmaskpb.New(&flowpb.Flow{}, paths...)
	if err != nil {
		return nil, err
	}
	fm.Normalize()
	m := &Mask{paths: fm.GetPaths(), root: &node{desc: (&flowpb.Flow{}).ProtoReflect().Descriptor()}}
	for _, p := range m.paths {
		m.root.add(strings.Split(p, "."))
	}
	m.root.markOneofs()
	m.fast = compileFast(m.root, reflect.TypeOf((*flowpb.Flow)(nil)).Elem())
	return m, nil
}

func (n *node) add(parts []string) {
	fd := n.desc.Fields().ByName(protoreflect.Name(parts[0]))
	i := slices.IndexFunc(n.fields, func(f field) bool { return f.fd == fd })
	if i < 0 {
		n.fields = append(n.fields, field{fd: fd})
		i = len(n.fields) - 1
	}
	if len(parts) == 1 {
		n.fields[i].next = nil
		return
	}
	if n.fields[i].next == nil {
		n.fields[i].next = &node{desc: fd.Message()}
	}
	n.fields[i].next.add(parts[1:])
}

func (n *node) markOneofs() {
	for i := range n.fields {
		f := &n.fields[i]
		if oo := f.fd.ContainingOneof(); oo != nil && f.next != nil {
			for _, g := range n.fields {
				if g.fd != f.fd && g.fd.ContainingOneof() == oo {
					f.crossesOneof = true
				}
			}
		}
		if f.next != nil {
			f.next.markOneofs()
		}
	}
}

// CrossesOneof reports whether the mask names two members of one oneof,
// one of them with a nested path: what Cilium 1.18's own field mask gets
// wrong (see Copy), so a server of that version must not be sent it.
func (m *Mask) CrossesOneof() bool { return m.Active() && m.root.crosses() }

func (n *node) crosses() bool {
	for i := range n.fields {
		if f := &n.fields[i]; f.crossesOneof || (f.next != nil && f.next.crosses()) {
			return true
		}
	}
	return false
}

// Active reports whether the mask does anything.
func (m *Mask) Active() bool { return m != nil && m.root != nil }

// Paths returns the normalised paths.
func (m *Mask) Paths() []string { return slices.Clone(m.paths) }

// Fields returns the Flow paths the mask keeps (every field when inactive).
func (m *Mask) Fields() flow.FieldSet {
	if !m.Active() {
		return flow.AllFields()
	}
	return flow.Fields(m.paths...)
}

// Copy makes dst the exported view of src, with the semantics of Cilium's
// exporter: leaves are set from src (messages and lists shared by reference,
// so dst is valid while src is unchanged) or cleared; every intermediate
// message on a nested path exists in dst even when src lacks it (so a mask
// "source.pod_name" exports "source":{} for a flow without source, and
// "is_reply.value" exports false where is_reply is absent).
//
// The one deliberate difference from Cilium 1.18: when nested paths cross
// members of one oneof (l4.TCP.x with l4.UDP.y), only the member src holds is
// produced, as in Cilium >= 1.19; 1.18 flips the oneof while iterating a Go
// map and produces wrong, nondeterministic output. A oneof is "crossed" when
// the mask names two of its members and at least one of them with a nested
// path.
//
// Ownership: dst is reused across calls and belongs to this Mask (pass a fresh
// Flow or one only ever used with this Mask); its intermediate messages are
// allocated on first use and reused, so steady-state calls allocate nothing.
// dst aliases src's leaf messages, lists and strings, so it is valid only while
// src is unchanged; neither may be modified through the other. src is not
// modified. Concurrent calls need distinct dst.
func (m *Mask) Copy(dst, src *flowpb.Flow) {
	if !m.Active() {
		return
	}
	var sp unsafe.Pointer
	if src != nil {
		sp = unsafe.Pointer(src)
	}
	m.fast.copy(unsafe.Pointer(dst), sp)
}

func (n *node) copy(dst, src protoreflect.Message) {
	for i := range n.fields {
		n.copyField(i, dst, src)
	}
}

// copyField applies the mask's i-th field of this level.
func (n *node) copyField(i int, dst, src protoreflect.Message) {
	f := &n.fields[i]
	if f.next == nil {
		if src.IsValid() && src.Has(f.fd) {
			dst.Set(f.fd, src.Get(f.fd))
		} else {
			dst.Clear(f.fd)
		}
		return
	}
	if f.crossesOneof {
		// Produce this member only if src holds it; a member src does not
		// hold is left to the member that src holds.
		if !src.IsValid() || !src.Has(f.fd) {
			if dst.Has(f.fd) && !n.srcHoldsOtherMember(src, f) {
				dst.Clear(f.fd)
			}
			return
		}
	}
	f.next.copy(dst.Mutable(f.fd).Message(), src.Get(f.fd).Message())
}

// srcHoldsOtherMember reports whether src holds another member of f's oneof
// that the mask names (then that member's branch owns the oneof in dst).
func (n *node) srcHoldsOtherMember(src protoreflect.Message, f *field) bool {
	if !src.IsValid() {
		return false
	}
	oo := f.fd.ContainingOneof()
	if w := src.WhichOneof(oo); w != nil {
		for _, g := range n.fields {
			if g.fd == w {
				return true
			}
		}
	}
	return false
}

// Prune clears, in place, every field of f that the mask does not keep. It
// creates nothing: an absent parent stays absent. Used by the archive, where a
// masked-away field must be NULL. It allocates nothing; f is modified in place
// (messages f shares with other flows are modified too).
func (m *Mask) Prune(f *flowpb.Flow) {
	if !m.Active() || f == nil {
		return
	}
	m.fast.prune(unsafe.Pointer(f))
}

func (n *node) prune(msg protoreflect.Message) {
	fds := msg.Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if !msg.Has(fd) {
			continue
		}
		j := slices.IndexFunc(n.fields, func(f field) bool { return f.fd == fd })
		switch {
		case j < 0:
			msg.Clear(fd)
		case n.fields[j].next != nil:
			n.fields[j].next.prune(msg.Mutable(fd).Message())
		}
	}
}
