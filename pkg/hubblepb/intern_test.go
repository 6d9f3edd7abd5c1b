package hubblepb

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// TestInternerKeepsOneCopy: a value seen before is the same string (no
// copy), a new one is added; invalid UTF-8 is refused and not added; the
// strings handed out stay intact while the table grows and starts again.
func TestInternerKeepsOneCopy(t *testing.T) {
	var in interner
	a, hit, ok := in.intern([]byte("k8s:app=api"))
	if hit || !ok || a != "k8s:app=api" {
		t.Fatalf("first: %q %v %v", a, hit, ok)
	}
	b, hit, ok := in.intern([]byte("k8s:app=api"))
	if !hit || !ok || unsafe.StringData(a) != unsafe.StringData(b) {
		t.Fatalf("second: a copy (%v %v)", hit, ok)
	}
	if _, _, ok := in.intern([]byte{'a', 0xff}); ok {
		t.Fatal("invalid UTF-8 accepted")
	}
	if _, hit, ok := in.intern([]byte{'a', 0xff}); hit || ok {
		t.Fatal("invalid UTF-8 added")
	}
	var got, want []string
	for i := range 3 * internMaxSlots {
		v := fmt.Sprintf("value-%d-%s", i, strings.Repeat("x", i%50))
		s, _, ok := in.intern([]byte(v))
		if !ok {
			t.Fatal(v)
		}
		got, want = append(got, s), append(want, v)
		if len(in.slots) > internMaxSlots || in.held > internBudget {
			t.Fatalf("table of %d slots, %d bytes", len(in.slots), in.held)
		}
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("string %d changed: %q", i, got[i])
		}
	}
	if in.used*2 > len(in.slots) {
		t.Fatalf("%d of %d slots used", in.used, len(in.slots))
	}
}

// TestInternedFieldWithoutRepeats: a field whose values do not repeat
// (after a window of lookups) goes to the arena, another field is still
// interned; values that repeat again are interned again after a while.
func TestInternedFieldWithoutRepeats(t *testing.T) {
	d := NewDecoder(nil)
	var arena flow.Arena
	d.SetArena(&arena)
	for i := range internWindow {
		d.intern([]byte(fmt.Sprintf("mac-%d", i)), 0)
		d.intern([]byte("default"), 1)
	}
	before := d.arenaUses
	s, _ := d.intern([]byte("mac-new"), 0)
	if d.arenaUses != before+1 || s != "mac-new" {
		t.Fatalf("a field of new values still interned (arena uses %d -> %d)", before, d.arenaUses)
	}
	if d.intern([]byte("default"), 1); d.arenaUses != before+1 {
		t.Fatal("a field of repeated values no longer interned")
	}
	for range internBypass {
		d.intern([]byte("mac-new"), 0)
	}
	before = d.arenaUses
	if d.intern([]byte("mac-new"), 0); d.arenaUses != before {
		t.Fatal("the field went to the arena for good")
	}
	// Too long for the table: the arena.
	before = d.arenaUses
	if s, ok := d.intern([]byte(strings.Repeat("l", internMaxLen+1)), 1); !ok || len(s) != internMaxLen+1 || d.arenaUses != before+1 {
		t.Fatal("a long value interned")
	}
}
