package hubblejson

import (
	"errors"
	"fmt"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// filterObject appends to dst the JSON object of message md at src[0:]
// keeping only the members sel selects (recursively), by proto or JSON
// name as protojson accepts them. sel is not nil (that is every member).
// src must start with '{'; it returns the bytes consumed.
func filterObject(dst, src []byte, sel *fsel, md protoreflect.MessageDescriptor) ([]byte, int, error) {
	i := skipWS(src, 0)
	if i >= len(src) || src[i] != '{' {
		return dst, i, errors.New("expected an object")
	}
	i++
	dst = append(dst, '{')
	first := true
	for {
		i = skipWS(src, i)
		if i >= len(src) {
			return dst, i, errTruncated
		}
		if src[i] == '}' {
			return append(dst, '}'), i + 1, nil
		}
		if !first {
			if src[i] != ',' {
				return dst, i, fmt.Errorf("offset %d: expected ',' or '}'", i)
			}
			i = skipWS(src, i+1)
		}
		kStart := i
		kEnd, err := skipString(src, i)
		if err != nil {
			return dst, i, err
		}
		i = skipWS(src, kEnd)
		if i >= len(src) || src[i] != ':' {
			return dst, i, fmt.Errorf("offset %d: expected ':'", i)
		}
		i = skipWS(src, i+1)
		vStart := i
		vEnd, err := skipValue(src, i, 0)
		if err != nil {
			return dst, i, err
		}
		first = false
		fd := memberFields[md.FullName()][string(src[kStart+1:kEnd-1])]
		if fd != nil && sel.has(uint(fd.Index())) {
			sub := sel.sub(uint(fd.Index()))
			if len(dst) > 1 && dst[len(dst)-1] != '{' {
				dst = append(dst, ',')
			}
			dst = append(dst, src[kStart:kEnd]...)
			dst = append(dst, ':')
			if sub == nil || src[vStart] != '{' {
				dst = append(dst, src[vStart:vEnd]...)
			} else {
				var n int
				if dst, n, err = filterObject(dst, src[vStart:vEnd], sub, fd.Message()); err != nil {
					return dst, vStart + n, err
				}
			}
		}
		i = vEnd
	}
}

var errTruncated = errors.New("unexpected end of line (truncated)")

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset after the JSON string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return i, fmt.Errorf("offset %d: expected a string", i)
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '\\':
			j++
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return j, fmt.Errorf("offset %d: control character in string", j)
		}
	}
	return len(b), errTruncated
}

// skipValue returns the offset after the JSON value starting at b[i].
func skipValue(b []byte, i, depth int) (int, error) {
	if depth > 64 {
		return i, fmt.Errorf("offset %d: nesting too deep", i)
	}
	if i >= len(b) {
		return i, errTruncated
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		j := skipWS(b, i+1)
		if j < len(b) && b[j] == close {
			return j + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if j, err = skipString(b, j); err != nil {
					return j, err
				}
				j = skipWS(b, j)
				if j >= len(b) || b[j] != ':' {
					return j, fmt.Errorf("offset %d: expected ':'", j)
				}
				j = skipWS(b, j+1)
			}
			if j, err = skipValue(b, j, depth+1); err != nil {
				return j, err
			}
			j = skipWS(b, j)
			if j >= len(b) {
				return j, errTruncated
			}
			if b[j] == close {
				return j + 1, nil
			}
			if b[j] != ',' {
				return j, fmt.Errorf("offset %d: expected ',' or '%c'", j, close)
			}
			j = skipWS(b, j+1)
		}
	default: // number, true, false, null
		j := i
		for j < len(b) && (b[j] == '-' || b[j] == '+' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || (b[j] >= '0' && b[j] <= '9') || (b[j] >= 'a' && b[j] <= 'z')) {
			j++
		}
		if j == i {
			return i, fmt.Errorf("offset %d: unexpected %q", i, b[i])
		}
		return j, nil
	}
}

// members calls fn with each member of the top-level object of line (its
// raw key and its value's offsets) until fn returns false. A line that is
// not an object has no members.
func members(line []byte, fn func(key []byte, vStart, vEnd int) bool) error {
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return nil
	}
	i = skipWS(line, i+1)
	for i < len(line) && line[i] != '}' {
		kEnd, err := skipString(line, i)
		if err != nil {
			return err
		}
		key := line[i+1 : kEnd-1]
		i = skipWS(line, kEnd)
		if i >= len(line) || line[i] != ':' {
			return fmt.Errorf("offset %d: expected ':'", i)
		}
		i = skipWS(line, i+1)
		vEnd, err := skipValue(line, i, 0)
		if err != nil {
			return err
		}
		if !fn(key, i, vEnd) {
			return nil
		}
		i = skipWS(line, vEnd)
		if i < len(line) && line[i] == ',' {
			i = skipWS(line, i+1)
		}
	}
	return nil
}

// flowMember returns the offsets of the "flow" object of an event line.
func flowMember(line []byte) (start, end int, err error) {
	ok := false
	err = members(line, func(key []byte, vStart, vEnd int) bool {
		if string(key) == "flow" && line[vStart] == '{' {
			start, end, ok = vStart, vEnd, true
			return false
		}
		return true
	})
	if err == nil && !ok {
		err = errors.New("no flow object")
	}
	return start, end, err
}

var flowDesc = (&flowpb.Flow{}).ProtoReflect().Descriptor()

// memberFields maps the member names protojson accepts (proto and JSON
// spelling) to their fields, for every message type a Flow holds: looking a
// line's member up by its bytes allocates nothing.
var memberFields = func() map[protoreflect.FullName]map[string]protoreflect.FieldDescriptor {
	out := map[protoreflect.FullName]map[string]protoreflect.FieldDescriptor{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if _, ok := out[md.FullName()]; ok {
			return
		}
		m := map[string]protoreflect.FieldDescriptor{}
		out[md.FullName()] = m
		fs := md.Fields()
		for i := 0; i < fs.Len(); i++ {
			fd := fs.Get(i)
			m[string(fd.Name())], m[fd.JSONName()] = fd, fd
			if fd.Message() != nil {
				walk(fd.Message())
			}
		}
	}
	walk(flowDesc)
	return out
}()
