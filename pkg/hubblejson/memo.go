package hubblejson

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
	"unsafe"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// memo remembers values of one field: their bytes, and with them what
// decoding them gave (E; nothing for a value that was only checked). When
// the same bytes come again at that field, they are the same value, and
// decoding or checking it is a comparison. A JSON object, list or string
// ends where its bytes say and its validity depends on its bytes alone, so
// a line whose bytes at i start with a remembered value holds exactly that
// value at i.
//
// The memoized fields (gendec's memoized and decodeMemoized) hold most of a
// flow's bytes (the endpoints with their label lists, node labels, names,
// policies) and repeat from flow to flow: they describe a node's pods and
// policies rather than one connection. A field whose values do not repeat
// stops being looked up for a while (memoBypass), so that a memo costs
// little where it does not help.
type memo[E any] struct {
	// sets: memoSets sets of memoWays entries (the most recently used
	// first), by a hash of the value's first bytes (memoSet). Nil until the
	// first lookup.
	sets        *[memoSets][memoWays]memoEntry[E]
	tries, hits int32
	bypass      int32 // lookups left to skip
	held        int   // bytes of the remembered values
}

type memoEntry[E any] struct {
	b []byte // the value's bytes; empty: no value
	e E
}

const (
	memoSets   = 256
	memoWays   = 4       // a node's few hundred endpoints spread over 256 sets: two ways thrash
	memoHashed = 192     // bytes memoSet reads from the value's start (fewer in a shorter value)
	memoMaxLen = 8 << 10 // longer values are not remembered
	// memoBudget bounds the bytes of the values a memo holds (a decoded
	// endpoint holds its strings once more): a few hundred endpoints of
	// ~1 KB fit, and a field of many large values cannot grow a decoder
	// (the daemon's RSS target is 64 MiB) past ~1 MiB per memoized field.
	memoBudget = 1 << 20
	memoWindow = 2048 // lookups between two looks at the hit rate
	memoBypass = 32 * memoWindow
)

// find returns the remembered entry whose value b[i:] starts with, or nil
// and the set to remember the value in once it is decoded (-1: do not).
func (m *memo[E]) find(b []byte, i int) (*memoEntry[E], int) {
	if m.bypass > 0 {
		m.bypass--
		return nil, -1
	}
	if m.sets == nil {
		m.sets = new([memoSets][memoWays]memoEntry[E])
	}
	if m.tries++; m.tries >= memoWindow {
		if m.hits < m.tries/8 {
			m.bypass = memoBypass
		}
		m.tries, m.hits = 0, 0
	}
	rest := b[i:]
	set := memoSet(rest)
	ws := &m.sets[set]
	for w := range ws {
		if v := ws[w].b; len(v) > 0 && len(rest) >= len(v) && string(rest[:len(v)]) == string(v) {
			if w > 0 { // the most recently used first
				hit := ws[w]
				copy(ws[1:w+1], ws[:w])
				ws[0] = hit
			}
			m.hits++
			return &ws[0], set
		}
	}
	return nil, set
}

// add remembers the value b[i:j] in set (from find), in place of the least
// recently used of the set's entries, whose buffers it reuses, and returns
// its entry (nil for a value too long to remember).
func (m *memo[E]) add(b []byte, set, i, j int) *memoEntry[E] {
	ws := &m.sets[set]
	const last = memoWays - 1
	if j-i > memoMaxLen || j <= i || m.held-len(ws[last].b)+(j-i) > memoBudget/2 {
		return nil
	}
	m.held += j - i - len(ws[last].b)
	old := ws[last]
	copy(ws[1:], ws[:last])
	ws[0] = old
	ws[0].b = append(ws[0].b[:0], b[i:j]...)
	return &ws[0]
}

// memoSet hashes up to eight words of b's first memoHashed bytes, denser at
// the start, to a set: an endpoint's ID and identity come first, label
// lists differ a few labels in. Only bytes of the value at b[0] are hashed,
// so that a value lands in the same set whatever follows it on the line: a
// value shorter than memoHashed (a node's labels, a list of DNS names)
// would otherwise hash the next member's bytes too, which differ from flow
// to flow, and miss. The hashed bytes end at the first byte that can close
// the value ('}' for an object, ']' for a list, '"' after a string's
// first), which lies inside it whatever it holds.
func memoSet(b []byte) int {
	n := min(len(b), memoHashed)
	if n > 0 {
		var c byte
		switch b[0] {
		case '{':
			c = '}'
		case '[':
			c = ']'
		case '"':
			c = '"'
		}
		if c != 0 {
			if k := bytes.IndexByte(b[1:n], c); k >= 0 {
				n = k + 2
			}
		}
	}
	var h uint64
	for _, off := range memoWords {
		if off+8 > n {
			break
		}
		h += bits.RotateLeft64(binary.LittleEndian.Uint64(b[off:]), off) * 0x9e3779b97f4a7c15
	}
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	return int(h>>32) % memoSets
}

// memoWords are the offsets of the words memoSet hashes.
var memoWords = [...]int{0, 8, 24, 48, 72, 104, 144, memoHashed - 8}

// endpointDecoded is an endpoint as decEndpoint decoded it with sel; its
// strings point into strs, one after the other in the order remember takes
// them, which only the entry's next value rewrites (flows get copies:
// copyEndpoint).
type endpointDecoded struct {
	sel       *fsel
	ep        flowpb.Endpoint
	workloads []flowpb.Workload
	strs      []byte
}

// decEndpointMemo decodes the endpoint at d.b[i:] into m as decEndpoint
// does, from mo's entry when the bytes are a remembered endpoint decoded
// with the same selection. (While checking, decEndpoint: nothing is kept.)
func (d *fastDec) decEndpointMemo(mo *memo[endpointDecoded], i int, m *flowpb.Endpoint, sel *fsel) (int, error) {
	if d.noStore > 0 {
		return d.decEndpoint(i, m, sel)
	}
	e, set := mo.find(d.b, i)
	if e != nil && e.e.sel == sel {
		d.copyEndpoint(m, &e.e)
		return i + len(e.b), nil
	}
	j, err := d.decEndpoint(i, m, sel)
	if err != nil || set < 0 {
		return j, err
	}
	if e == nil { // else: the same bytes decoded with another selection
		if e = mo.add(d.b, set, i, j); e == nil {
			return j, nil
		}
	}
	e.e.remember(m, sel)
	return j, nil
}

// remember makes x a copy of m, decoded with sel.
func (x *endpointDecoded) remember(m *flowpb.Endpoint, sel *fsel) {
	n := len(m.ClusterName) + len(m.Namespace) + len(m.PodName)
	for _, l := range m.Labels {
		n += len(l)
	}
	for _, w := range m.Workloads {
		n += len(w.Name) + len(w.Kind)
	}
	x.strs = slices.Grow(x.strs[:0], n) // no reallocation below: views stay valid
	x.sel = sel
	e := &x.ep
	e.ID, e.Identity = m.ID, m.Identity
	e.ClusterName, e.Namespace, e.PodName = x.view(m.ClusterName), x.view(m.Namespace), x.view(m.PodName)
	e.Labels = e.Labels[:0]
	for _, l := range m.Labels {
		e.Labels = append(e.Labels, x.view(l))
	}
	if len(x.workloads) < len(m.Workloads) {
		x.workloads = make([]flowpb.Workload, len(m.Workloads))
	}
	e.Workloads = e.Workloads[:0]
	for k, w := range m.Workloads {
		c := &x.workloads[k]
		c.Name, c.Kind = x.view(w.Name), x.view(w.Kind)
		e.Workloads = append(e.Workloads, c)
	}
}

// view appends s to strs and returns it from there.
func (x *endpointDecoded) view(s string) string {
	if s == "" {
		return ""
	}
	n := len(x.strs)
	x.strs = append(x.strs, s...)
	return unsafe.String(&x.strs[n], len(s))
}

// copyEndpoint sets m to x's endpoint as decEndpoint sets a reused message:
// its strings are one copy of x's in the arena (they live as long as decoded
// ones do), lists and workloads m's own.
func (d *fastDec) copyEndpoint(m *flowpb.Endpoint, x *endpointDecoded) {
	blk := d.string(x.strs)
	take := func(s string) string { // the next len(s) bytes: remember's order
		r := blk[:len(s)]
		blk = blk[len(s):]
		return r
	}
	e := &x.ep
	m.ID, m.Identity = e.ID, e.Identity
	m.ClusterName = take(e.ClusterName)
	m.Namespace = take(e.Namespace)
	m.PodName = take(e.PodName)
	m.Labels = m.Labels[:0]
	for _, l := range e.Labels {
		m.Labels = append(m.Labels, take(l))
	}
	m.Workloads = m.Workloads[:0]
	for _, w := range e.Workloads {
		var c *flowpb.Workload
		if n := len(m.Workloads); n < cap(m.Workloads) {
			m.Workloads = m.Workloads[:n+1]
			if c = m.Workloads[n]; c == nil {
				c = d.newWorkload()
				m.Workloads[n] = c
			}
		} else {
			c = d.newWorkload()
			m.Workloads = append(m.Workloads, c)
		}
		c.Name = take(w.Name)
		c.Kind = take(w.Kind)
	}
}
