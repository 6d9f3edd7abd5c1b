package filter

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// labelFilter: source_label, destination_label and node_labels, Kubernetes
// label selectors over the endpoints' and the node's labels.
func labelFilter(ff *flowpb.FlowFilter) ([]check, error) {
	var out []check
	for _, lf := range []struct {
		name, path string
		sels       []string
		get        func(*flowpb.Flow) []string
	}{
		{"source_label", "source.labels", ff.GetSourceLabel(), func(f *flowpb.Flow) []string { return f.GetSource().GetLabels() }},
		{"destination_label", "destination.labels", ff.GetDestinationLabel(), func(f *flowpb.Flow) []string { return f.GetDestination().GetLabels() }},
		{"node_labels", "node_labels", ff.GetNodeLabels(), func(f *flowpb.Flow) []string { return f.GetNodeLabels() }},
	} {
		if lf.sels == nil {
			continue
		}
		t, err := labelPred(lf.sels, lf.get)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", lf.name, err)
		}
		out = append(out, costly(t, lf.path)...)
	}
	return out, nil
}

// requirement is one parsed term of a label selector, with its key split the
// way Cilium's LabelArray.Has/Get split it ("src.key"; source "any" matches
// every source).
type requirement struct {
	source, key string
	op          selection.Operator
	values      []string
}

type selector []requirement

// labelPred compiles label selectors (OR across selectors, AND within one) with
// the semantics of Cilium's labels filter: keys are translated ("k8s:app" ->
// "k8s.app", "app" -> "any.app"), parsed by Kubernetes' selector parser, and
// matched against the flow's "source:key=value" labels as Cilium's LabelArray
// does, without parsing the flow's labels into a new array.
func labelPred(selectors []string, get func(*flowpb.Flow) []string) (pred, error) {
	var sels []selector
	for _, s := range selectors {
		translated, err := translateSelector(s)
		if err != nil {
			return nil, err
		}
		parsed, err := k8slabels.Parse(translated)
		if err != nil {
			return nil, fmt.Errorf("invalid label selector %q: %w", s, err)
		}
		reqs, _ := parsed.Requirements()
		var sel selector
		for _, r := range reqs {
			src, key := parseSelectKey(r.Key())
			sel = append(sel, requirement{source: src, key: key, op: r.Operator(), values: r.ValuesUnsorted()})
		}
		sels = append(sels, sel)
	}
	return func(f *flowpb.Flow) bool {
		labels := get(f)
		for _, sel := range sels {
			if sel.matches(labels) {
				return true
			}
		}
		return false
	}, nil
}

// parseSelectKey splits a translated selector key at its first '.' (Cilium's
// parseSelectLabel with '.' as the delimiter; "$x" is reserved source).
func parseSelectKey(k string) (src, key string) {
	if strings.HasPrefix(k, "$") {
		return "reserved", k[1:]
	}
	if i := strings.IndexByte(k, '.'); i >= 0 {
		return k[:i], k[i+1:]
	}
	return "unspec", k
}

// parseFlowLabel splits a flow label "source:key=value" as Cilium's ParseLabel.
func parseFlowLabel(s string) (src, key, value string) {
	next := s
	switch {
	case s == "":
		return "unspec", "", ""
	case s[0] == '$':
		src, next = "reserved", s[1:]
	default:
		if i := strings.IndexByte(s, ':'); i >= 0 {
			src, next = s[:i], s[i+1:]
		} else if strings.HasPrefix(s, "reserved.") {
			src, next = "reserved", s[len("reserved."):]
		} else {
			src = "unspec"
		}
	}
	if src == "" {
		src = "unspec"
	}
	i := strings.IndexByte(next, '=')
	if i < 0 {
		return src, next, ""
	}
	if i == 0 && src == "reserved" {
		return src, next[1:], ""
	}
	return src, next[:i], next[i+1:]
}

// lookup finds key among labels as LabelArray.Get does on the sorted array:
// the first label, in (source, key) order, whose key matches.
func lookup(labels []string, source, key string) (string, bool) {
	if fixedSource(source) && strings.IndexByte(key, '=') < 0 {
		// Fast path, equivalent to parseFlowLabel for a concrete source
		// without ':': a label has that source iff it starts with
		// "source:", and its key is the text up to the next '='. Every
		// match has the same source, so the first one wins as below.
		for _, l := range labels {
			if len(l) <= len(source) || l[len(source)] != ':' || l[:len(source)] != source {
				continue
			}
			next := l[len(source)+1:]
			if !strings.HasPrefix(next, key) {
				continue
			}
			if len(next) == len(key) {
				return "", true
			}
			if next[len(key)] == '=' {
				return next[len(key)+1:], true
			}
		}
		return "", false
	}
	found, bestSrc, val := false, "", ""
	for _, l := range labels {
		src, k, v := parseFlowLabel(l)
		if k != key || (source != "any" && src != source) {
			continue
		}
		if !found || src < bestSrc {
			found, bestSrc, val = true, src, v
		}
	}
	return val, found
}

// fixedSource reports whether lookup's fast path applies to source: a
// concrete source name that parseFlowLabel can only produce from a
// "source:" prefix.
func fixedSource(source string) bool {
	return source != "" && source != "any" && source != "reserved" && source != "unspec" &&
		source[0] != '$' && strings.IndexByte(source, ':') < 0
}

func (sel selector) matches(labels []string) bool {
	for _, r := range sel {
		v, has := lookup(labels, r.source, r.key)
		var ok bool
		switch r.op {
		case selection.In, selection.Equals, selection.DoubleEquals:
			ok = has && contains(r.values, v)
		case selection.NotIn, selection.NotEquals:
			ok = !has || !contains(r.values, v)
		case selection.Exists:
			ok = has
		case selection.DoesNotExist:
			ok = !has
		case selection.GreaterThan, selection.LessThan:
			if !has {
				return false
			}
			lv, err := strconv.ParseInt(v, 10, 64)
			if err != nil || len(r.values) != 1 {
				return false
			}
			rv, err := strconv.ParseInt(r.values[0], 10, 64)
			if err != nil {
				return false
			}
			ok = (r.op == selection.GreaterThan && lv > rv) || (r.op == selection.LessThan && lv < rv)
		}
		if !ok {
			return false
		}
	}
	return true
}

func contains(vals []string, v string) bool {
	for _, x := range vals {
		if x == v {
			return true
		}
	}
	return false
}

// translateSelector is Cilium's translation of Hubble label selectors to
// Kubernetes selector syntax (pkg/hubble/filters/labelparser.go).
func translateSelector(selector string) (string, error) {
	out := &strings.Builder{}
	in := strings.NewReader(selector)
	for in.Len() > 0 {
		if err := advanceToNextKey(in, out); err != nil {
			return "", err
		}
		if err := translateKey(in, out); err != nil {
			return "", err
		}
		if err := advanceToNextSelector(in, out); err != nil {
			return "", err
		}
	}
	return out.String(), nil
}

func advanceToNextKey(in *strings.Reader, out *strings.Builder) error {
	for {
		r, _, err := in.ReadRune()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !unicode.IsSpace(r) && r != '!' {
			return in.UnreadRune()
		}
		out.WriteRune(r)
	}
}

func translateKey(in *strings.Reader, out *strings.Builder) error {
	key := &strings.Builder{}
	defer func() {
		k := key.String()
		if !strings.Contains(k, ":") {
			k = "any:" + k
		}
		out.WriteString(strings.Replace(k, ":", ".", 1))
	}()
	for {
		r, _, err := in.ReadRune()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if unicode.IsSpace(r) || r == '=' || r == '!' || r == ',' {
			return in.UnreadRune()
		}
		key.WriteRune(r)
	}
}

func advanceToNextSelector(in *strings.Reader, out *strings.Builder) error {
	nesting := 0
	for {
		r, _, err := in.ReadRune()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch r {
		case '(':
			nesting++
		case ')':
			nesting--
		}
		out.WriteRune(r)
		if r == ',' && nesting == 0 {
			return nil
		}
	}
}
