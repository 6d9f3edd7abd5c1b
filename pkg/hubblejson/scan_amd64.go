package hubblejson

import "golang.org/x/sys/cpu"

// scanPlain16 is in scan_amd64.s (SSE2, which every amd64 CPU has).
//
//go:noescape
func scanPlain16(b []byte, j int) int

// scanPlain returns the offset of the first byte at or after j that is not
// plainByte: sixteen bytes at a time, then eight, then one.
func scanPlain(b []byte, j int) int {
	if len(b)-j >= 16 {
		if j = scanPlain16(b, j); len(b)-j >= 16 {
			return j // a stop byte inside a full block
		}
	}
	return scanPlainSWAR(b, j)
}

// countStructural16 and countStructural32 are in scan_amd64.s (SSE2, AVX2):
// they count b[from:] in whole blocks (from >= 1, b[from-1] being the byte
// before the first, for the seam check) and return where they stopped.
//
//go:noescape
func countStructural16(b []byte, from int, c *structural) int

//go:noescape
func countStructural32(b []byte, from int, c *structural) int

var hasAVX2 = cpu.X86.HasAVX2

// canStop: Decode may stop reading a line after the filter's fields, the
// rest checked by countStructural (Plan.stopAt).
const canStop = true

// countStructural counts b[from:] for restComplete (from >= 1): 32 bytes at
// a time with AVX2, then sixteen, the rest one by one.
func countStructural(b []byte, from int) structural {
	var c structural
	n := from
	if hasAVX2 {
		n = countStructural32(b, n, &c)
	}
	n = countStructural16(b, n, &c)
	c.add(b, n)
	return c
}
