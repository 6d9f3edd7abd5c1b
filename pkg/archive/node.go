package archive

import (
	"net/url"
	"os"
	"strings"
	"time"
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

// dateDir is a table's date=YYYY-MM-DD directory.
type dateDir struct {
	name string    // "date=YYYY-MM-DD"
	date string    // "YYYY-MM-DD"
	day  time.Time // its start, UTC
}

// dateDirs lists the date directories of dir (a table's), in name order,
// which is date order; other entries are ignored.
func dateDirs(dir string) ([]dateDir, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]dateDir, 0, len(entries))
	for _, e := range entries {
		date, ok := strings.CutPrefix(e.Name(), "date=")
		if !ok || !e.IsDir() {
			continue
		}
		day, err := time.Parse("2006-01-02", date)
		if err != nil {
			continue
		}
		out = append(out, dateDir{name: e.Name(), date: date, day: day})
	}
	return out, nil
}

// nodeDirs lists the node=… directories of dir (a date directory): their
// entry names and their node parts as sanitized (SanitizeNode).
func nodeDirs(dir string) (names, nodes []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if node, ok := strings.CutPrefix(e.Name(), "node="); ok && e.IsDir() {
			names, nodes = append(names, e.Name()), append(nodes, node)
		}
	}
	return names, nodes, nil
}
