package hubblejson

import (
	"testing"
	"unsafe"
)

const hasVectorCount = true

// TestCountStructuralSSE2 is TestCountStructural without AVX2.
func TestCountStructuralSSE2(t *testing.T) {
	defer func(was bool) { hasAVX2 = was }(hasAVX2)
	hasAVX2 = false
	testCountStructural(t)
}

// TestStructuralLayout: scan_amd64.s writes the fields at these offsets.
func TestStructuralLayout(t *testing.T) {
	var c structural
	if unsafe.Offsetof(c.quotes) != 0 || unsafe.Offsetof(c.opens) != 8 || unsafe.Offsetof(c.closes) != 16 ||
		unsafe.Offsetof(c.backslash) != 24 || unsafe.Offsetof(c.special) != 25 {
		t.Fatal("structural's layout changed: update scan_amd64.s")
	}
}

// fuzzVectorCounts checks each vector routine alone: it counts the whole
// blocks of b[from:], and only them.
func fuzzVectorCounts(t *testing.T, b []byte, from int) {
	blocks := func(size int) int { return from + (len(b)-from)/size*size }
	if hasAVX2 {
		var c structural
		if n := countStructural32(b, from, &c); n != blocks(32) || c != countStructuralGeneric(b[:n], from) {
			t.Fatalf("AVX2 from %d: to %d, %+v; want %d, %+v", from, n, c, blocks(32), countStructuralGeneric(b[:blocks(32)], from))
		}
	}
	var c structural
	if n := countStructural16(b, from, &c); n != blocks(16) || c != countStructuralGeneric(b[:n], from) {
		t.Fatalf("SSE2 from %d: to %d, %+v; want %d, %+v", from, n, c, blocks(16), countStructuralGeneric(b[:blocks(16)], from))
	}
}

// BenchmarkCountStructuralSSE2 is BenchmarkCountStructural without AVX2.
func BenchmarkCountStructuralSSE2(b *testing.B) {
	defer func(was bool) { hasAVX2 = was }(hasAVX2)
	hasAVX2 = false
	BenchmarkCountStructural(b)
}
