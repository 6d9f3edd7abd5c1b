package filter

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// FQDN and node-name patterns, as pkg/hubble/filters/patterns.go compiles them.

const fqdnRegexpStr = `(?:[-0-9_a-z]+(?:\.[-0-9_a-z]+)*)`

func appendFQDNPatternRegexp(sb *strings.Builder, pattern string) error {
	pattern = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(pattern), "."))
	switch {
	case pattern == "":
		return errors.New("empty pattern")
	case strings.HasSuffix(pattern, "."):
		return errors.New("multiple trailing dots in pattern")
	}
	for _, r := range pattern {
		switch {
		case r == '.':
			sb.WriteString(`\.`)
		case r == '*':
			sb.WriteString(`[-.0-9a-z]*`)
		case r == '-', r == '_', '0' <= r && r <= '9', 'a' <= r && r <= 'z':
			sb.WriteRune(r)
		default:
			return fmt.Errorf("%q: invalid rune in pattern", r)
		}
	}
	return nil
}

func compileFQDNPattern(patterns []string) (*regexp.Regexp, error) {
	var sb strings.Builder
	sb.WriteString(`\A(?:`)
	for i, p := range patterns {
		if i > 0 {
			sb.WriteByte('|')
		}
		if err := appendFQDNPatternRegexp(&sb, p); err != nil {
			return nil, err
		}
	}
	sb.WriteString(`)\z`)
	return regexp.Compile(sb.String())
}

func compileNodeNamePattern(patterns []string) (*regexp.Regexp, error) {
	var sb strings.Builder
	sb.WriteString(`\A(?:`)
	for i, p := range patterns {
		if i > 0 {
			sb.WriteByte('|')
		}
		if p == "" {
			return nil, errors.New("empty pattern")
		}
		cluster, node := "", ""
		parts := strings.Split(p, "/")
		switch len(parts) {
		case 1:
			node = parts[0]
		case 2:
			cluster, node = parts[0], parts[1]
		default:
			return nil, errors.New("too many slashes in pattern")
		}
		if cluster == "" {
			sb.WriteString(fqdnRegexpStr)
		} else if err := appendFQDNPatternRegexp(&sb, cluster); err != nil {
			return nil, err
		}
		sb.WriteByte('/')
		if node == "" {
			sb.WriteString(fqdnRegexpStr)
		} else if err := appendFQDNPatternRegexp(&sb, node); err != nil {
			return nil, err
		}
	}
	sb.WriteString(`)\z`)
	return regexp.Compile(sb.String())
}
