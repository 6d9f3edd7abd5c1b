package hubblepb_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// FuzzDecode: on any input the decoder agrees with proto.Unmarshal (the
// same accept or reject decision, the same flow, event and envelope when
// accepted) under a full and two partial plans, in a fresh decoder and in
// one that has decoded flows before (reused slots, memos, interned
// strings), and never panics.
func FuzzDecode(f *testing.F) {
	r := newRand(11)
	for _, c := range hostileCases() {
		if len(c.msg) < 1<<12 {
			f.Add([]byte(c.msg))
		}
	}
	for _, w := range fixtureResponses(f)[:20] {
		f.Add(w)
	}
	gen := genResponses(f, 20, 12)
	for _, w := range gen {
		f.Add(w)
		f.Add(mutate(r, w, respDesc))
	}
	for range 10 {
		f.Add(mutate(r, marshal(f, randomResponse(r)), respDesc))
	}
	f.Add(protowire.AppendTag(nil, 1, protowire.StartGroupType))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > 1<<16 {
			return
		}
		for _, p := range []plan{plans[0], plans[1], plans[4]} {
			newChecker(t, p).check(msg)
			c := newChecker(t, p)
			for _, w := range gen[:3] {
				c.check(w)
			}
			c.check(msg)
			c.check(msg)
			c.check(gen[0])
		}
	})
}
