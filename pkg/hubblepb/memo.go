package hubblepb

import "hash/maphash"

// memo remembers decoded messages of one type by their wire bytes: when the
// same bytes come again, decoded with the same selection and not merged
// into an earlier occurrence, the result is the same message, and a copy of
// the remembered one replaces decoding it. The memoized types (genpb's
// memoized) are the flow's endpoints: they hold most of a flow's bytes and
// strings (the label lists) and repeat from flow to flow, since they
// describe a node's pods rather than one connection. Only messages whose
// strings are all interned are remembered (an arena's strings die with its
// batch); copies share those strings.
//
// A memo whose lookups mostly miss stops looking up for a while (bypass), so
// that it costs little where it does not help.
type memo[T any] struct {
	sets        *[memoSets][memoWays]memoEntry[T]
	tries, hits int32
	bypass      int32 // lookups left to skip
	held        int   // bytes of the remembered keys
	found       int64 // hits since the start
}

type memoEntry[T any] struct {
	key []byte // the wire bytes; nil: no value
	sel *sel   // the selection they were decoded with
	v   *T
}

const (
	memoSets   = 256
	memoWays   = 4
	memoMaxLen = 8 << 10 // longer messages are not remembered
	// memoBudget bounds the bytes of the keys a memo holds (the decoded
	// values hold interned strings, shared with the flows).
	memoBudget = 1 << 20
	memoWindow = 2048 // lookups between two looks at the hit rate
	memoBypass = 32 * memoWindow
)

var memoSeed = maphash.MakeSeed()

// memoHashed is how many of a message's first bytes choose its set: an
// endpoint's first fields (ID, identity, cluster, namespace, first labels)
// tell one from another, and hashing the whole message would be a second
// pass over its bytes besides the comparison a hit needs.
const memoHashed = 48

// memoSet returns the set of the message b, from its length and first
// bytes.
func memoSet(b []byte) int {
	h := maphash.Bytes(memoSeed, b[:min(len(b), memoHashed)])
	return int((h ^ uint64(len(b))*0x9e3779b97f4a7c15) % memoSets)
}

// find returns the message remembered for b decoded with s, or nil and the
// set to remember it in once decoded (-1: do not).
func (m *memo[T]) find(b []byte, s *sel) (*T, int) {
	if m.bypass > 0 {
		m.bypass--
		return nil, -1
	}
	if len(b) > memoMaxLen {
		return nil, -1
	}
	if m.sets == nil {
		m.sets = new([memoSets][memoWays]memoEntry[T])
	}
	if m.tries++; m.tries >= memoWindow {
		if m.hits < m.tries/8 {
			m.bypass = memoBypass
		}
		m.tries, m.hits = 0, 0
	}
	set := memoSet(b)
	ws := &m.sets[set]
	for w := range ws {
		if e := &ws[w]; e.sel == s && e.key != nil && string(e.key) == string(b) {
			if w > 0 { // the most recently used first
				hit := *e
				copy(ws[1:w+1], ws[:w])
				ws[0] = hit
			}
			m.hits++
			m.found++
			return ws[0].v, set
		}
	}
	return nil, set
}

// add makes room for b decoded with s in set (from find), in place of the
// least recently used entry, and returns the message to copy the decoded
// one into (the old entry's, reused), or nil when over the budget.
func (m *memo[T]) add(b []byte, s *sel, set int) *T {
	ws := &m.sets[set]
	const last = memoWays - 1
	if m.held-len(ws[last].key)+len(b) > memoBudget {
		return nil
	}
	m.held += len(b) - len(ws[last].key)
	old := ws[last]
	copy(ws[1:], ws[:last])
	old.key = append(old.key[:0], b...)
	if old.key == nil {
		old.key = []byte{} // an empty message: remembered too
	}
	old.sel = s
	if old.v == nil {
		old.v = new(T)
	}
	ws[0] = old
	return old.v
}

// strList is a remembered run of a repeated string field's values.
type strList struct{ vals []string }

// strRun decodes the run of values of a repeated string field (interned
// field k) that starts at b, just after its first tag t: the values that
// follow each other with tag t. It appends them to dst, through the
// field's memo of runs (a node's labels are the same bytes in every flow
// of the node), and returns dst and the length of the run. A run ends at
// the first other tag (or a malformed one, which the caller reports).
func (d *Decoder) strRun(b []byte, t uint64, k int, mo *memo[strList], dst []string, field string) ([]string, int, error) {
	end := 0
	for {
		_, n := bytesFast(b[end:])
		if n == 0 {
			if _, n = bytesSlow(b[end:]); n < 0 {
				return dst, 0, errAt(field, n)
			}
		}
		end += n
		if end == len(b) {
			break
		}
		nt, n := tagFast(b[end:])
		if n == 0 {
			nt, n = tagSlow(b[end:])
		}
		if n <= 0 || nt != t {
			break
		}
		end += n
	}
	run := b[:end]
	x, set := mo.find(run, nil)
	if x != nil {
		return append(dst, x.vals...), end, nil
	}
	arena, first := d.arenaUses, len(dst)
	for p := run; ; {
		v, n := bytesFast(p)
		if n == 0 {
			v, n = bytesSlow(p)
		}
		p = p[n:]
		s, ok := d.intern(v, k)
		if !ok {
			return dst, 0, errUTF8(field)
		}
		dst = append(dst, s)
		if len(p) == 0 {
			break
		}
		if _, n = tagFast(p); n == 0 {
			_, n = tagSlow(p)
		}
		p = p[n:]
	}
	if set >= 0 && d.arenaUses == arena { // strings that die with the batch are not remembered
		if x = mo.add(run, nil, set); x != nil {
			x.vals = append(x.vals[:0], dst[first:]...)
		}
	}
	return dst, end, nil
}
