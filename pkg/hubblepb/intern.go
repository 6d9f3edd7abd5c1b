package hubblepb

import (
	"hash/maphash"
	"unicode/utf8"
	"unsafe"
)

// interner hands out one string per distinct value of the fields whose
// values repeat from flow to flow (namespaces, pod names, labels, node
// names, policies: a cluster's few): a value seen before costs a hash and a
// comparison, no copy and no UTF-8 check (its bytes were checked when it
// was first seen). The strings are ordinary Go memory, valid as long as
// they are referenced: the table dropping them (when it is full) does not
// invalidate them.
type interner struct {
	slots []string // open addressing, linear probing; "" is a free slot
	used  int      // slots in use
	held  int      // bytes of the values in the table
	chunk []byte   // where new values are copied (a new one when full)
}

const (
	internMaxLen   = 256      // longer values go to the arena
	internMinSlots = 1 << 9   // the table's first size
	internMaxSlots = 1 << 16  // the table grows to this many slots, then starts again
	internBudget   = 4 << 20  // bytes of values held before the table starts again
	internChunk    = 64 << 10 // values are copied into chunks of this size
)

var internSeed = maphash.MakeSeed()

// intern returns the string of the bytes b (1 to internMaxLen of them),
// whether it was in the table already, and false when the bytes are not
// valid UTF-8.
func (t *interner) intern(b []byte) (s string, hit, ok bool) {
	if t.slots == nil {
		t.slots = make([]string, internMinSlots)
	}
	mask := uint64(len(t.slots) - 1)
	i := maphash.Bytes(internSeed, b) & mask
	for {
		s = t.slots[i]
		if s == "" {
			break
		}
		if s == string(b) {
			return s, true, true
		}
		i = (i + 1) & mask
	}
	if !utf8.Valid(b) {
		return "", false, false
	}
	if (t.used+1)*2 > len(t.slots) || t.held+len(b) > internBudget {
		t.grow()
		s, _, _ = t.intern(b)
		return s, false, true
	}
	s = t.copy(b)
	t.slots[i] = s
	t.used++
	t.held += len(b)
	return s, false, true
}

// grow doubles the table, or, at its largest size or over its byte budget,
// starts again empty: a hostile or huge set of values costs a copy per new
// value and a chunk per internChunk bytes of them, never more memory.
func (t *interner) grow() {
	if len(t.slots) >= internMaxSlots || t.held >= internBudget/2 {
		clear(t.slots)
		t.used, t.held, t.chunk = 0, 0, nil
		return
	}
	old := t.slots
	t.slots = make([]string, 2*len(old))
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s == "" {
			continue
		}
		i := maphash.String(internSeed, s) & mask
		for t.slots[i] != "" {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

// copy copies b into the current chunk and returns it as a string. Chunks
// are never written again where a string was handed out.
func (t *interner) copy(b []byte) string {
	if cap(t.chunk)-len(t.chunk) < len(b) {
		t.chunk = make([]byte, 0, internChunk)
	}
	n := len(t.chunk)
	t.chunk = append(t.chunk, b...)
	return unsafe.String(&t.chunk[n], len(b))
}
