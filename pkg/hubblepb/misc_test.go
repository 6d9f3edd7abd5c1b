package hubblepb_test

import (
	"bytes"
	"os"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblepb"
	"github.com/flowaudit/flowaudit/pkg/hubblepb/internal/genpb"
)

// TestGeneratedDecoderUpToDate fails when decode_gen.go is not what the
// generator makes from the descriptors of go.mod's Cilium (run go generate
// ./pkg/hubblepb).
func TestGeneratedDecoderUpToDate(t *testing.T) {
	want, err := genpb.Source()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("decode_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("decode_gen.go is stale: run `go generate ./pkg/hubblepb`")
	}
}

// TestEnvelopeFields: the envelope Decode reads by hand is
// GetFlowsResponse's: the same fields, numbers and wire types, nothing
// more (a new response type in a newer Cilium must be added).
func TestEnvelopeFields(t *testing.T) {
	fds := respDesc.Fields()
	if fds.Len() != len(hubblepb.EnvelopeTags) {
		t.Fatalf("GetFlowsResponse has %d fields, the decoder reads %d", fds.Len(), len(hubblepb.EnvelopeTags))
	}
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		tag, ok := hubblepb.EnvelopeTags[string(fd.Name())]
		if !ok {
			t.Errorf("field %s is not read", fd.Name())
			continue
		}
		want := uint64(protowire.EncodeTag(fd.Number(), protowire.BytesType))
		if tag != want || fd.IsList() || (fd.Message() == nil && fd.Kind() != protoreflect.StringKind) {
			t.Errorf("field %s: tag %#x, descriptor %v %v", fd.Name(), tag, fd.Number(), fd.Kind())
		}
		if oo := fd.ContainingOneof(); (oo != nil) != (fd.Name() != "node_name" && fd.Name() != "time") {
			t.Errorf("field %s: oneof %v", fd.Name(), oo)
		}
	}
	for name, md := range map[string]protoreflect.FullName{"flow": "flow.Flow", "node_status": "relay.NodeStatusEvent", "lost_events": "flow.LostEvent", "time": "google.protobuf.Timestamp"} {
		if got := fds.ByName(protoreflect.Name(name)).Message().FullName(); got != md {
			t.Errorf("field %s is a %s, the decoder reads a %s", name, got, md)
		}
	}
}

// TestNoAllocsPerFlow: in steady state, decoding into reused slots with an
// arena allocates nothing, under every plan.
func TestNoAllocsPerFlow(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	msgs := genResponses(t, 2000, 3)
	for _, p := range plans {
		d := hubblepb.NewDecoder(hubblepb.NewPlan(p.filter, p.keep))
		var arena flow.Arena
		d.SetArena(&arena)
		slots := make([]*flowpb.Flow, 16)
		for i := range slots {
			slots[i] = &flowpb.Flow{}
		}
		run := func() {
			arena.Reset()
			for i, w := range msgs {
				f := slots[i%len(slots)]
				kind, err := d.Decode(w, f)
				if err != nil {
					t.Fatal(err)
				}
				if kind == flow.KindFlow && i%3 != 0 { // some rejected, some kept
					if err := d.Finish(f); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		run() // warm up: slots, pools, tables, arena chunks
		run()
		if a := testing.AllocsPerRun(5, run); a > 0 {
			t.Errorf("%s: %.1f allocations per %d messages; want 0", p.name, a, len(msgs))
		}
	}
}

// TestEagerFollowsTheShareKept: with most flows kept the decoder decodes
// the kept fields in Decode already, with most rejected it goes back to two
// passes (the checker compares both with the oracle).
func TestEagerFollowsTheShareKept(t *testing.T) {
	msgs := genResponses(t, 2100, 4)
	c := newChecker(t, plans[1])
	for _, w := range msgs {
		c.check(w)
	}
	if !c.d.Eager() {
		t.Fatal("every flow kept, still two passes")
	}
	c.finishEvery = 1000
	for _, w := range msgs {
		c.check(w)
	}
	if c.d.Eager() {
		t.Fatal("hardly any flow kept, still one pass")
	}
	// A filter that reads every kept field: one pass always.
	d := hubblepb.NewDecoder(hubblepb.NewPlan(flow.Fields("verdict", "source"), flow.Fields("source.namespace")))
	f := &flowpb.Flow{}
	for _, w := range msgs[:10] {
		if _, err := d.Decode(w, f); err != nil {
			t.Fatal(err)
		}
		got := proto.Clone(f)
		if err := d.Finish(f); err != nil || !proto.Equal(got, f) {
			t.Fatalf("Finish changed a flow the filter decoded whole: %v", err)
		}
	}
}

// TestMemosAreUsed: the generated flows' endpoints, policies and node
// labels come from the memos (the differential tests compare what they
// give with proto.Unmarshal), and a label in the arena (too long to be
// interned) keeps an endpoint out of the memo: the arena is reset and
// written over before the same endpoint comes again.
func TestMemosAreUsed(t *testing.T) {
	c := newChecker(t, plans[0])
	for _, w := range genResponses(t, 3000, 6) {
		c.check(w)
	}
	ep, pol, nl := c.d.MemoHits()
	if ep < 3000 || pol == 0 || nl < 1000 {
		t.Errorf("memo hits: %d endpoints, %d policies, %d node label runs; want some of each", ep, pol, nl)
	}
	long := strings.Repeat("k8s:io.cilium.long-label=", 12)
	endpoint := wb(nil).varint(1, 7).str(3, "payments").str(4, long).str(4, "k8s:app=api")
	msg := flowMsg(wb(nil).bytes(8, endpoint).bytes(9, endpoint))
	c = newChecker(t, plans[0])
	for i := range 200 {
		c.check(msg)
		c.arena.Reset()
		c.arena.String(bytes.Repeat([]byte{byte('a' + i%26)}, 4096))
	}
	if ep, _, _ := c.d.MemoHits(); ep != 0 {
		t.Errorf("%d endpoints with a string in the arena taken from the memo", ep)
	}
}
