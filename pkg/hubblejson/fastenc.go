package hubblejson

import (
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// The fast encoder (enc* in codec_gen.go and these helpers) writes what
// protojson (UseProtoNames) followed by encoding/json's Encoder writes for a
// Flow: the bytes of an events.log line. Where protojson must decide (an Any,
// invalid UTF-8, a timestamp out of range) it reports false and the caller
// uses protojson.

const hexDigits = "0123456789abcdef"

// jsonPlain[c] is true for the ASCII bytes written as they are: printable,
// not '"' or '\\', and not '<', '>' or '&' (escaped by encoding/json).
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string, escaped as protojson escapes
// it and then as encoding/json's HTML-safe compaction does.
func appendJSONString(dst []byte, s string) ([]byte, bool) {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonPlain[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default: // control characters, '<', '>', '&'
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return dst, false // protojson refuses invalid UTF-8
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), true
}

// Timestamp range protojson accepts: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// appendTimestamp writes t as protojson does: RFC 3339 in UTC with 0, 3, 6
// or 9 fractional digits.
func appendTimestamp(dst []byte, t *timestamppb.Timestamp) ([]byte, bool) {
	secs, nanos := t.GetSeconds(), t.GetNanos()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos > 999999999 {
		return dst, false
	}
	days := secs / 86400
	rem := secs % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	y, m, d := civilFromDays(days)
	dst = append(dst, '"')
	dst = appendDigits(dst, y, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, m, 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, d, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, int(rem/3600), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, int(rem/60%60), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, int(rem%60), 2)
	switch n := int(nanos); {
	case n == 0:
	case n%1000000 == 0:
		dst = append(dst, '.')
		dst = appendDigits(dst, n/1000000, 3)
	case n%1000 == 0:
		dst = append(dst, '.')
		dst = appendDigits(dst, n/1000, 6)
	default:
		dst = append(dst, '.')
		dst = appendDigits(dst, n, 9)
	}
	return append(dst, 'Z', '"'), true
}

func appendDigits(dst []byte, v, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (int, int, int) {
	z += 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}
