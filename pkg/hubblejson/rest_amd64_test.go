package hubblejson

import "testing"

const hasVectorCount = true

// TestCountStructuralSSE2 is TestCountStructural without AVX2.
func TestCountStructuralSSE2(t *testing.T) {
	defer func(was bool) { hasAVX2 = was }(hasAVX2)
	hasAVX2 = false
	testCountStructural(t)
}

// fuzzVectorCounts checks each vector routine alone: it counts the whole
// blocks of b, and only them.
func fuzzVectorCounts(t *testing.T, b []byte) {
	if hasAVX2 {
		var c structural
		if n := countStructural32(b, &c); n != len(b)&^31 || c != countStructuralGeneric(b[:n]) {
			t.Fatalf("AVX2: %d bytes, %+v; want %d, %+v", n, c, len(b)&^31, countStructuralGeneric(b[:len(b)&^31]))
		}
	}
	var c structural
	if n := countStructural16(b, &c); n != len(b)&^15 || c != countStructuralGeneric(b[:n]) {
		t.Fatalf("SSE2: %d bytes, %+v; want %d, %+v", n, c, len(b)&^15, countStructuralGeneric(b[:len(b)&^15]))
	}
}

// BenchmarkCountStructuralSSE2 is BenchmarkCountStructural without AVX2.
func BenchmarkCountStructuralSSE2(b *testing.B) {
	defer func(was bool) { hasAVX2 = was }(hasAVX2)
	hasAVX2 = false
	BenchmarkCountStructural(b)
}
