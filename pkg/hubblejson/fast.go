// The fast decoder's primitives (scanning, strings, numbers, timestamps,
// skipping) in one file: the generated codec_gen.go calls them for every
// field, and they share the invariants of the line they scan (offsets,
// noStore, checked), which are easier to keep true read together.

package hubblejson

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"strings"
	"unicode/utf8"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

//go:generate go run ./internal/gendec/cmd

// The fast decoder (this file and the generated codec_gen.go) decodes the
// forms protojson itself writes, and the common variations of them, straight
// into a reused *flowpb.Flow: no reflection, no allocation per line in steady
// state. Whatever it is not sure to decode exactly as protojson does (escaped
// keys, numbers with exponents, Any, duplicate fields, invalid JSON, ...), it
// leaves to protojson by returning errFallback, so that it is never more
// lenient than protojson and every error message is protojson's.
var errFallback = errors.New("hubblejson: left to protojson")

// fsel is a compiled field selection over one message type: bit k selects the
// field of descriptor index k, subs[k] narrows a selected message field (nil:
// the whole field). A nil *fsel selects everything.
type fsel struct {
	bits uint64
	subs []*fsel
}

func (s *fsel) has(k uint) bool { return s == nil || s.bits&(1<<k) != 0 }

func (s *fsel) sub(k uint) *fsel {
	if s == nil {
		return nil
	}
	return s.subs[k]
}

// compileFsel compiles fs over md (nil when fs is every field).
func compileFsel(fs flow.FieldSet, md protoreflect.MessageDescriptor) *fsel {
	if fs.IsAll() {
		return nil
	}
	root := &fsel{subs: make([]*fsel, md.Fields().Len())}
	for _, p := range fs.Paths() {
		root.add(strings.Split(p, "."), md)
	}
	return root
}

func (s *fsel) add(parts []string, md protoreflect.MessageDescriptor) {
	fd := md.Fields().ByName(protoreflect.Name(parts[0]))
	if fd == nil {
		return
	}
	k := uint(fd.Index())
	whole := len(parts) == 1 || fd.Message() == nil || fd.IsList() || fd.IsMap() ||
		fd.Message().FullName().Parent() == "google.protobuf"
	switch {
	case whole:
		s.bits |= 1 << k
		s.subs[k] = nil
	case s.bits&(1<<k) != 0 && s.subs[k] == nil: // already whole
	default:
		if s.subs[k] == nil {
			s.bits |= 1 << k
			s.subs[k] = &fsel{subs: make([]*fsel, fd.Message().Fields().Len())}
		}
		s.subs[k].add(parts[1:], fd.Message())
	}
}

// fastDec is the state of the fast decoder over one line.
type fastDec struct {
	fastPools
	fastScratch
	fastSucc
	b       []byte
	arena   *flow.Arena
	scratch []byte
	noStore int // > 0 while checking a field outside the selection: strings are not copied
	// checked: the line was checked whole by an earlier pass (Finish after
	// Decode), so fields outside the selection are skipped, not checked again.
	checked bool
	// stopAt, when not zero, is the set of Flow fields (bits by descriptor
	// index) after which decFlow stops: once it has read all of them, it
	// clears the fields it has not read, sets stopped and returns the
	// offset after the last member it read, leaving the rest of the line
	// unread (Decoder.Decode for a filter: see Plan.stopAt).
	stopAt  uint64
	stopped bool
	fastMemos
}

func (d *fastDec) ws(i int) int {
	for i < len(d.b) && d.b[i] <= ' ' && isSpace[d.b[i]] {
		i++
	}
	return i
}

var isSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

func (d *fastDec) string(b []byte) string {
	if len(b) == 0 || d.noStore > 0 {
		return ""
	}
	if d.arena != nil {
		return d.arena.String(b)
	}
	return string(b)
}

// objOpen expects '{' at i.
func (d *fastDec) objOpen(i int) (int, error) {
	if i >= len(d.b) || d.b[i] != '{' {
		return i, errFallback
	}
	return i + 1, nil
}

// objMore moves past the ',' before the next member (or reports the closing
// '}' as done).
func (d *fastDec) objMore(i int, first bool) (int, bool, error) {
	i = d.ws(i)
	if i >= len(d.b) {
		return i, false, errFallback
	}
	if d.b[i] == '}' {
		return i + 1, true, nil
	}
	if !first {
		if d.b[i] != ',' {
			return i, false, errFallback
		}
		i = d.ws(i + 1)
	}
	return i, false, nil
}

func (d *fastDec) listOpen(i int) (int, error) {
	if i >= len(d.b) || d.b[i] != '[' {
		return i, errFallback
	}
	return i + 1, nil
}

func (d *fastDec) listMore(i int, first bool) (int, bool, error) {
	i = d.ws(i)
	if i >= len(d.b) {
		return i, false, errFallback
	}
	if d.b[i] == ']' {
		return i + 1, true, nil
	}
	if !first {
		if d.b[i] != ',' {
			return i, false, errFallback
		}
		i = d.ws(i + 1)
	}
	return i, false, nil
}

// key reads a member name without escapes and the ':' after it, and returns
// the offset of the value.
func (d *fastDec) key(i int) ([]byte, int, error) {
	if i >= len(d.b) || d.b[i] != '"' {
		return nil, i, errFallback
	}
	j := scanPlain(d.b, i+1)
	if j >= len(d.b) || d.b[j] != '"' { // an escape, a control or non-ASCII byte: protojson's
		return nil, j, errFallback
	}
	key := d.b[i+1 : j]
	j = d.ws(j + 1)
	if j >= len(d.b) || d.b[j] != ':' {
		return nil, j, errFallback
	}
	j = d.ws(j + 1)
	if j >= len(d.b) {
		return nil, j, errFallback
	}
	return key, j, nil
}

func (d *fastDec) literal(i int, lit string) (int, error) {
	if len(d.b)-i < len(lit) || string(d.b[i:i+len(lit)]) != lit {
		return i, errFallback
	}
	return i + len(lit), nil
}

func (d *fastDec) null(i int) (int, error) { return d.literal(i, "null") }

func (d *fastDec) boolean(i int) (bool, int, error) {
	if i < len(d.b) && d.b[i] == 't' {
		i, err := d.literal(i, "true")
		return true, i, err
	}
	i, err := d.literal(i, "false")
	return false, i, err
}

// rawString returns the bytes of a string without escapes at i.
func (d *fastDec) rawString(i int) ([]byte, int, error) {
	if i >= len(d.b) || d.b[i] != '"' {
		return nil, i, errFallback
	}
	for j := i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			return d.b[i+1 : j], j + 1, nil
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return nil, j, errFallback
		}
	}
	return nil, len(d.b), errFallback
}

// str decodes the string at i.
func (d *fastDec) str(i int) (string, int, error) {
	b := d.b
	if i >= len(b) || b[i] != '"' {
		return "", i, errFallback
	}
	j := i + 1
	for {
		j = scanPlain(b, j)
		if j >= len(b) {
			return "", j, errFallback
		}
		switch c := b[j]; {
		case c == '"':
			return d.string(b[i+1 : j]), j + 1, nil
		case c >= utf8.RuneSelf:
			n := utf8At(b, j)
			if n == 0 {
				return "", j, errFallback
			}
			j += n
		case c == '\\':
			return d.strEscaped(i+1, j)
		default:
			return "", j, errFallback
		}
	}
}

// strEscaped decodes a string starting at start with an escape at j.
func (d *fastDec) strEscaped(start, j int) (string, int, error) {
	buf := append(d.scratch[:0], d.b[start:j]...)
	for j < len(d.b) {
		c := d.b[j]
		switch {
		case c == '"':
			d.scratch = buf
			return d.string(buf), j + 1, nil
		case c < 0x20:
			return "", j, errFallback
		case c >= utf8.RuneSelf:
			n := utf8At(d.b, j)
			if n == 0 {
				return "", j, errFallback
			}
			buf = append(buf, d.b[j:j+n]...)
			j += n
			continue
		case c != '\\':
			buf = append(buf, c)
			j++
			continue
		}
		if j+1 >= len(d.b) {
			return "", j, errFallback
		}
		switch e := d.b[j+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := d.hex4(j + 2)
			if !ok || (r >= 0xD800 && r <= 0xDFFF) { // surrogates: protojson's business
				return "", j, errFallback
			}
			buf = utf8.AppendRune(buf, r)
			j += 4
		default:
			return "", j, errFallback
		}
		j += 2
	}
	return "", j, errFallback
}

func (d *fastDec) hex4(i int) (rune, bool) {
	if i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func (d *fastDec) strList(i int, dst []string) ([]string, int, error) {
	i, err := d.listOpen(i)
	if err != nil {
		return dst, i, err
	}
	for first := true; ; first = false {
		var done bool
		if i, done, err = d.listMore(i, first); err != nil || done {
			return dst, i, err
		}
		var s string
		if s, i, err = d.str(i); err != nil {
			return dst, i, err
		}
		dst = append(dst, s)
	}
}

// digits parses the plain JSON integer at i (optionally quoted, as protojson
// accepts and writes 64-bit integers), up to max in magnitude.
func (d *fastDec) digits(i int, signed bool, max uint64) (uint64, bool, int, error) {
	quoted := i < len(d.b) && d.b[i] == '"'
	if quoted {
		i++
	}
	neg := false
	if signed && i < len(d.b) && d.b[i] == '-' {
		neg = true
		i++
	}
	if i >= len(d.b) || d.b[i] < '0' || d.b[i] > '9' {
		return 0, false, i, errFallback
	}
	if neg {
		max++ // -2^(n-1)
	}
	var n uint64
	start := i
	for i < len(d.b) && d.b[i] >= '0' && d.b[i] <= '9' {
		c := uint64(d.b[i] - '0')
		if n > (max-c)/10 {
			return 0, false, i, errFallback // out of range: protojson's error
		}
		n = n*10 + c
		i++
	}
	if d.b[start] == '0' && i-start > 1 {
		return 0, false, i, errFallback // leading zero: invalid JSON
	}
	if i < len(d.b) {
		if c := d.b[i]; c == '.' || c == 'e' || c == 'E' {
			return 0, false, i, errFallback
		}
	}
	if quoted {
		if i >= len(d.b) || d.b[i] != '"' {
			return 0, false, i, errFallback
		}
		i++
	}
	return n, neg, i, nil
}

func (d *fastDec) u32(i int) (uint32, int, error) {
	n, _, i, err := d.digits(i, false, 1<<32-1)
	return uint32(n), i, err
}

func (d *fastDec) u64(i int) (uint64, int, error) {
	n, _, i, err := d.digits(i, false, 1<<64-1)
	return n, i, err
}

func (d *fastDec) i32(i int) (int32, int, error) {
	n, neg, i, err := d.digits(i, true, 1<<31-1)
	if neg {
		return int32(-int64(n)), i, err
	}
	return int32(n), i, err
}

//lint:ignore U1000 the generator emits it for int64 fields; v1.18.4's Flow has none
func (d *fastDec) i64(i int) (int64, int, error) {
	n, neg, i, err := d.digits(i, true, 1<<63-1)
	if neg {
		return -int64(n), i, err
	}
	return int64(n), i, err
}

// enum reads an enum value: a name (returned) or a number (name == nil).
// Quoted values are names for protojson, even "1".
func (d *fastDec) enum(i int) ([]byte, int32, int, error) {
	if i < len(d.b) && d.b[i] == '"' {
		name, i, err := d.rawString(i)
		return name, 0, i, err
	}
	n, neg, i, err := d.digits(i, true, 1<<31-1)
	if neg {
		return nil, int32(-int64(n)), i, err
	}
	return nil, int32(n), i, err
}

// timestamp decodes the RFC 3339 form protojson writes
// (2006-01-02T15:04:05[.999999999]Z); offsets and other forms fall back.
func (d *fastDec) timestamp(i int, t *timestamppb.Timestamp) (int, error) {
	b := d.b
	if len(b)-i < 22 || b[i] != '"' {
		return i, errFallback
	}
	s := b[i+1:]
	num := func(p, n int) int {
		v := 0
		for _, c := range s[p : p+n] {
			if c < '0' || c > '9' {
				return -1
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return i, errFallback
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, min, sec := num(11, 2), num(14, 2), num(17, 2)
	if year < 1 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 59 {
		return i, errFallback
	}
	p := 19
	nanos := 0
	if p < len(s) && s[p] == '.' {
		p++
		n := 0
		for p < len(s) && s[p] >= '0' && s[p] <= '9' {
			if n == 9 {
				return i, errFallback
			}
			nanos = nanos*10 + int(s[p]-'0')
			n++
			p++
		}
		if n == 0 {
			return i, errFallback
		}
		for ; n < 9; n++ {
			nanos *= 10
		}
	}
	if p+1 >= len(s) || s[p] != 'Z' || s[p+1] != '"' {
		return i, errFallback
	}
	t.Seconds = daysFromCivil(year, month, day)*86400 + int64(hour*3600+min*60+sec)
	t.Nanos = int32(nanos)
	return i + 1 + p + 2, nil
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d (proleptic
// Gregorian calendar; Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// skip moves past the JSON value at i, validating it as strictly as
// protojson does.
func (d *fastDec) skip(i, depth int) (int, error) {
	if depth > 64 || i >= len(d.b) {
		return i, errFallback
	}
	switch c := d.b[i]; {
	case c == '"':
		return d.skipString(i)
	case c == '{':
		i = d.ws(i + 1)
		for first := true; ; first = false {
			var done bool
			var err error
			if i, done, err = d.objMore(i, first); err != nil || done {
				return i, err
			}
			if i, err = d.skipString(i); err != nil {
				return i, err
			}
			i = d.ws(i)
			if i >= len(d.b) || d.b[i] != ':' {
				return i, errFallback
			}
			if i, err = d.skip(d.ws(i+1), depth+1); err != nil {
				return i, err
			}
		}
	case c == '[':
		i++
		for first := true; ; first = false {
			var done bool
			var err error
			if i, done, err = d.listMore(i, first); err != nil || done {
				return i, err
			}
			if i, err = d.skip(i, depth+1); err != nil {
				return i, err
			}
		}
	case c == 't':
		return d.literal(i, "true")
	case c == 'f':
		return d.literal(i, "false")
	case c == 'n':
		return d.literal(i, "null")
	default:
		return d.skipNumber(i)
	}
}

// plainByte[c] is true for the bytes that need no attention inside a JSON
// string: ASCII, not '"', not '\\', not a control character. (Bytes >= 0x80
// start UTF-8 sequences, validated where they occur: the fast path does not
// run utf8.Valid over the whole line first.)
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// scanPlainSWAR returns the offset of the first byte at or after j that is
// not plainByte, eight bytes at a time.
func scanPlainSWAR(b []byte, j int) int {
	for j+8 <= len(b) {
		w := binary.LittleEndian.Uint64(b[j:])
		ctl := (w - lsb*0x20) &^ w & msb
		q := w ^ (lsb * '"')
		q = (q - lsb) &^ q & msb
		bs := w ^ (lsb * '\\')
		bs = (bs - lsb) &^ bs & msb
		if m := ctl | q | bs | (w & msb); m != 0 {
			// Borrows only run upwards: the lowest flagged byte is exact.
			return j + bits.TrailingZeros64(m)/8
		}
		j += 8
	}
	for j < len(b) && plainByte[b[j]] {
		j++
	}
	return j
}

// utf8At returns the length of the valid UTF-8 sequence at b[j] (>= 0x80),
// or 0.
func utf8At(b []byte, j int) int {
	r, n := utf8.DecodeRune(b[j:])
	if r == utf8.RuneError && n <= 1 {
		return 0
	}
	return n
}

func (d *fastDec) skipString(i int) (int, error) {
	b := d.b
	if i >= len(b) || b[i] != '"' {
		return i, errFallback
	}
	j := i + 1
	for {
		j = scanPlain(b, j)
		if j >= len(b) {
			return j, errFallback
		}
		switch c := b[j]; {
		case c == '"':
			return j + 1, nil
		case c >= utf8.RuneSelf:
			n := utf8At(b, j)
			if n == 0 {
				return j, errFallback
			}
			j += n
		case c == '\\':
			if j+1 >= len(b) {
				return j, errFallback
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				r, ok := d.hex4(j + 2)
				if !ok || (r >= 0xD800 && r <= 0xDFFF) {
					return j, errFallback
				}
				j += 6
			default:
				return j, errFallback
			}
		default: // control character
			return j, errFallback
		}
	}
}

// skipNumber accepts exactly JSON's number grammar.
func (d *fastDec) skipNumber(i int) (int, error) {
	b := d.b
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	digits := func() int {
		n := 0
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
			n++
		}
		return n
	}
	start := j
	n := digits()
	if n == 0 || (b[start] == '0' && n > 1) {
		return j, errFallback
	}
	if j < len(b) && b[j] == '.' {
		j++
		if digits() == 0 {
			return j, errFallback
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return j, errFallback
		}
	}
	return j, nil
}

// fastEvent decodes an events.log line holding a flow (the ExportEvent
// envelope: flow, node_name, time) into f and ev. It returns the offsets of
// the "flow" member's value. Lines of other kinds fall back.
func (d *fastDec) fastEvent(f *flowpb.Flow, sel *fsel, ev *observerpb.ExportEvent, evTime *timestamppb.Timestamp) (int, int, error) {
	ev.NodeName, ev.Time, ev.ResponseTypes = "", nil, nil
	i, err := d.objOpen(d.ws(0))
	if err != nil {
		return 0, 0, err
	}
	var seen uint8
	flowStart, flowEnd := -1, -1
	for first := true; ; first = false {
		var done bool
		if i, done, err = d.objMore(i, first); err != nil {
			return 0, 0, err
		}
		if done {
			break
		}
		var key []byte
		if key, i, err = d.key(i); err != nil {
			return 0, 0, err
		}
		var k uint8
		switch string(key) {
		case "flow":
			k = 1
		case "node_name", "nodeName":
			k = 2
		case "time":
			k = 4
		case "lost_events", "lostEvents", "agent_event", "agentEvent", "debug_event", "debugEvent", "node_status", "nodeStatus":
			k = 8
		default:
			if i, err = d.skip(i, 0); err != nil {
				return 0, 0, err
			}
			continue
		}
		if seen&k != 0 && k != 8 {
			return 0, 0, errFallback
		}
		seen |= k
		if d.b[i] == 'n' {
			if i, err = d.null(i); err != nil {
				return 0, 0, err
			}
			continue
		}
		switch k {
		case 1:
			flowStart = i
			i, err = d.decFlow(i, f, sel)
			flowEnd = i
			if err == nil && d.stopped {
				return flowStart, flowEnd, nil // the rest is not read
			}
		case 2:
			ev.NodeName, i, err = d.str(i)
		case 4:
			ev.Time = evTime
			i, err = d.timestamp(i, evTime)
		default: // another kind of event
			return 0, 0, errFallback
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if d.ws(i) != len(d.b) || flowStart < 0 {
		return 0, 0, errFallback
	}
	return flowStart, flowEnd, nil
}
