package hubblejson

import "bytes"

// restComplete reports whether rest, what follows the members decFlow read
// before it stopped (inside the flow object, inside the event object), is
// plausibly the complete end of the line: ASCII text without control
// characters, ending with '}', its quotes (other than escaped ones) even in
// number, and two more closing brackets ('}' or ']') than opening ones. It is
// the check a line the filter rejects gets in place of decoding: a line cut
// short, two lines run together or bytes that are not text fail it, and
// Decode then reads the line whole. What it does not see: a wrong type,
// value or escape in a member after the filter's fields.
func restComplete(rest []byte) bool {
	end := len(rest)
	for end > 0 && rest[end-1] == ' ' {
		end--
	}
	if end == 0 || rest[end-1] != '}' {
		return false
	}
	rest = rest[:end]
	c := countStructural(rest)
	if c.special {
		return false
	}
	quotes := c.quotes
	if c.backslash {
		quotes -= escapedQuotes(rest)
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
	// backslash: a '\\'; special: a control character or a byte >= 0x80.
	backslash, special bool
}

func countStructuralGeneric(b []byte) structural {
	var c structural
	for _, x := range b {
		switch {
		case x == '"':
			c.quotes++
		case x == '{' || x == '[':
			c.opens++
		case x == '}' || x == ']':
			c.closes++
		case x == '\\':
			c.backslash = true
		case x < 0x20 || x >= 0x80:
			c.special = true
		}
	}
	return c
}
