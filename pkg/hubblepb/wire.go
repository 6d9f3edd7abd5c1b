package hubblepb

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The wire-format primitives of the generated decoder. They return
// protowire's error codes (negative lengths, turned into errors by
// protowire.ParseError), so that a malformed message fails where and as
// proto.Unmarshal fails.

// protowire's error codes, taken from protowire itself.
var (
	codeTruncated   = func() int { _, n := protowire.ConsumeVarint(nil); return n }()
	codeFieldNumber = func() int { _, _, n := protowire.ConsumeTag([]byte{0}); return n }()
)

// Each primitive has a fast form, small enough to be inlined, for the
// common case (a one-byte tag, varint or length), which returns 0 bytes
// read otherwise, and a slow form for the rest and the errors: callers
// write
//
//	t, n := tagFast(b)
//	if n == 0 {
//		if t, n = tagSlow(b); n < 0 { ... }
//	}

// tagFast reads the one-byte tag of a field 1 to 15 at the start of b (not
// empty).
func tagFast(b []byte) (uint64, int) {
	if c := b[0]; c-8 < 0x80-8 {
		return uint64(c), 1
	}
	return 0, 0
}

// tagSlow reads the tag at the start of b (not empty). Its field number
// must be 1 to 2^29-1, as proto.Unmarshal checks (protowire.ConsumeTag
// accepts more).
func tagSlow(b []byte) (uint64, int) {
	t, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, n
	}
	if num := t >> 3; num < uint64(protowire.MinValidNumber) || num > uint64(protowire.MaxValidNumber) {
		return 0, codeFieldNumber
	}
	return t, n
}

// varintFast reads a one-byte varint at the start of b.
func varintFast(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return 0, 0
}

// varintSlow reads the varint at the start of b.
func varintSlow(b []byte) (uint64, int) { return protowire.ConsumeVarint(b) }

// bytesFast reads a length-delimited value shorter than 128 bytes at the
// start of b: the value and the bytes it takes with its length.
func bytesFast(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) {
		return b[1 : 1+b[0]], 1 + int(b[0])
	}
	return nil, 0
}

// bytesSlow reads the length-delimited value at the start of b.
func bytesSlow(b []byte) ([]byte, int) {
	l, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return nil, n
	}
	if l > uint64(len(b)-n) {
		return nil, codeTruncated
	}
	end := n + int(l)
	return b[n:end], end
}

// skipField returns the length of the value of tag t at the start of b, as
// proto.Unmarshal skips an unknown field (protowire.ConsumeFieldValue: a
// group is read to its end group, nested up to protowire's recursion
// limit; an end group or a reserved wire type is an error).
func skipField(t uint64, b []byte) int {
	switch protowire.Type(t & 7) {
	case protowire.VarintType:
		if _, n := varintFast(b); n > 0 {
			return n
		}
		_, n := varintSlow(b)
		return n
	case protowire.BytesType:
		if _, n := bytesFast(b); n > 0 {
			return n
		}
		_, n := bytesSlow(b)
		return n
	case protowire.Fixed32Type:
		if len(b) < 4 {
			return codeTruncated
		}
		return 4
	case protowire.Fixed64Type:
		if len(b) < 8 {
			return codeTruncated
		}
		return 8
	}
	return protowire.ConsumeFieldValue(protowire.Number(t>>3), protowire.Type(t&7), b)
}

// errAt is the error for protowire's error code n in a message of type msg.
func errAt(msg string, n int) error {
	return fmt.Errorf("hubblepb: %s: %w", msg, protowire.ParseError(n))
}

// errUTF8 is proto.Unmarshal's error for a string field, by its full name.
func errUTF8(field string) error {
	return fmt.Errorf("hubblepb: %s: string field contains invalid UTF-8", field)
}
