package hubblepb_test

import (
	"bytes"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblepb"
)

// wire builds wire-format bytes: tag(num, typ) then value, for each part.
type wb []byte

func (b wb) tag(num protowire.Number, typ protowire.Type) wb { return protowire.AppendTag(b, num, typ) }
func (b wb) varint(num protowire.Number, v uint64) wb {
	return protowire.AppendVarint(b.tag(num, protowire.VarintType), v)
}
func (b wb) bytes(num protowire.Number, v []byte) wb {
	return protowire.AppendBytes(b.tag(num, protowire.BytesType), v)
}
func (b wb) str(num protowire.Number, v string) wb { return b.bytes(num, []byte(v)) }
func (b wb) raw(v ...byte) wb                      { return append(b, v...) }

// flowMsg is a GetFlowsResponse holding the flow f (wire format).
func flowMsg(f wb) wb { return wb(nil).bytes(1, f) }

// nestedGroups is an unknown group field nested depth groups deep.
func nestedGroups(depth int) wb {
	var b wb
	for i := 0; i < depth; i++ {
		b = b.tag(99, protowire.StartGroupType)
	}
	for i := 0; i < depth; i++ {
		b = b.tag(99, protowire.EndGroupType)
	}
	return b
}

// hostileCase is a malformed or unusual message.
type hostileCase struct {
	name   string
	msg    wb
	reject bool // what proto.Unmarshal does (checked too)
}

func hostileCases() []hostileCase {
	endpoint := wb(nil).varint(1, 7).str(3, "payments").str(4, "k8s:app=api").str(5, "api-0")
	return []hostileCase{
		{"empty", nil, false},
		{"empty flow", flowMsg(nil), false},
		{"field number 0", wb(nil).raw(0x02, 0x00), true},
		{"field number 0 in flow", flowMsg(wb(nil).raw(0x00, 0x00)), true},
		{"field number 2^29", flowMsg(wb(nil).raw(0x80, 0x80, 0x80, 0x80, 0x10, 0x00)), true},
		{"field number max", flowMsg(wb(nil).varint(protowire.MaxValidNumber, 1)), false},
		{"tag varint overflow", flowMsg(wb(nil).raw(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)), true},
		{"tag truncated", flowMsg(wb(nil).raw(0x80)), true},
		{"varint value overflow", flowMsg(wb(nil).tag(2, protowire.VarintType).raw(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02)), true},
		{"varint value 10 bytes", flowMsg(wb(nil).tag(2, protowire.VarintType).raw(0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), false},
		{"varint truncated", flowMsg(wb(nil).tag(3, protowire.VarintType).raw(0x80, 0x80)), true},
		{"skipped varint truncated", flowMsg(wb(nil).tag(33, protowire.VarintType).raw(0x80)), true},
		{"fixed32 truncated", flowMsg(wb(nil).tag(3, protowire.Fixed32Type).raw(1, 2, 3)), true},
		{"fixed64 truncated", flowMsg(wb(nil).tag(3, protowire.Fixed64Type).raw(1, 2, 3, 4, 5, 6, 7)), true},
		{"length beyond the buffer", flowMsg(wb(nil).tag(34, protowire.BytesType).raw(0x05, 'a')), true},
		{"length beyond the buffer, skipped field", flowMsg(wb(nil).tag(8, protowire.BytesType).raw(0x7f)), true},
		{"length 2^63", flowMsg(wb(nil).tag(34, protowire.BytesType).raw(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)), true},
		{"flow length beyond the buffer", wb(nil).tag(1, protowire.BytesType).raw(0x10, 0x10), true},
		{"end group at the top", wb(nil).tag(5, protowire.EndGroupType), true},
		{"end group in the flow", flowMsg(wb(nil).tag(9, protowire.EndGroupType)), true},
		{"end group in an endpoint", flowMsg(wb(nil).bytes(8, endpoint.tag(4, protowire.EndGroupType))), true},
		{"group", flowMsg(wb(nil).tag(40, protowire.StartGroupType).varint(1, 5).str(2, "x").tag(40, protowire.EndGroupType).varint(2, 2)), false},
		{"group of a known field", flowMsg(wb(nil).tag(2, protowire.StartGroupType).varint(1, 5).tag(2, protowire.EndGroupType)), false},
		{"group unterminated", flowMsg(wb(nil).tag(40, protowire.StartGroupType).varint(1, 5)), true},
		{"group closed by another number", flowMsg(wb(nil).tag(40, protowire.StartGroupType).tag(41, protowire.EndGroupType)), true},
		{"groups nested to the limit", flowMsg(nestedGroups(protowire.DefaultRecursionLimit + 1)), false},
		{"groups nested past the limit", flowMsg(nestedGroups(protowire.DefaultRecursionLimit + 2)), true},
		{"wire type 6", flowMsg(wb(nil).raw(0x16, 0)), true},
		{"wire type 7", flowMsg(wb(nil).raw(0x17, 0)), true},
		{"invalid UTF-8 in the envelope's node_name", wb(nil).bytes(1000, []byte{0xff}), true},
		{"invalid UTF-8 in uuid", flowMsg(wb(nil).bytes(34, []byte("a\xc3"))), true},
		{"invalid UTF-8 in a label", flowMsg(wb(nil).bytes(8, endpoint.bytes(4, []byte{0xed, 0xa0, 0x80}))), true},
		{"invalid UTF-8 in a node label", flowMsg(wb(nil).str(37, "a=b").bytes(37, []byte{0xc0, 0x80})), true},
		{"invalid UTF-8 in a long string", flowMsg(wb(nil).bytes(11, append(bytes.Repeat([]byte("n"), 300), 0xff))), true},
		{"invalid UTF-8 in a node status", wb(nil).bytes(2, wb(nil).bytes(2, []byte{0xff})), true},
		{"UTF-8 of every length", flowMsg(wb(nil).str(11, "a\u00e9\u20ac\U0001F600").str(37, "\u00e9=\U0001F600")), false},
		{"singular field packed (an unknown field)", flowMsg(wb(nil).varint(2, 2).bytes(2, []byte{1, 2})), false},
		{"string field as a varint (an unknown field)", flowMsg(wb(nil).str(11, "n").varint(11, 5)), false},
		{"message field as fixed32 (an unknown field)", flowMsg(wb(nil).bytes(8, endpoint).tag(8, protowire.Fixed32Type).raw(1, 2, 3, 4)), false},
		{"enum out of range", flowMsg(wb(nil).varint(2, 1<<40|3).varint(10, 1<<63)), false},
		{"enum negative", flowMsg(wb(nil).varint(2, ^uint64(0))), false},
		{"int32 from a 64-bit varint", flowMsg(wb(nil).bytes(19, wb(nil).varint(1, 1<<35|9).varint(2, ^uint64(1)))), false},
		{"bool from a large varint", flowMsg(wb(nil).varint(16, 1<<62)), false},
		// verdict (tag 0x10) = 2, uuid (tag 0x92 0x02) of length 1, both
		// with their tags, values and lengths in more bytes than needed.
		{"non-minimal varints", flowMsg(wb(nil).raw(0x90, 0x80, 0x00, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00).raw(0x92, 0x82, 0x00, 0x81, 0x00, 'u')), false},
		{"last scalar wins", flowMsg(wb(nil).varint(2, 1).str(34, "a").varint(2, 2).str(34, "b")), false},
		{"message fields merge", flowMsg(wb(nil).bytes(8, wb(nil).str(3, "ns")).varint(2, 1).bytes(8, wb(nil).str(4, "l1").str(5, "pod")).bytes(8, wb(nil).str(4, "l2"))), false},
		{"flow split in two", wb(nil).bytes(1, wb(nil).varint(2, 2).bytes(8, endpoint)).str(1000, "node").bytes(1, wb(nil).bytes(8, wb(nil).str(4, "more")).varint(3, 9)), false},
		{"flow then lost events", wb(nil).bytes(1, wb(nil).varint(2, 2)).bytes(3, wb(nil).varint(1, 1).varint(2, 5)), false},
		{"lost events then flow", wb(nil).bytes(3, wb(nil).varint(2, 5)).bytes(1, wb(nil).varint(2, 2)), false},
		{"flow, node status, flow", wb(nil).bytes(1, wb(nil).varint(2, 2).str(34, "u")).bytes(2, wb(nil).varint(1, 1).str(2, "n1")).bytes(1, wb(nil).varint(3, 1)), false},
		{"node status merged", wb(nil).bytes(2, wb(nil).str(2, "n1").str(3, "m")).bytes(2, wb(nil).str(2, "n2").varint(1, 3)), false},
		{"lost events merged", wb(nil).bytes(3, wb(nil).varint(1, 1).bytes(3, wb(nil).varint(1, 4))).bytes(3, wb(nil).varint(2, 5).bytes(3, nil)), false},
		{"oneof member replaced", flowMsg(wb(nil).bytes(6, wb(nil).bytes(1, wb(nil).varint(1, 80).varint(2, 443)).bytes(2, wb(nil).varint(2, 53)))), false},
		{"oneof member merged", flowMsg(wb(nil).bytes(6, wb(nil).bytes(1, wb(nil).varint(1, 80))).bytes(6, wb(nil).bytes(1, wb(nil).varint(2, 443)))), false},
		{"oneof member, other member, member again", flowMsg(wb(nil).bytes(6, wb(nil).bytes(1, wb(nil).varint(1, 80)).bytes(3, nil).bytes(1, wb(nil).varint(2, 443)))), false},
		{"oneof member of the wrong wire type", flowMsg(wb(nil).bytes(6, wb(nil).bytes(1, wb(nil).varint(1, 80)).varint(2, 7))), false},
		{"envelope time merged", wb(nil).bytes(1001, wb(nil).varint(1, 5)).bytes(1, nil).bytes(1001, wb(nil).varint(2, 7)), false},
		{"any", flowMsg(wb(nil).bytes(150000, wb(nil).str(1, "type.googleapis.com/flow.Flow").bytes(2, []byte{0xff, 0x00, 0x01}))), false},
		{"unknown fields everywhere", wb(nil).varint(7, 1).bytes(1, wb(nil).varint(999, 1).bytes(8, endpoint.varint(77, 1).bytes(6, wb(nil).varint(9, 9).str(1, "w")))).raw(0x3d, 1, 2, 3, 4), false},
		{"a newer response type", wb(nil).bytes(4, wb(nil).varint(1, 1)).str(1000, "n"), false},
	}
}

// TestHostileInputs: malformed and unusual messages are decoded or refused
// exactly as proto.Unmarshal decodes or refuses them, under every plan,
// and never panic.
func TestHostileInputs(t *testing.T) {
	for _, c := range hostileCases() {
		var want observerpb.GetFlowsResponse
		if err := proto.Unmarshal(c.msg, &want); (err != nil) != c.reject {
			t.Errorf("%s: proto.Unmarshal: %v, want rejected %v", c.name, err, c.reject)
		}
		for _, p := range plans {
			t.Run(c.name+"/"+p.name, func(t *testing.T) {
				newChecker(t, p).check(c.msg)
				// Once more after a flow, into the slot it left.
				ck := newChecker(t, p)
				ck.check(marshal(t, randomResponse(newRand(1))))
				ck.check(c.msg)
			})
		}
	}
}

// TestErrorsNameTheField: an error says which message or field was wrong,
// and what was wrong with it.
func TestErrorsNameTheField(t *testing.T) {
	d := hubblepb.NewDecoder(nil)
	f := &flowpb.Flow{}
	for _, c := range []struct {
		msg        wb
		where, why string
	}{
		{flowMsg(wb(nil).bytes(8, wb(nil).bytes(4, []byte{0xff}))), "hubblepb: flow.Endpoint.labels: ", "invalid UTF-8"},
		{flowMsg(wb(nil).tag(34, protowire.BytesType).raw(9)), "hubblepb: flow.Flow.uuid: ", "unexpected EOF"},
		{flowMsg(wb(nil).raw(0x00)), "hubblepb: flow.Flow: ", "invalid field number"},
		{flowMsg(wb(nil).bytes(8, wb(nil).raw(0x00))), "hubblepb: flow.Endpoint: ", "invalid field number"},
		{wb(nil).raw(0x80), "hubblepb: observer.GetFlowsResponse: ", "unexpected EOF"},
	} {
		// (protobuf's own errors put a space or a no-break space after
		// "proto:" at random: only the words after it are compared.)
		_, err := d.Decode(c.msg, f)
		if err == nil || !strings.HasPrefix(err.Error(), c.where) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%x: error %v, want %q ... %q", []byte(c.msg), err, c.where, c.why)
		}
	}
}

// TestNoArena: without an arena, strings are ordinary allocations, and the
// results are the same.
func TestNoArena(t *testing.T) {
	d := hubblepb.NewDecoder(nil)
	r := newRand(9)
	f := &flowpb.Flow{}
	for range 300 {
		resp := randomResponse(r)
		w := marshal(t, resp)
		kind, err := d.Decode(w, f)
		if err != nil {
			t.Fatal(err)
		}
		if kind == flow.KindFlow && !proto.Equal(f, resp.GetFlow()) {
			t.Fatalf("got %v\nwant %v", f, resp.GetFlow())
		}
	}
}
