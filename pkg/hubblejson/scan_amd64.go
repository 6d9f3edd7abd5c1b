package hubblejson

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
