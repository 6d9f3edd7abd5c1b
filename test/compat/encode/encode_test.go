// Package encode checks flowaudit's events.log encoder against Cilium's own:
// json.NewEncoder(w).Encode(&observerpb.ExportEvent{...}), which is exactly
// what pkg/hubble/exporter does (observerpb's generated MarshalJSON).
package encode

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

func TestGeneratedEventsMatchCiliumEncoder(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	g, err := gen.New(gen.Config{Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	var got []byte
	for i := 0; i < n; i++ {
		ev := g.Next()
		want.Reset()
		if err := enc.Encode(ev); err != nil {
			t.Fatalf("event %d: cilium encoder: %v", i, err)
		}
		got, err = hubblejson.AppendEventLine(got[:0], ev)
		if err != nil {
			t.Fatalf("event %d: AppendEventLine: %v", i, err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("event %d differs:\n got %s\nwant %s", i, got, want.Bytes())
		}
	}
}
