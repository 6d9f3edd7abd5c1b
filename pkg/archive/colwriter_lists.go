package archive

// listSlots is the number of lists a strList leaf remembers (1<<listBits).
const (
	listBits  = 9
	listSlots = 1 << listBits
)

// listSlot is the slot of hint: a multiplicative hash, so that identities
// allocated in sequence spread.
func listSlot(hint uint32) int { return int((hint * 0x9E3779B1) >> (32 - listBits)) }

// listMemo is a list of strings a leaf appended: its values' indexes in the
// dictionary of chunk gen.
type listMemo struct {
	gen uint64
	ids []int32
}

// listHint is the strList hint of an optional uint32 field (0 for NULL).
func listHint(v *uint32) uint32 {
	if v == nil {
		return 0
	}
	return *v
}

// strList appends a non-empty list of strings (definition level 2, the
// first element at repetition level 0). A flow's label lists are those of
// its endpoints' identities and of its node, the same few lists over and
// over: the leaf remembers, by hint, the dictionary indexes of the last
// list it appended, and a list whose strings equal them (compared, so that
// a hint only chooses what to compare with) takes them without a
// dictionary lookup per label, the largest part of shredding a flow's
// labels (BenchmarkShredRows; bench/README.md).
// The leaf is a dictionary leaf (shredgen emits strList for those only).
func (l *leaf) strList(v []string, hint uint32) {
	if l.lists == nil {
		l.lists = make([]listMemo, listSlots)
	}
	m := &l.lists[listSlot(hint)]
	if m.gen == l.gen && len(m.ids) == len(v) && l.sameStrs(m.ids, v) {
		if len(l.idx)+len(v) > cap(l.idx) && l.long {
			l.reserveLong()
		}
		l.idx = append(l.idx, m.ids...)
		l.defs = append(l.defs, 2)
		l.reps = append(l.reps, 0)
		for range len(v) - 1 {
			l.defs = append(l.defs, 2)
			l.reps = append(l.reps, 1)
		}
		l.rows++
		l.lastIdx = m.ids[len(m.ids)-1]
		return
	}
	m.gen, m.ids = l.gen, m.ids[:0]
	for j, e := range v {
		l.lvl(2, rep(j, 0, 1))
		l.str(e)
		m.ids = append(m.ids, l.idx[len(l.idx)-1])
	}
}

// sameStrs reports whether v's strings are the dictionary values ids.
func (l *leaf) sameStrs(ids []int32, v []string) bool {
	for j, id := range ids {
		if l.dictVals[id] != v[j] {
			return false
		}
	}
	return true
}
