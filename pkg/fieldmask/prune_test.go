package fieldmask

import (
	"math/rand/v2"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// validPaths lists every valid mask path of flow.Flow down to depth 4.
func validPaths() []string {
	var out []string
	var walk func(md protoreflect.MessageDescriptor, prefix string, depth int)
	walk = func(md protoreflect.MessageDescriptor, prefix string, depth int) {
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			p := prefix + string(fd.Name())
			out = append(out, p)
			if fd.Message() != nil && !fd.IsList() && !fd.IsMap() && depth < 4 {
				walk(fd.Message(), p+".", depth+1)
			}
		}
	}
	walk((&flowpb.Flow{}).ProtoReflect().Descriptor(), "", 1)
	return out
}

// fill sets a random subset of m's fields, recursively, to non-zero values.
func fill(r *rand.Rand, m protoreflect.Message, depth int) {
	fds := m.Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if r.IntN(3) == 0 || fd.IsMap() {
			continue
		}
		switch {
		case fd.IsList():
			if fd.Message() == nil && fd.Kind() == protoreflect.StringKind {
				m.Mutable(fd).List().Append(protoreflect.ValueOfString("x"))
			} else if fd.Message() != nil && depth < 4 {
				l := m.Mutable(fd).List()
				e := l.NewElement()
				fill(r, e.Message(), depth+1)
				l.Append(e)
			}
		case fd.Message() != nil:
			if depth < 4 {
				fill(r, m.Mutable(fd).Message(), depth+1)
			}
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString("s"))
		case fd.Kind() == protoreflect.BoolKind:
			m.Set(fd, protoreflect.ValueOfBool(true))
		case fd.Kind() == protoreflect.EnumKind:
			m.Set(fd, protoreflect.ValueOfEnum(1))
		case fd.Kind() == protoreflect.BytesKind:
			m.Set(fd, protoreflect.ValueOfBytes([]byte{1}))
		case fd.Kind() == protoreflect.Int32Kind || fd.Kind() == protoreflect.Sint32Kind || fd.Kind() == protoreflect.Sfixed32Kind:
			m.Set(fd, protoreflect.ValueOfInt32(7))
		case fd.Kind() == protoreflect.Int64Kind || fd.Kind() == protoreflect.Sint64Kind || fd.Kind() == protoreflect.Sfixed64Kind:
			m.Set(fd, protoreflect.ValueOfInt64(7))
		case fd.Kind() == protoreflect.Uint32Kind || fd.Kind() == protoreflect.Fixed32Kind:
			m.Set(fd, protoreflect.ValueOfUint32(7))
		case fd.Kind() == protoreflect.Uint64Kind || fd.Kind() == protoreflect.Fixed64Kind:
			m.Set(fd, protoreflect.ValueOfUint64(7))
		case fd.Kind() == protoreflect.FloatKind:
			m.Set(fd, protoreflect.ValueOfFloat32(7))
		case fd.Kind() == protoreflect.DoubleKind:
			m.Set(fd, protoreflect.ValueOfFloat64(7))
		}
	}
}

// TestPruneFastMatchesReflect checks the struct-offset Prune against the
// protoreflect definition (clear every set field the mask does not name,
// recurse into named nested messages that exist) on random flows and masks.
func TestPruneFastMatchesReflect(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	paths := validPaths()
	for mi := 0; mi < 300; mi++ {
		mp := make([]string, 1+r.IntN(8))
		for i := range mp {
			mp[i] = paths[r.IntN(len(paths))]
		}
		m, err := Compile(mp)
		if err != nil {
			t.Fatal(err)
		}
		for fi := 0; fi < 20; fi++ {
			f := &flowpb.Flow{}
			fill(r, f.ProtoReflect(), 1)
			want := proto.Clone(f).(*flowpb.Flow)
			m.root.prune(want.ProtoReflect())
			m.Prune(f)
			if !proto.Equal(f, want) {
				t.Fatalf("mask %v: fast prune differs:\n got %v\nwant %v", m.Paths(), f, want)
			}
		}
	}
}
