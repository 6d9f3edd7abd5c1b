package hubblejson

import "bytes"

// restComplete reports whether line[from:], what follows the members decFlow
// read before it stopped (inside the flow object, inside the event object;
// from >= 1), is plausibly the complete end of the line: ASCII text without
// control characters, ending with '}', its quotes (other than escaped ones)
// even in number, two more closing brackets ('}' or ']') than opening ones,
// and no closing bracket directly followed by an opening one (the seam of two
// objects run together). It is the check a line the filter rejects gets in
// place of decoding: a line cut short, two lines run together or bytes that
// are not text fail it, and Decode then reads the line whole. What it does
// not see: a wrong type, value or escape in a member after the filter's
// fields.
func restComplete(line []byte, from int) bool {
	end := len(line)
	for end > from && line[end-1] == ' ' {
		end--
	}
	if end == from || line[end-1] != '}' {
		return false
	}
	line = line[:end]
	c := countStructural(line, from)
	if c.special {
		return false
	}
	quotes := c.quotes
	if c.backslash {
		quotes -= escapedQuotes(line[from:])
	}
	return quotes%2 == 0 && c.closes == c.opens+2
}

// escapedQuotes counts the '"' in b that a backslash escapes, walking from
// backslash to backslash: each starts a two-byte escape (\" \\ \/ \b \f \n
// \r \t \u).
func escapedQuotes(b []byte) int {
	n := 0
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 || i+j+1 >= len(b) {
			return n
		}
		i += j + 1
		if b[i] == '"' {
			n++
		}
		i++
	}
}

// structural counts the bytes restComplete looks at.
type structural struct {
	quotes int
	opens  int // '{' and '['
	closes int // '}' and ']'
	// backslash: a '\\'; special: a control character, a byte >= 0x80, or
	// a '}' or ']' directly followed by a '{' or '['.
	backslash, special bool
}

// countStructuralGeneric counts b[from:] byte by byte (from >= 1: b[from-1]
// is the byte before the first, for the seam check).
func countStructuralGeneric(b []byte, from int) structural {
	var c structural
	c.add(b, from)
	return c
}

// add adds b[from:] to c byte by byte, as the vector routines add their
// blocks.
func (c *structural) add(b []byte, from int) {
	for i := from; i < len(b); i++ {
		switch x := b[i]; {
		case x == '"':
			c.quotes++
		case x == '{' || x == '[':
			c.opens++
			if p := b[i-1]; p == '}' || p == ']' {
				c.special = true
			}
		case x == '}' || x == ']':
			c.closes++
		case x == '\\':
			c.backslash = true
		case x < 0x20 || x >= 0x80:
			c.special = true
		}
	}
}
