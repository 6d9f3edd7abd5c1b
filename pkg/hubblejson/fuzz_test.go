package hubblejson

import (
	"bytes"
	"path/filepath"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// FuzzDecode: never panics; what it accepts as a flow equals protojson's
// decoding, and what it encodes decodes back to the same flow.
func FuzzDecode(f *testing.F) {
	for _, p := range []string{"generated/encoder-golden-nomask.jsonl", "exporter-test-basic-expected.jsonl", "hubble-printer-test-jsonpb.jsonl"} {
		for _, l := range readLines(f, filepath.Join(fixtures(f), p)) {
			f.Add(l)
		}
	}
	f.Add([]byte(`{"flow":{"verdict":`))
	d := NewDecoder(nil)
	fl := &flowpb.Flow{}
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(line) > 10240 {
			return
		}
		kind, err := d.Decode(line, fl)
		if err != nil || kind != flow.KindFlow {
			return
		}
		var ev observerpb.ExportEvent
		if protojson.Unmarshal(line, &ev) == nil && ev.GetFlow() != nil && !proto.Equal(ev.GetFlow(), fl) {
			t.Fatalf("decoded flow differs from protojson's")
		}
		out, err := AppendFlowLine(nil, fl)
		if err != nil {
			return // invalid UTF-8 and the like: Cilium writes nothing either
		}
		again := &flowpb.Flow{}
		if _, err := NewDecoder(nil).Decode(bytes.TrimSuffix(out, []byte("\n")), again); err != nil {
			t.Fatalf("own output does not decode: %v\n%s", err, out)
		}
		if !proto.Equal(again, fl) {
			t.Fatalf("round trip changed the flow\n%s", out)
		}
	})
}
