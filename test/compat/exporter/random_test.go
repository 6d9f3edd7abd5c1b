package exporter_test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flowaudit/flowaudit/pkg/exporter"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/test/compat/ciliumexport"
	"github.com/flowaudit/flowaudit/test/compat/internal/random"
)

// TestRandomConfigsMatchCiliumExporter runs random allowlists and denylists
// (in cilium-config's JSON, proto or JSON field names) and random field
// masks through `flowaudit filter`'s exporter and through Cilium's exporter
// code, on fixtures, generated lines and damaged ones, and compares the
// output byte for byte and the count of lines each could not decode. Each
// configuration compiles its own decode plan (the fields its filters read
// and its mask keeps are decoded, the rest only checked), so this is also
// the randomised test of the plans.
func TestRandomConfigsMatchCiliumExporter(t *testing.T) {
	r := random.Source(t, "FLOWAUDIT_EXPORTER_SEED", 3)
	n, configs := 1500, 120
	if testing.Short() {
		n, configs = 500, 30
	}
	in := input(t, n)
	var flows []*flowpb.Flow
	var damaged bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(in))
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		var ev observerpb.ExportEvent
		if protojson.Unmarshal(sc.Bytes(), &ev) == nil && ev.GetFlow() != nil {
			flows = append(flows, ev.GetFlow())
		}
		if i%40 == 0 {
			damaged.Write(damage(r, sc.Bytes()))
			damaged.WriteByte('\n')
		}
	}
	in = append(in, damaged.Bytes()...)
	pool := random.NewPool(flows)
	paths := random.AllPaths()
	var compared, written, errs, rejected, deniedDamaged int
	for i := 0; i < configs; i++ {
		var c ciliumexport.Config
		if r.IntN(3) > 0 {
			c.Allowlist = filtersJSON(r, pool)
		}
		if r.IntN(3) == 0 {
			c.Denylist = filtersJSON(r, pool)
		}
		if r.IntN(3) > 0 {
			c.FieldMask = random.Mask(r, paths)
			for random.CrossesOneof(c.FieldMask) {
				c.FieldMask = random.Mask(r, paths)
			}
		}
		what := fmt.Sprintf("config %d: allowlist %s denylist %s fieldmask %s", i, c.Allowlist, c.Denylist, strings.Join(c.FieldMask, ","))
		var want bytes.Buffer
		counts, cerr := ciliumexport.Run(bytes.NewReader(in), &want, c)
		got, gotErrs, oerr := oursCounting(in, c)
		if (cerr == nil) != (oerr == nil) {
			t.Fatalf("%s: Cilium %v, ours %v", what, cerr, oerr)
		}
		if cerr != nil {
			rejected++
			continue
		}
		if !bytes.Equal(got, want.Bytes()) {
			g, w := strings.Split(string(got), "\n"), strings.Split(want.String(), "\n")
			for j := 0; j < len(g) && j < len(w); j++ {
				if g[j] != w[j] {
					t.Fatalf("%s: line %d differs (ours %d lines, Cilium %d)\nours:   %s\ncilium: %s", what, j+1, len(g), len(w), g[j], w[j])
				}
			}
			t.Fatalf("%s: ours %d lines, Cilium %d", what, len(g), len(w))
		}
		// A line the filters drop is read only up to the fields they read
		// (hubblejson.Decoder.Decode): damage after them that leaves the
		// line looking complete (a wrong type or value) is then counted
		// as denied, not as an error. oursCounting checks that every line
		// ours refuses, protojson refuses too.
		if c.Allowlist == "" && c.Denylist == "" && gotErrs != counts.Errors ||
			gotErrs > counts.Errors {
			t.Fatalf("%s: %d lines not decoded, Cilium %d", what, gotErrs, counts.Errors)
		}
		compared++
		written += counts.Written
		errs += gotErrs
		deniedDamaged += counts.Errors - gotErrs
	}
	t.Logf("%d configurations compared (%d rejected by both), %d lines written, %d damaged lines refused by both, %d dropped by the filters before the damage was read",
		compared, rejected, written, errs, deniedDamaged)
	if written == 0 || errs == 0 || compared < configs/2 {
		t.Fatal("degenerate: nothing written, nothing damaged, or most configurations rejected")
	}
}

// filtersJSON is one to three random filters in the exporter's allowlist
// syntax: JSON objects one after the other.
func filtersJSON(r *rand.Rand, p *random.Pool) string {
	var b strings.Builder
	for k := 1 + r.IntN(3); k > 0; k-- {
		js, err := protojson.MarshalOptions{UseProtoNames: r.IntN(2) == 0}.Marshal(random.Filter(r, p))
		if err != nil {
			panic(err)
		}
		b.Write(js)
	}
	return b.String()
}

// damage returns line with one of the faults a broken writer or a newer
// Cilium produces: some must be refused (a wrong type or a duplicate
// anywhere, a cut line, invalid UTF-8), some accepted (unknown members).
func damage(r *rand.Rand, line []byte) []byte {
	s := string(line)
	switch r.IntN(9) {
	case 0:
		return []byte(strings.Replace(s, `"identity":`, `"identity":"x","zz":`, 1))
	case 1:
		return []byte(strings.Replace(s, `"verdict":`, `"verdict":"FORWARDED","verdict":`, 1))
	case 2:
		return line[:len(line)*2/3]
	case 3:
		return []byte(strings.Replace(s, `"namespace":"`, "\"namespace\":\"\xff", 1))
	case 4:
		return []byte(strings.Replace(s, `{"flow":{`, `{"flow":{"future_field":{"a":[1,{"b":null}]},`, 1))
	case 5:
		return []byte(strings.Replace(s, `"labels":[`, `"labels":[7,`, 1))
	case 6:
		return []byte(strings.Replace(s, `"destination_port":`, `"destination_port":-`, 1))
	case 7:
		return []byte(strings.Replace(s, `"time":"`, `"time":"x`, 1))
	default:
		return []byte(strings.Replace(s, `"is_reply":`, `"is_reply":null,"zz":`, 1))
	}
}

// oursCounting exports every line like `flowaudit filter` and counts the
// lines it refused; a bad configuration is an error.
func oursCounting(in []byte, c ciliumexport.Config) ([]byte, int, error) {
	allow, err := filter.ParseFilters(c.Allowlist)
	if err != nil {
		return nil, 0, err
	}
	deny, err := filter.ParseFilters(c.Denylist)
	if err != nil {
		return nil, 0, err
	}
	exp, err := exporter.New(exporter.Config{Allow: allow, Deny: deny, FieldMask: c.FieldMask})
	if err != nil {
		return nil, 0, err
	}
	var out []byte
	errs := 0
	sc := bufio.NewScanner(bytes.NewReader(in))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		next, err := exp.Line(out, sc.Bytes())
		if err != nil {
			var ev observerpb.ExportEvent
			if (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(sc.Bytes(), &ev) == nil {
				return nil, 0, fmt.Errorf("refused a line protojson decodes: %v\n%s", err, sc.Bytes())
			}
			errs++
			continue
		}
		out = next
	}
	return out, errs, sc.Err()
}
