package pipeline

import (
	"strings"
	"testing"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
	"github.com/flowaudit/flowaudit/pkg/ingest"
)

// TestCompileRefusesMaskWithoutTimeOrNodeName: the archive places every
// row by time and node_name, and Cilium's exporter writes only what its
// mask keeps, so a mask without either is refused, naming what is missing;
// no mask, or one that keeps both, compiles.
func TestCompileRefusesMaskWithoutTimeOrNodeName(t *testing.T) {
	for _, tc := range []struct {
		mask []string
		want string // "" compiles
	}{
		{nil, ""},
		{fieldmask.ParsePaths(fieldmask.DocsExample), ""},
		{[]string{"verdict", "node_name", "time"}, ""},
		{[]string{"verdict"}, "keeps no time or node_name"},
		{[]string{"verdict", "time"}, "keeps no node_name"},
		{[]string{"node_name", "source"}, "keeps no time:"},
		{[]string{"time.seconds", "node_name"}, "keeps no time:"},
	} {
		_, err := Compile(Spec{FieldMask: tc.mask})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.mask, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "the archive places every flow by its time and node_name")):
			t.Errorf("%q: error %v, want %q", tc.mask, err, tc.want)
		}
	}
}

// TestLinesTheArchiveCannotPlaceAreDecodeErrors: a flow line without time
// (what Cilium's exporter writes under a mask without it), or with a time
// outside int64 nanoseconds, is counted as a decode error, not archived at
// 1970 or at a wrapped-around time; one without node_name is the source's
// node's, and a decode error from a source without a node.
func TestLinesTheArchiveCannotPlaceAreDecodeErrors(t *testing.T) {
	good := `{"flow":{"time":"2026-01-01T00:00:01Z","verdict":"FORWARDED","node_name":"c/n"},"node_name":"c/n","time":"2026-01-01T00:00:01Z"}`
	lines := [][]byte{
		[]byte(good),
		[]byte(`{"flow":{"verdict":"FORWARDED","node_name":"c/n"},"node_name":"c/n"}`),
		[]byte(`{"flow":{"time":"2026-01-01T00:00:02Z","verdict":"FORWARDED"},"time":"2026-01-01T00:00:02Z"}`),
		[]byte(`{"flow":{"verdict":"FORWARDED"}}`),
		[]byte(`{"flow":{"time":"0001-01-01T00:00:00Z","verdict":"FORWARDED","node_name":"c/n"},"node_name":"c/n","time":"0001-01-01T00:00:00Z"}`),
		[]byte(`{"flow":{"time":"2262-04-11T23:47:16.854775808Z","verdict":"FORWARDED","node_name":"c/n"},"node_name":"c/n","time":"2262-04-11T23:47:16.854775808Z"}`),
		[]byte(good),
	}
	for _, spec := range []Spec{{}, {Allowlist: `{"verdict":["FORWARDED"]}`}, {Denylist: `{"verdict":["DROPPED"]}`, FieldMask: []string{"verdict", "time", "node_name"}}} {
		c, err := Compile(spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, node := range []string{"c/n", ""} {
			p := New(Config{Node: node}, &sliceSource{}, c, &recordSink{}, nil, nil)
			b := &flow.Batch{}
			p.process(&ingest.LineBatch{Lines: lines}, b)
			want := 2 // the good ones
			if node != "" {
				want++ // and the one without node_name
			}
			if len(b.Flows) != want {
				t.Errorf("%+v node %q: archived %d flows, want %d", spec, node, len(b.Flows), want)
			}
			for _, f := range b.Flows {
				if f.GetTime().GetSeconds() < 1767225600 || f.GetNodeName() != "c/n" {
					t.Errorf("%+v: archived %v", spec, f)
				}
			}
			var total flow.Counts
			for _, s := range b.Stats {
				total.Add(s.Counts)
				if s.Minute < 1767225600 {
					t.Errorf("%+v: stats at %d", spec, s.Minute)
				}
			}
			if total.DecodeErrors != uint64(len(lines)-want) || total.Kept != uint64(want) {
				t.Errorf("%+v node %q: counts %+v, want %d decode errors and %d kept", spec, node, total, len(lines)-want, want)
			}
		}
	}
}

// TestSourceLineLimitIsTheDecoders: a source skips (and counts) the lines
// the decoder would refuse, no more and no fewer.
func TestSourceLineLimitIsTheDecoders(t *testing.T) {
	if ingest.MaxLineBytes != hubblejson.MaxLineBytes {
		t.Fatalf("ingest.MaxLineBytes %d, hubblejson.MaxLineBytes %d", ingest.MaxLineBytes, hubblejson.MaxLineBytes)
	}
}
