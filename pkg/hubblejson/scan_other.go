//go:build !amd64

package hubblejson

// scanPlain returns the offset of the first byte at or after j that is not
// plainByte.
func scanPlain(b []byte, j int) int { return scanPlainSWAR(b, j) }

// canStop: without vector code, checking the rest of a line byte by byte
// costs about what reading it whole does, so Decode reads every line whole.
const canStop = false

// countStructural counts b[from:] for restComplete (from >= 1).
func countStructural(b []byte, from int) structural { return countStructuralGeneric(b, from) }
