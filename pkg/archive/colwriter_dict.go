package archive

import (
	"math/bits"
	"strings"
)

// str appends a string value: a dictionary leaf's index of it (the last
// value's, a cached lookup's, or the chunk dictionary's, which it joins when
// new), any other leaf's bytes.
func (l *leaf) str(s string) {
	if l.kind != leafDict {
		l.bytes = append(grow(l.bytes, len(s)), s...)
		l.offs = append(l.offs, uint32(len(l.bytes)))
		return
	}
	if len(l.idx) == cap(l.idx) && l.long {
		l.reserveLong()
	}
	id := l.lastIdx
	if id < 0 || l.dictVals[id] != s {
		var slot *int32
		if l.dslots != nil {
			slot = &l.dslots[strSlot(s)]
			id = *slot - 1
		} else if l.misses++; l.misses >= dictSlotsAfter {
			l.dslots = new([dictSlots]int32)
		}
		if slot == nil || id < 0 || l.dictVals[id] != s {
			var ok bool
			if id, ok = l.dict[s]; !ok {
				c := strings.Clone(s)
				id = int32(len(l.dictVals))
				l.dict[c] = id
				l.dictVals = append(l.dictVals, c)
			}
			if slot != nil {
				*slot = id + 1
			}
		}
		l.lastIdx = id
	}
	l.idx = append(l.idx, id)
}

// dictSlots is the size of a leaf's cache of dictionary lookups, made
// after dictSlotsAfter lookups.
const (
	dictSlotBits   = 10
	dictSlots      = 1 << dictSlotBits
	dictSlotsAfter = 4096
)

// strSlot is s's slot in a leaf's cache of dictionary lookups: a hash of
// its length and its first and last eight bytes (the whole of most IPs;
// a pod name's deployment and its hash suffix).
func strSlot(s string) uint32 {
	n := len(s)
	var x uint64
	if n >= 8 {
		x = le64(s[:8]) ^ bits.RotateLeft64(le64(s[n-8:]), 31)
	} else {
		for i := 0; i < n; i++ {
			x = x<<8 | uint64(s[i])
		}
	}
	x = (x ^ uint64(n)) * 0x9E3779B97F4A7C15
	return uint32(x >> (64 - dictSlotBits))
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// intern returns b's index in the chunk's dictionary, adding it if new.
func (l *leaf) intern(b []byte) int32 {
	if id, ok := l.dict[string(b)]; ok {
		return id
	}
	c := string(b)
	id := int32(len(l.dictVals))
	l.dict[c] = id
	l.dictVals = append(l.dictVals, c)
	return id
}
