package hubblejson

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

func fixtures(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "fixtures")
}

func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("fixture: %v", err)
	}
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

// TestRoundTripExporterFixtures: every line Cilium's exporter wrote decodes and
// re-encodes to the same bytes.
func TestRoundTripExporterFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtures(t), "generated", "*.jsonl"))
	files = append(files,
		filepath.Join(fixtures(t), "events-log-doc-example.jsonl"),
		filepath.Join(fixtures(t), "exporter-test-basic-expected.jsonl"),
		filepath.Join(fixtures(t), "exporter-test-fieldmask-expected.jsonl"),
		filepath.Join(fixtures(t), "exporter-test-filters-expected.jsonl"))
	n := 0
	for _, path := range files {
		for i, line := range readLines(t, path) {
			var ev observerpb.ExportEvent
			if err := protojson.Unmarshal(line, &ev); err != nil {
				t.Fatalf("%s:%d: %v", path, i+1, err)
			}
			got, err := AppendEventLine(nil, &ev)
			if err != nil {
				t.Fatalf("%s:%d: %v", path, i+1, err)
			}
			if want := append(append([]byte(nil), line...), '\n'); !bytes.Equal(got, want) {
				t.Errorf("%s:%d:\n got %s\nwant %s", path, i+1, got, want)
			}
			n++
		}
	}
	if n < 30 {
		t.Fatalf("only %d fixture lines checked", n)
	}
}

func TestHTMLEscapeLikeEncodingJSON(t *testing.T) {
	f := &flowpb.Flow{NodeName: "a<b>&c\u2028d\u2029e", Summary: "x"}
	got, err := AppendFlow(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"node_name":"a\u003cb\u003e\u0026c\u2028d\u2029e","Summary":"x"}`
	if string(got) != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if _, err := AppendFlow(nil, &flowpb.Flow{NodeName: "\xff"}); err == nil {
		t.Fatal("invalid UTF-8 encoded without error")
	}
}

func TestDecodeKindsAndErrors(t *testing.T) {
	d := NewDecoder(nil)
	f := &flowpb.Flow{}
	for _, line := range readLines(t, filepath.Join(fixtures(t), "exporter-test-basic-expected.jsonl")) {
		k, err := d.Decode(line, f)
		if err != nil {
			t.Fatal(err)
		}
		if k == flow.KindUnknown {
			t.Fatalf("unknown kind for %s", line)
		}
	}
	for _, bad := range []string{`{"flow":{"verdict":`, "{\"flow\":{\"node_name\":\"\xff\"}}", `[1,2]`} {
		if _, err := d.Decode([]byte(bad), f); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
	k, err := d.Decode([]byte(`{"flow":{"verdict":"DROPPED","future_field":{"x":1}},"node_name":"n","time":"2026-01-01T00:00:00Z","new_top":1}`), f)
	if err != nil || k != flow.KindFlow || f.GetVerdict() != flowpb.Verdict_DROPPED {
		t.Fatalf("unknown fields must be skipped: %v %v %v", k, err, f)
	}
}
