package hubblepb_test

import (
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestMatchesUnmarshal is the differential test against proto.Unmarshal
// (into a fresh GetFlowsResponse; the flow pruned with pkg/fieldmask to
// the plan's fields): random messages with every field set, their
// rewritings (split and repeated fields, replaced oneof members, unknown
// fields, wrong wire types, non-minimal varints), damaged copies of them,
// the fixtures and generated flows, under every plan.
func TestMatchesUnmarshal(t *testing.T) {
	n := 1500
	if testing.Short() || raceEnabled {
		n = 300
	}
	r := rand.New(rand.NewPCG(1, 2))
	var valid, varied, damaged [][]byte
	for range n {
		w := marshal(t, randomResponse(r))
		valid = append(valid, w)
		m := mutate(r, w, respDesc)
		varied = append(varied, m)
		damaged = append(damaged, damage(r, m), damage(r, w))
	}
	fixtures := fixtureResponses(t)
	generated := genResponses(t, n, 5)
	for _, p := range plans {
		t.Run(p.name, func(t *testing.T) {
			for _, set := range []struct {
				name     string
				msgs     [][]byte
				accepted int // at least
			}{
				{"random", valid, len(valid)},
				{"rewritten", varied, len(varied)},
				{"damaged", damaged, 0},
				{"fixtures", fixtures, len(fixtures)},
				{"generated", generated, len(generated)},
			} {
				c := newChecker(t, p)
				for _, w := range set.msgs {
					c.check(w)
				}
				if c.accepted < set.accepted {
					t.Errorf("%s: %d of %d messages accepted, want %d", set.name, c.accepted, len(set.msgs), set.accepted)
				}
				if set.name == "damaged" && (c.accepted == 0 || c.accepted == len(set.msgs)) {
					t.Errorf("damaged: %d of %d accepted; want some of each", c.accepted, len(set.msgs))
				}
			}
		})
	}
}

// TestRandomPlans: random filters and masks over every path.
func TestRandomPlans(t *testing.T) {
	n := 120
	if testing.Short() || raceEnabled {
		n = 30
	}
	r := rand.New(rand.NewPCG(3, 4))
	paths := allPaths()
	var msgs [][]byte
	for range 200 {
		w := marshal(t, randomResponse(r))
		msgs = append(msgs, w, mutate(r, w, respDesc), damage(r, w))
	}
	for range n {
		p := randomPlan(r, paths)
		c := newChecker(t, p)
		c.finishEvery = 1 + r.IntN(3)
		for _, w := range msgs {
			c.check(w)
		}
	}
}

// TestRandomFlowsSetEveryField: the differential tests' random messages
// hold every field of a flow somewhere (each oneof member, lists, the Any
// of extensions), the events and the envelope.
func TestRandomFlowsSetEveryField(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			seen[fd.FullName()] = true
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.Message() != nil && !fd.IsList():
				walk(v.Message())
			}
			return true
		})
	}
	r := newRand(3)
	for range 300 {
		walk(randomResponse(r).ProtoReflect())
	}
	var all func(md protoreflect.MessageDescriptor)
	done := map[protoreflect.FullName]bool{}
	all = func(md protoreflect.MessageDescriptor) {
		if done[md.FullName()] {
			return
		}
		done[md.FullName()] = true
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			if !seen[fd.FullName()] {
				t.Errorf("no random message has %s", fd.FullName())
			}
			if fd.Message() != nil {
				all(fd.Message())
			}
		}
	}
	all(respDesc)
}
