package filter

import (
	"math/rand/v2"
	"testing"
)

// slowLookup is lookup without the fixed-source fast path: every label parsed
// by parseFlowLabel, the smallest source winning.
func slowLookup(labels []string, source, key string) (string, bool) {
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

// TestLookupFastPathEquivalence checks lookup's fast path against the general
// parse on labels built from odd fragments (empty sources, '$', ':' and '='
// in unusual places, duplicates).
func TestLookupFastPathEquivalence(t *testing.T) {
	frags := []string{"", "k8s", "app", ":", "=", "$", ".", "reserved", "x", "k8s:", "app=", "a:b", "k8s.app", "=v", "container"}
	r := rand.New(rand.NewPCG(7, 7))
	word := func() string {
		s := ""
		for n := r.IntN(4); n >= 0; n-- {
			s += frags[r.IntN(len(frags))]
		}
		return s
	}
	for i := 0; i < 200000; i++ {
		labels := make([]string, r.IntN(5))
		for j := range labels {
			labels[j] = word()
		}
		src, key := word(), word()
		if r.IntN(2) == 0 {
			src = "k8s"
		}
		gv, gok := lookup(labels, src, key)
		wv, wok := slowLookup(labels, src, key)
		if gv != wv || gok != wok {
			t.Fatalf("lookup(%q, %q, %q) = %q,%v; general parse %q,%v", labels, src, key, gv, gok, wv, wok)
		}
	}
}
