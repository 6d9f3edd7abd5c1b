// Package fieldmask_test compares flowaudit's pkg/fieldmask with Cilium
// v1.18.4's pkg/hubble/parser/fieldmask, used the way the exporter uses it
// (New + Alloc once, Copy per flow), on the exported JSON bytes.
package fieldmask_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	ciliumfm "github.com/cilium/cilium/pkg/hubble/parser/fieldmask"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/test/compat/internal/random"
)

// randomFill sets a random subset of m's fields (recursively) to random values,
// so every field of Flow, absent parents and every oneof member occur.
func randomFill(r *rand.Rand, m protoreflect.Message, depth int) {
	fds := m.Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if r.IntN(3) == 0 || (fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Any") {
			continue // Any needs a resolvable type_url to encode; the mask treats it as any message
		}
		if oo := fd.ContainingOneof(); oo != nil && m.WhichOneof(oo) != nil && r.IntN(2) == 0 {
			continue
		}
		switch {
		case fd.IsMap():
			continue
		case fd.IsList():
			l := m.Mutable(fd).List()
			for n := r.IntN(3); n > 0; n-- {
				if fd.Message() != nil {
					if depth > 3 {
						break
					}
					e := l.NewElement()
					randomFill(r, e.Message(), depth+1)
					l.Append(e)
				} else {
					l.Append(scalar(r, fd))
				}
			}
		case fd.Message() != nil:
			if depth > 3 {
				continue
			}
			randomFill(r, m.Mutable(fd).Message(), depth+1)
		default:
			m.Set(fd, scalar(r, fd))
		}
	}
}

func scalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(r.IntN(vals.Len())).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(r.IntN(1000)))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if fd.FullName() == "google.protobuf.Timestamp.seconds" {
			return protoreflect.ValueOfInt64(1_700_000_000 + int64(r.IntN(1000)))
		}
		return protoreflect.ValueOfInt64(int64(r.IntN(1 << 20)))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(r.IntN(70000)))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(r.IntN(1 << 20)))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(r.IntN(100)) / 4)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(float64(r.IntN(100)) / 4)
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{byte(r.IntN(256))})
	default:
		if fd.FullName() == "google.protobuf.Timestamp.nanos" {
			return protoreflect.ValueOfInt32(int32(r.IntN(1e9)))
		}
		return protoreflect.ValueOfString([]string{"a", "kube-system", "x-wing", "10.0.0.1"}[r.IntN(4)])
	}
}

// export encodes a masked flow as Cilium's exporter does.
func export(t testing.TB, m *flowpb.Flow) string {
	b, err := json.Marshal(&observerpb.ExportEvent{Time: m.GetTime(), NodeName: m.GetNodeName(), ResponseTypes: &observerpb.ExportEvent_Flow{Flow: m}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCopyMatchesCilium applies random masks to random and generated flows
// with both implementations and compares the exported bytes.
func TestCopyMatchesCilium(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	paths := random.AllPaths()
	g, err := gen.New(gen.Config{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	const masks, flowsPerMask = 500, 220 // 110k flows
	total, cross, crossFlows := 0, 0, 0
	for mi := 0; mi < masks; mi++ {
		mp := random.Mask(r, paths)
		if mi == 0 {
			mp = strings.Split(docMask, ",")
		}
		for random.CrossesOneof(mp) {
			cross++
			crossFlows += checkCrossing(t, r, g, mp)
			mp = random.Mask(r, paths)
		}
		ours, err := fieldmask.Compile(mp)
		if err != nil {
			t.Fatalf("mask %v: %v", mp, err)
		}
		theirs, err := ciliumfm.New(&fieldmaskpb.FieldMask{Paths: append([]string(nil), mp...)})
		if err != nil {
			t.Fatal(err)
		}
		cdst, odst := &flowpb.Flow{}, &flowpb.Flow{}
		theirs.Alloc(cdst.ProtoReflect())
		for fi := 0; fi < flowsPerMask; fi++ {
			var src *flowpb.Flow
			if fi%2 == 0 {
				src = &flowpb.Flow{}
				randomFill(r, src.ProtoReflect(), 1)
			} else {
				for src == nil {
					src = g.Next().GetFlow()
				}
			}
			theirs.Copy(cdst.ProtoReflect(), src.ProtoReflect())
			ours.Copy(odst, src)
			if w, got := export(t, cdst), export(t, odst); w != got {
				t.Fatalf("mask %v flow %d:\n got %s\nwant %s", ours.Paths(), fi, got, w)
			}
			total++
		}
	}
	t.Logf("%d flows compared; %d oneof-crossing masks checked against the 1.19 semantics on %d flows", total, cross, crossFlows)
	if crossFlows == 0 {
		t.Fatal("no oneof-crossing mask was checked")
	}
	if total < 100_000 {
		t.Fatalf("only %d flows compared", total)
	}
}

// TestOneofCrossingDiffersFrom118 pins the documented deviation: flowaudit
// produces only the oneof member the flow holds (Cilium >= 1.19), while
// Cilium 1.18.4 flips the oneof while iterating a Go map.
func TestOneofCrossingDiffersFrom118(t *testing.T) {
	mp := []string{"l4.TCP.destination_port", "l4.UDP.destination_port"}
	ours, err := fieldmask.Compile(mp)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := ciliumfm.New(&fieldmaskpb.FieldMask{Paths: append([]string(nil), mp...)})
	if err != nil {
		t.Fatal(err)
	}
	tcp := &flowpb.Flow{L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 1, DestinationPort: 443}}}}
	udp := &flowpb.Flow{L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: 2, DestinationPort: 53}}}}
	cases := []struct {
		src  *flowpb.Flow
		want string
	}{
		{tcp, `{"flow":{"l4":{"TCP":{"destination_port":443}}}}`},
		{udp, `{"flow":{"l4":{"UDP":{"destination_port":53}}}}`},
		{&flowpb.Flow{}, `{"flow":{"l4":{}}}`},
	}
	odst, cdst := &flowpb.Flow{}, &flowpb.Flow{}
	theirs.Alloc(cdst.ProtoReflect())
	differs := false
	for i := 0; i < 50; i++ {
		for _, c := range cases {
			ours.Copy(odst, c.src)
			if got := export(t, odst); got != c.want {
				t.Fatalf("got %s want %s", got, c.want)
			}
			theirs.Copy(cdst.ProtoReflect(), c.src.ProtoReflect())
			if export(t, cdst) != c.want {
				differs = true
			}
		}
	}
	if !differs {
		t.Fatal("Cilium 1.18.4 matched the 1.19 semantics on every run; the documented deviation is gone")
	}
}

// TestCompileErrorsLikeFieldmaskpb checks validation against fieldmaskpb.New
// on every valid path plus mutations of them.
func TestCompileErrorsLikeFieldmaskpb(t *testing.T) {
	var cands []string
	for _, p := range random.AllPaths() {
		cands = append(cands, p, strings.ToLower(p), p+".x", p+".value", "."+p, p+".", strings.ToUpper(p))
	}
	cands = append(cands, "", "ip", "sourcePod", "egress_allowed_by.name", "source.labels.x")
	for _, p := range cands {
		_, want := fieldmaskpb.New(&flowpb.Flow{}, p)
		_, got := fieldmask.Compile([]string{p})
		if (want == nil) != (got == nil) || (want != nil && want.Error() != got.Error()) {
			t.Fatalf("path %q: got %v want %v", p, got, want)
		}
	}
}

func benchFlows(b *testing.B) []*flowpb.Flow {
	g, err := gen.New(gen.Config{Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	var out []*flowpb.Flow
	for len(out) < 1024 {
		if f := g.Next().GetFlow(); f != nil {
			out = append(out, f)
		}
	}
	return out
}

const docMask = "time,source.namespace,source.pod_name,destination.namespace,destination.pod_name,l4,IP,node_name,is_reply,verdict,drop_reason_desc"

func BenchmarkCopyDocMask(b *testing.B) {
	flows := benchFlows(b)
	b.Run("cilium", func(b *testing.B) {
		fm, err := ciliumfm.New(&fieldmaskpb.FieldMask{Paths: strings.Split(docMask, ",")})
		if err != nil {
			b.Fatal(err)
		}
		dst := &flowpb.Flow{}
		fm.Alloc(dst.ProtoReflect())
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			fm.Copy(dst.ProtoReflect(), flows[i%len(flows)].ProtoReflect())
		}
	})
	b.Run("flowaudit", func(b *testing.B) {
		m, err := fieldmask.Compile(fieldmask.ParsePaths(docMask))
		if err != nil {
			b.Fatal(err)
		}
		dst := &flowpb.Flow{}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			m.Copy(dst, flows[i%len(flows)])
		}
	})
}

// reduceForFlow returns the paths the 1.19 semantics apply to src: paths that
// go nested into a oneof member src does not hold are dropped when the mask
// also names another member of that oneof (as a leaf or nested). ok is false when some
// such oneof's parent would be left with no path at all (then 1.19 exports an
// empty parent, which no path of the reduced mask reproduces in 1.18).
func reduceForFlow(paths []string, src *flowpb.Flow) (out []string, ok bool) {
	fm := &fieldmaskpb.FieldMask{Paths: append([]string(nil), paths...)}
	fm.Normalize()
	type key struct{ parent, oneof string }
	nested := map[key]map[string]bool{}
	split := func(p string) (parent string, fd protoreflect.FieldDescriptor, nestedInto bool, msg protoreflect.Message) {
		parts := strings.Split(p, ".")
		m := src.ProtoReflect()
		for i, part := range parts {
			fd := m.Descriptor().Fields().ByName(protoreflect.Name(part))
			if oo := fd.ContainingOneof(); oo != nil && !oo.IsSynthetic() {
				return strings.Join(parts[:i], "."), fd, i < len(parts)-1, m
			}
			if i < len(parts)-1 {
				m = m.Get(fd).Message()
			}
		}
		return "", nil, false, nil
	}
	for _, p := range fm.GetPaths() {
		if parent, fd, _, _ := split(p); fd != nil {
			k := key{parent, string(fd.ContainingOneof().Name())}
			if nested[k] == nil {
				nested[k] = map[string]bool{}
			}
			nested[k][string(fd.Name())] = true
		}
	}
	kept := map[string]bool{}
	for _, p := range fm.GetPaths() {
		parent, fd, isNested, m := split(p)
		if fd != nil && isNested && len(nested[key{parent, string(fd.ContainingOneof().Name())}]) > 1 && !m.Has(fd) {
			continue
		}
		out = append(out, p)
		if isNested {
			kept[parent] = true
		}
	}
	for k, members := range nested {
		if len(members) > 1 && !kept[k.parent] {
			// Does another kept path still create k.parent?
			found := false
			for _, p := range out {
				if strings.HasPrefix(p, k.parent+".") {
					found = true
				}
			}
			if !found {
				return nil, false
			}
		}
	}
	return out, true
}

// checkCrossing applies a oneof-crossing mask to random flows and compares
// with Cilium 1.18.4 running the mask reduced to the members each flow holds
// (what 1.19 produces). It returns the number of flows compared.
func checkCrossing(t *testing.T, r *rand.Rand, g *gen.Generator, mp []string) int {
	ours, err := fieldmask.Compile(mp)
	if err != nil {
		t.Fatal(err)
	}
	odst := &flowpb.Flow{}
	n := 0
	for fi := 0; fi < 40; fi++ {
		var src *flowpb.Flow
		if fi%2 == 0 {
			src = &flowpb.Flow{}
			randomFill(r, src.ProtoReflect(), 1)
		} else {
			for src == nil {
				src = g.Next().GetFlow()
			}
		}
		ours.Copy(odst, src)
		red, ok := reduceForFlow(mp, src)
		if !ok {
			continue
		}
		theirs, err := ciliumfm.New(&fieldmaskpb.FieldMask{Paths: red})
		if err != nil {
			t.Fatal(err)
		}
		cdst := &flowpb.Flow{}
		theirs.Alloc(cdst.ProtoReflect())
		theirs.Copy(cdst.ProtoReflect(), src.ProtoReflect())
		if w, got := export(t, cdst), export(t, odst); w != got {
			t.Fatalf("oneof-crossing mask %v (reduced %v) flow %d:\n got %s\nwant %s", ours.Paths(), red, fi, got, w)
		}
		n++
	}
	return n
}
