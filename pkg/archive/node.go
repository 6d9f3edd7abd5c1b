package archive

import (
	"net/url"
	"strings"
)

// SanitizeNode turns a node name ("cluster/node") into a Hive partition value
// that can never escape its directory: every byte outside [A-Za-z0-9._-] is
// percent-encoded (so "/" becomes "%2F"), a name made only of dots is encoded
// whole, and the empty name is "_". The mapping is reversible (UnsanitizeNode).
func SanitizeNode(name string) string {
	if name == "" {
		return "_"
	}
	var b strings.Builder
	allDots := strings.Trim(name, ".") == ""
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok || (allDots && c == '.') || (c == '_' && len(name) == 1) {
			b.WriteString("%")
			b.WriteString(strings.ToUpper(hexByte(c)))
			continue
		}
		b.WriteByte(c)
	}
	s := b.String()
	if len(s) > 200 { // keep directory names within file-system limits
		s = s[:200]
	}
	return s
}

func hexByte(c byte) string {
	const h = "0123456789abcdef"
	return string([]byte{h[c>>4], h[c&0xf]})
}

// UnsanitizeNode reverses SanitizeNode.
func UnsanitizeNode(part string) string {
	if part == "_" {
		return ""
	}
	s, err := url.PathUnescape(part)
	if err != nil {
		return part
	}
	return s
}
