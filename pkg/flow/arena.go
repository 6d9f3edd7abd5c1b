package flow

import "unsafe"

const arenaChunk = 256 << 10

// Arena holds the bytes of strings decoded into a Batch's flows, so that
// decoding allocates no string per field. Strings returned by String are valid
// until Reset; whoever keeps a value past that (the archive's column buffers)
// must copy it. Chunks are never grown in place, so a string stays valid while
// later strings are added.
type Arena struct {
	buf    []byte
	chunks [][]byte // full chunks, kept for reuse after Reset
	used   int      // number of chunks of chunks in use
}

// String copies b into the arena and returns a string over the copy.
func (a *Arena) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > arenaChunk/4 {
		return string(b) // large values: a plain allocation is cheaper than waste
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.nextChunk()
	}
	n := len(a.buf)
	a.buf = append(a.buf, b...)
	s := a.buf[n:]
	return unsafe.String(unsafe.SliceData(s), len(s))
}

func (a *Arena) nextChunk() {
	if a.buf != nil {
		if a.used < len(a.chunks) {
			a.chunks[a.used] = a.buf
		} else {
			a.chunks = append(a.chunks, a.buf)
		}
		a.used++
	}
	if a.used < len(a.chunks) && a.chunks[a.used] != nil {
		a.buf = a.chunks[a.used][:0]
		a.chunks[a.used] = nil
		return
	}
	a.buf = make([]byte, 0, arenaChunk)
}

// Reset invalidates every string handed out and keeps the memory for reuse.
func (a *Arena) Reset() {
	if a.buf == nil {
		return
	}
	// Put the current chunk back and start again from the first one.
	if a.used < len(a.chunks) {
		a.chunks[a.used] = a.buf
	} else {
		a.chunks = append(a.chunks, a.buf)
	}
	a.buf = a.chunks[0][:0]
	a.chunks[0] = nil
	a.used = 0
}

// Size is the number of bytes the arena holds in use.
func (a *Arena) Size() int {
	n := len(a.buf)
	for i := 0; i < a.used; i++ {
		n += len(a.chunks[i])
	}
	return n
}
