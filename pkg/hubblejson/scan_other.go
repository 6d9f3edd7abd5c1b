//go:build !amd64

package hubblejson

// scanPlain returns the offset of the first byte at or after j that is not
// plainByte.
func scanPlain(b []byte, j int) int { return scanPlainSWAR(b, j) }

func countStructural(b []byte) structural { return countStructuralGeneric(b) }
