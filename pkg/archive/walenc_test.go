package archive

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

// randomMessage sets every field of m (one member of each oneof) to a
// random value, zero values included, down to depth levels of messages.
func randomMessage(r *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if od := fd.ContainingOneof(); od != nil && r.IntN(od.Fields().Len()+1) != 0 {
			continue // most members stay unset; the last one set wins
		}
		if fd.Message() != nil && (depth == 0 || r.IntN(4) == 0) {
			continue
		}
		if fd.IsList() {
			l := m.Mutable(fd).List()
			for n := r.IntN(4); n > 0; n-- {
				if fd.Message() != nil {
					e := l.NewElement()
					randomMessage(r, e.Message(), depth-1)
					l.Append(e)
				} else {
					l.Append(randomScalar(r, fd))
				}
			}
			continue
		}
		if fd.Message() != nil {
			v := m.NewField(fd)
			randomMessage(r, v.Message(), depth-1)
			m.Set(fd, v)
			continue
		}
		m.Set(fd, randomScalar(r, fd))
	}
}

func randomScalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	zero := r.IntN(4) == 0
	switch fd.Kind() {
	case protoreflect.StringKind:
		if zero {
			return protoreflect.ValueOfString("")
		}
		return protoreflect.ValueOfString(strings.Repeat("é-x", r.IntN(60)))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes(bytes.Repeat([]byte{0xff, 0}, r.IntN(3)))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(!zero)
	case protoreflect.EnumKind:
		if zero {
			return protoreflect.ValueOfEnum(0)
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(r.Int32N(200) - 20)) // unknown and negative numbers too
	case protoreflect.Int32Kind:
		if zero {
			return protoreflect.ValueOfInt32(0)
		}
		return protoreflect.ValueOfInt32(int32(r.Uint32()))
	case protoreflect.Int64Kind:
		if zero {
			return protoreflect.ValueOfInt64(0)
		}
		return protoreflect.ValueOfInt64(int64(r.Uint64()))
	case protoreflect.Uint32Kind:
		if zero {
			return protoreflect.ValueOfUint32(0)
		}
		return protoreflect.ValueOfUint32(r.Uint32() >> r.IntN(32))
	case protoreflect.Uint64Kind:
		if zero {
			return protoreflect.ValueOfUint64(0)
		}
		return protoreflect.ValueOfUint64(r.Uint64() >> r.IntN(64))
	}
	panic("unexpected kind " + fd.Kind().String())
}

// checkWalEncoding fails unless the row log's encoder writes f as
// proto.Marshal does (f has no unknown fields), length first, and the
// bytes read back as f.
func checkWalEncoding(t *testing.T, f *flowpb.Flow) {
	t.Helper()
	want, err := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var enc walEncoder
	got, err := enc.appendFlow([]byte("x"), f)
	if err != nil {
		t.Fatal(err)
	}
	n, k := binary.Uvarint(got[1:])
	if k <= 0 || int(n) != len(got)-1-k {
		t.Fatalf("length prefix %d (%d bytes) for %d bytes", n, k, len(got)-1-k)
	}
	if body := got[1+k:]; !bytes.Equal(body, want) {
		t.Fatalf("encoding differs from proto.Marshal:\n got %x\nwant %x\nflow %v", body, want, f)
	}
	back := &flowpb.Flow{}
	if err := proto.Unmarshal(got[1+k:], back); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(back, f) {
		t.Fatalf("read back %v, want %v", back, f)
	}
}

// TestWalEncoderMatchesProto: the row log's generated encoder writes every
// field of a flow as proto.Marshal does: random flows with every field
// set or zero, every oneof member, nested messages longer than 127 bytes.
func TestWalEncoderMatchesProto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		f := &flowpb.Flow{}
		randomMessage(r, f.ProtoReflect(), 1+i%5)
		checkWalEncoding(t, f)
	}
	for i := range 100 {
		f := &flowpb.Flow{Time: timestamppb.New(t0), NodeName: "node-1"}
		docsMaskFlow(f, i)
		checkWalEncoding(t, f)
	}
	checkWalEncoding(t, &flowpb.Flow{})
	// A nil element of a list and a oneof member holding nil are written
	// as empty messages, as proto.Marshal writes them.
	checkWalEncoding(t, &flowpb.Flow{L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{}}, Source: &flowpb.Endpoint{Workloads: []*flowpb.Workload{nil, {Name: "a"}}}})
}

// TestWalEncoderRefusesInvalidUTF8: a string proto.Unmarshal would refuse
// when recovery reads the record fails the write instead, naming the field.
func TestWalEncoderRefusesInvalidUTF8(t *testing.T) {
	var enc walEncoder
	_, err := enc.appendFlow(nil, &flowpb.Flow{NodeName: "a", Source: &flowpb.Endpoint{PodName: "p\xff"}})
	if err == nil || !strings.Contains(err.Error(), "flow.Endpoint.pod_name") {
		t.Fatalf("err %v, want the field named", err)
	}
	if _, err := enc.appendFlow(nil, &flowpb.Flow{NodeName: "a"}); err != nil {
		t.Fatalf("the next flow: %v", err)
	}
	if _, err := proto.Marshal(&flowpb.Flow{Source: &flowpb.Endpoint{PodName: "p\xff"}}); err == nil {
		t.Fatal("proto.Marshal accepts invalid UTF-8: the encoder need not refuse it")
	}
}

// FuzzWalEncoder: any flow protobuf decodes is written back by the row
// log's encoder as proto.Marshal writes it (unknown fields dropped).
func FuzzWalEncoder(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		m := &flowpb.Flow{}
		randomMessage(r, m.ProtoReflect(), 3)
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := &flowpb.Flow{}
		if proto.Unmarshal(data, m) != nil {
			return
		}
		discardUnknown(m.ProtoReflect())
		checkWalEncoding(t, m)
	})
}

func discardUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				discardUnknown(v.List().Get(i).Message())
			}
		case fd.Message() != nil && !fd.IsMap():
			discardUnknown(v.Message())
		}
		return true
	})
}

// BenchmarkWalEncode: the row log's encoding of a batch of flows, the
// generated encoder against proto.Size and MarshalAppend (what the log
// wrote each flow with before), docs-mask flows and generated flows with
// every field.
func BenchmarkWalEncode(b *testing.B) {
	full := make([]*flowpb.Flow, 4096)
	docs := make([]*flowpb.Flow, 4096)
	g, err := gen.New(gen.Config{Seed: 1, Nodes: 1, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	for i := range full {
		full[i] = g.Next().GetFlow()
		docs[i] = &flowpb.Flow{Time: timestamppb.New(t0), NodeName: "node-1"}
		docsMaskFlow(docs[i], i)
	}
	for _, set := range []struct {
		name  string
		flows []*flowpb.Flow
	}{{"docs", docs}, {"full", full}} {
		buf := make([]byte, 0, 8<<20)
		b.Run(set.name+"/proto", func(b *testing.B) {
			sizer, cached := proto.MarshalOptions{}, proto.MarshalOptions{UseCachedSize: true}
			cpu := cpuTime()
			for b.Loop() {
				buf = buf[:0]
				for _, f := range set.flows {
					buf = binary.AppendUvarint(buf, uint64(sizer.Size(f)))
					buf, _ = cached.MarshalAppend(buf, f)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N*len(set.flows)), "cpu-ns/flow")
		})
		b.Run(set.name+"/generated", func(b *testing.B) {
			var enc walEncoder
			cpu := cpuTime()
			for b.Loop() {
				buf = buf[:0]
				for _, f := range set.flows {
					buf, _ = enc.appendFlow(buf, f)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N*len(set.flows)), "cpu-ns/flow")
		})
	}
}
