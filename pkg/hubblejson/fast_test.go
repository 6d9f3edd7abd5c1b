package hubblejson_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
	"github.com/flowaudit/flowaudit/pkg/hubblejson/internal/gendec"
)

func fixtureDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "fixtures")
}

// fixtureLines is every line of every .jsonl fixture.
func fixtureLines(t testing.TB) [][]byte {
	var out [][]byte
	paths, _ := filepath.Glob(filepath.Join(fixtureDir(), "*.jsonl"))
	more, _ := filepath.Glob(filepath.Join(fixtureDir(), "*", "*.jsonl"))
	for _, p := range append(paths, more...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				out = append(out, l)
			}
		}
	}
	if len(out) == 0 {
		t.Skip("no fixtures")
	}
	return out
}

func genLines(t testing.TB, n int, seed int64) [][]byte {
	g, err := gen.New(gen.Config{Seed: seed, Nodes: 3, LostEventEvery: 500, AgentEventEvery: 300})
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, 0, n)
	for i := 0; i < n; i++ {
		l, err := g.AppendLine(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.TrimSuffix(l, []byte("\n")))
	}
	return out
}

var snakeKey = regexp.MustCompile(`"([a-z]+(?:_[a-z0-9]+)+)":`)

// variants rewrites a line into forms protojson accepts (or rejects) that
// the exporter never writes, to exercise the fast decoder's edges.
func variants(line []byte) [][]byte {
	s := string(line)
	camel := snakeKey.ReplaceAllStringFunc(s, func(k string) string {
		parts := strings.Split(k[1:len(k)-2], "_")
		for i := 1; i < len(parts); i++ {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
		return `"` + strings.Join(parts, "") + `":`
	})
	r := strings.NewReplacer
	out := []string{
		camel,
		r(`":`, `" : `, `,"`, ` , "`, `{`, `{ `, `}`, ` }`).Replace(s),
		r(`"verdict":"FORWARDED"`, `"verdict":1`, `"verdict":"DROPPED"`, `"verdict":2`, `"traffic_direction":"INGRESS"`, `"traffic_direction":"FUTURE_DIRECTION"`).Replace(s),
		regexp.MustCompile(`"(identity|ID|destination_port|source_port)":(\d+)`).ReplaceAllString(s, `"$1":"$2"`),
		r(`{"flow":{`, `{"flow":{"ethernet":null,"l7":null,"source_names":null,"future":{"a":[1,2.5e3,-0.1E-2,true,false,null,"x\u00e9\"\\"],"b":{}},`).Replace(s),
		r(`"namespace":"`, `"namespace":"\u0041\n\t\/\u00e9`).Replace(s),
		r(`{"flow":{`, `{"flow":{"verdict":"DROPPED",`).Replace(s), // duplicate field
		r(`Z"`, `+09:00"`).Replace(s),                                                                 // offset timestamps
		r(`"TCP":{`, `"UDP":{},"TCP":{`).Replace(s),                                                   // oneof set twice
		r(`"TCP":{`, `"UDP":null,"TCP":{`).Replace(s),                                                 // null does not set the oneof
		regexp.MustCompile(`"(identity|ID)":(\d+)`).ReplaceAllString(s, `"$1":$2.0`),                  // not an integer form
		regexp.MustCompile(`"(identity|ID)":(\d+)`).ReplaceAllString(s, `"$1":99999999999`),           // out of range
		regexp.MustCompile(`"(source_port)":(\d+)`).ReplaceAllString(s, `"$1":-1`),                    // negative unsigned
		r(`"time":"`, `"time":"0000`).Replace(s),                                                      // invalid timestamp
		r(`"labels":[`, `"labels":[null,`).Replace(s),                                                 // null list element
		r(`"node_name":"`, `"node_name":"\ud83d\ude00`).Replace(s),                                    // surrogate pair
		r(`{"flow":{`, `{"flow":{"extensions":{"@type":"type.googleapis.com/flow.Flow"},`).Replace(s), // Any
		r(`"is_reply":false`, `"is_reply":null`, `"is_reply":true`, `"is_reply":"true"`).Replace(s),
		// Wrong types, duplicates and bad values in fields a plan does not
		// keep (deep inside skipped messages too): still protojson's errors.
		r(`"identity":`, `"identity":1,"identity":`).Replace(s),
		r(`"destination_port":`, `"destination_port":true,"zz":`).Replace(s),
		r(`"identity":`, `"identity":4294967296,"zz":`).Replace(s),
		r(`"traffic_direction":`, `"traffic_direction":{},"zz":`).Replace(s),
		r(`"kind":`, `"kind":7,"zz":`).Replace(s),
		r(`"node_labels":[`, `"node_labels":[1,`).Replace(s),
		r(`"Summary":`, `"Summary":["x"],"zz":`).Replace(s),
		r(`"event_type":{`, `"event_type":{"type":"x","zz":`).Replace(s),
		s + " x",
		s[:len(s)/2],
	}
	// Every object's members in reverse order: the decoder's learned member
	// order misses on each, before and after lines in Hubble's order.
	if rev, err := reverseMembers(line); err == nil {
		out = append(out, string(rev), s)
	}
	res := make([][]byte, len(out))
	for i, v := range out {
		res[i] = []byte(v)
	}
	return res
}

// reverseMembers rewrites a JSON text with every object's members in
// reverse order (values as they were).
func reverseMembers(b []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out bytes.Buffer
	if err := reverseValue(d, &out); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func reverseValue(d *json.Decoder, out *bytes.Buffer) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		var members [][]byte
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return err
			}
			m, _ := json.Marshal(k)
			var v bytes.Buffer
			if err := reverseValue(d, &v); err != nil {
				return err
			}
			members = append(members, append(append(m, ':'), v.Bytes()...))
		}
		slices.Reverse(members)
		out.WriteByte('{')
		out.Write(bytes.Join(members, []byte{','}))
		out.WriteByte('}')
	case json.Delim('['):
		out.WriteByte('[')
		for first := true; d.More(); first = false {
			if !first {
				out.WriteByte(',')
			}
			if err := reverseValue(d, out); err != nil {
				return err
			}
		}
		out.WriteByte(']')
	default:
		v, err := json.Marshal(tok)
		if err != nil {
			return err
		}
		out.Write(v)
		return nil
	}
	_, err = d.Token() // the closing delimiter
	return err
}

type plan struct {
	name         string
	filter, keep flow.FieldSet
	archive      bool // NewArchivePlan, not NewPlan
}

func (p plan) compile() *hubblejson.Plan {
	if p.archive {
		return hubblejson.NewArchivePlan(p.filter, p.keep)
	}
	return hubblejson.NewPlan(p.filter, p.keep)
}

// archivePlans are the plans the pipeline uses: plans as NewArchivePlan
// makes them.
var archivePlans = func() []plan {
	var out []plan
	for _, p := range plans {
		p.name, p.archive = p.name+"/archive", true
		out = append(out, p)
	}
	return out
}()

var plans = []plan{
	{"full", flow.AllFields(), flow.AllFields(), false},
	{"verdict/docs-mask", flow.Fields("verdict"), flow.Fields("time", "source.namespace", "source.pod_name", "destination.namespace", "destination.pod_name", "l4", "IP", "node_name", "is_reply", "verdict", "drop_reason_desc"), false},
	{"labels+ports/l7", flow.Fields("source.labels", "destination.labels", "l4.TCP.destination_port", "l4.UDP.destination_port", "event_type"), flow.Fields("l7", "time"), false},
	{"none/all", flow.Fields(), flow.AllFields(), false},
}

// compare decodes every line with the fast decoder (into rotating reused
// slots, as the pipeline does) and with protojson, and fails on any
// difference: error or not, kind, the filter's fields after Decode, the kept
// fields after Finish, the envelope, non-flow events.
func compare(t testing.TB, lines [][]byte, p plan) (fallbacks uint64) {
	return compareStats(t, lines, p).fallbacks
}

type compareStat struct {
	fallbacks uint64
	// stopped: lines Decode read only up to the filter's fields;
	// rejectedAfterStop: those of them protojson rejects (Finish did too).
	stopped, rejectedAfterStop int
	lazy                       int // flows Decode decoded for the filter only (Finish decodes the rest)
}

func compareStats(t testing.TB, lines [][]byte, p plan) (st compareStat) {
	pl := p.compile()
	fast, slow := hubblejson.NewDecoder(pl), hubblejson.NewProtojsonDecoder(pl)
	var arena flow.Arena
	fast.SetArena(&arena)
	slots := []*flowpb.Flow{{}, {}, {}}
	eager := 0
	for n, line := range lines {
		if n%64 == 0 {
			arena.Reset()
		}
		ff := slots[n%len(slots)]
		sf := &flowpb.Flow{}
		fk, ferr := fast.Decode(line, ff)
		sk, serr := slow.Decode(line, sf)
		if fast.LastStopped() {
			st.stopped++
		}
		if ferr == nil && fk == flow.KindFlow && !fast.LastEager() {
			st.lazy++
		}
		if (ferr == nil) != (serr == nil) || fk != sk {
			// Decode may stop reading a line after the filter's fields
			// (the rest only checked to look complete): a wrong value
			// after them is then found by Finish, for a flow the filter
			// keeps, and never seen for one it drops.
			if !fast.LastStopped() || ferr != nil || fk != flow.KindFlow || serr == nil {
				t.Fatalf("%s: line %d: fast (%v, %v) vs protojson (%v, %v)\n%s", p.name, n, fk, ferr, sk, serr, line)
			}
			if err := fast.Finish(ff); err == nil {
				t.Fatalf("%s: line %d: Decode stopped early, protojson rejects the line (%v), Finish accepted it\n%s", p.name, n, serr, line)
			}
			st.rejectedAfterStop++
			continue
		}
		// What Cilium's exporter decodes is the whole line: whatever the
		// plan keeps, a line protojson rejects is an error (a wrong type,
		// a duplicate or an unknown enum number anywhere in it).
		if ferr == nil && bytes.Contains(line, []byte(`"flow"`)) {
			if perr := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(line, &observerpb.ExportEvent{}); perr != nil {
				t.Fatalf("%s: line %d: accepted, but protojson rejects it: %v\n%s", p.name, n, perr, line)
			}
		}
		if ferr != nil {
			continue
		}
		// The protojson path with a plan does not decode the envelope of flows.
		envelope := p.filter.IsAll() || fk != flow.KindFlow
		if envelope && fast.EnvelopeNodeName() != slow.EnvelopeNodeName() {
			t.Fatalf("%s: line %d: envelope node %q vs %q", p.name, n, fast.EnvelopeNodeName(), slow.EnvelopeNodeName())
		}
		ft, fok := fast.EnvelopeTime()
		st, sok := slow.EnvelopeTime()
		if envelope && (fok != sok || !ft.Equal(st)) {
			t.Fatalf("%s: line %d: envelope time %v vs %v", p.name, n, ft, st)
		}
		if fk != flow.KindFlow {
			if !proto.Equal(fast.NonFlow(), slow.NonFlow()) {
				t.Fatalf("%s: line %d: non-flow event differs", p.name, n)
			}
			continue
		}
		if fast.LastEager() {
			// One pass: Decode decoded what two decode lazily.
			if serr := slow.Finish(sf); serr != nil {
				t.Fatalf("%s: line %d: eager Decode accepted, protojson's Finish: %v\n%s", p.name, n, serr, line)
			}
			if !proto.Equal(ff, sf) {
				t.Fatalf("%s: line %d: after an eager Decode:\nfast     %v\nprotojson %v\n%s", p.name, n, ff, sf, line)
			}
			if err := fast.Finish(ff); err != nil || !proto.Equal(ff, sf) {
				t.Fatalf("%s: line %d: Finish after an eager Decode: %v", p.name, n, err)
			}
			eager++
			continue
		}
		if !proto.Equal(ff, sf) {
			t.Fatalf("%s: line %d: after Decode:\nfast     %v\nprotojson %v\n%s", p.name, n, ff, sf, line)
		}
		if (n/3000)%2 == 1 {
			// Flows "denied": no Finish, so that the decoder also decodes
			// lazily (one pass when most flows are kept).
			continue
		}
		ferr, serr = fast.Finish(ff), slow.Finish(sf)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("%s: line %d: Finish: fast %v, protojson %v", p.name, n, ferr, serr)
		}
		if !proto.Equal(ff, sf) {
			t.Fatalf("%s: line %d: after Finish:\nfast     %v\nprotojson %v\n%s", p.name, n, ff, sf, line)
		}
	}
	if len(lines) > 8000 && !p.filter.IsEmpty() && !p.filter.IsAll() && eager == 0 {
		t.Fatalf("%s: no line decoded in one pass (Finish was called for most flows)", p.name)
	}
	st.fallbacks = fast.Fallbacks()
	return st
}

// TestFastDecoderMatchesProtojson is the differential test of the fast
// decoder: fixtures, generated lines and their variants, under every plan.
func TestFastDecoderMatchesProtojson(t *testing.T) {
	n, nv := 100000, 2000
	if raceEnabled || testing.Short() {
		n, nv = 3000, 300
	}
	generated := genLines(t, n, 7)
	fixtures := fixtureLines(t)
	var varied [][]byte
	for _, l := range append(fixtures, generated[:nv]...) {
		varied = append(varied, variants(l)...)
	}
	for _, p := range plans {
		t.Run(strings.ReplaceAll(p.name, "/", "-"), func(t *testing.T) {
			// What the exporter writes takes the fast path, every line but
			// the lost/agent events.
			gs := compareStats(t, generated, p)
			fb := gs.fallbacks
			nonFlow := 0
			for _, l := range generated {
				if !bytes.HasPrefix(l, []byte(`{"flow":`)) {
					nonFlow++
				}
			}
			if fb != uint64(nonFlow) {
				t.Errorf("%d of %d generated lines fell back to protojson; want only the %d non-flow events", fb, len(generated), nonFlow)
			}
			compare(t, fixtures, p)
			vs := compareStats(t, varied, p)
			// The verdict filter reads the third member of Hubble's lines:
			// Decode stops there on (nearly) every flow, and a variant
			// wrong after it is rejected by Finish (checked in compare).
			if hubblejson.CanStop && p.name == "verdict/docs-mask" && (gs.lazy < 1000 || gs.stopped < gs.lazy*9/10 || vs.rejectedAfterStop == 0) {
				t.Errorf("Decode stopped after the filter's fields on %d of %d generated lines it decoded for the filter alone, %d variants rejected by Finish only; want most and some",
					gs.stopped, gs.lazy, vs.rejectedAfterStop)
			}
			if (p.filter.IsEmpty() || p.filter.IsAll()) && gs.stopped+vs.stopped > 0 {
				t.Errorf("Decode stopped early without a filter that reads some fields")
			}
		})
	}
	// The archive's plans: fast and protojson agree (both refuse what
	// the archive cannot place). Under the race detector, the fixtures
	// alone in the two plans most like the daemon's (the package's
	// tests must end within go test's 10 minutes).
	aps, avaried := archivePlans, varied
	if raceEnabled || testing.Short() {
		aps, avaried = archivePlans[:2], nil
	}
	for _, p := range aps {
		t.Run(strings.ReplaceAll(p.name, "/", "-"), func(t *testing.T) {
			compare(t, fixtures, p)
			compare(t, avaried, p)
		})
	}
}

// TestFastDecoderNoAllocs: steady-state decoding into reused slots with an
// arena allocates nothing.
func TestFastDecoderNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	lines := genLines(t, 2000, 3)
	for _, p := range append(plans, archivePlans...) {
		d := hubblejson.NewDecoder(p.compile())
		var arena flow.Arena
		d.SetArena(&arena)
		slots := make([]*flowpb.Flow, 16)
		for i := range slots {
			slots[i] = &flowpb.Flow{}
		}
		run := func() {
			arena.Reset()
			for i, l := range lines {
				if !bytes.HasPrefix(l, []byte(`{"flow":`)) {
					continue
				}
				f := slots[i%len(slots)]
				if _, err := d.Decode(l, f); err != nil {
					t.Fatal(err)
				}
				if err := d.Finish(f); err != nil {
					t.Fatal(err)
				}
			}
		}
		run() // warm up: slots, pools, arena chunks
		run()
		if a := testing.AllocsPerRun(5, run); a > 0 {
			t.Errorf("%s: %.1f allocations per %d lines; want 0", p.name, a, len(lines))
		}
	}
}

// TestGeneratedDecoderUpToDate fails when codec_gen.go is not what the
// generator makes from the flowpb of go.mod (run go generate ./pkg/hubblejson).
func TestGeneratedDecoderUpToDate(t *testing.T) {
	want, err := gendec.Source()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("codec_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("codec_gen.go is stale: run `go generate ./pkg/hubblejson`")
	}
}

// memoBase is the line FuzzFastDecoder decodes before the fuzzed one.
var memoBase []byte

// FuzzFastDecoder: on any input the fast decoder agrees with protojson
// (error or not, and the decoded fields) under a full and a partial plan.
func FuzzFastDecoder(f *testing.F) {
	lines := fixtureLines(f)
	memoBase = lines[0]
	for _, l := range lines {
		f.Add(l)
		for _, v := range variants(l) {
			f.Add(v)
		}
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(line) > 16384 {
			return
		}
		for _, p := range plans[:2] {
			compare(t, [][]byte{line}, p)
			// Again after a fixture line and the line itself: its values
			// are then found in the decoder's memos (memo.go).
			compare(t, [][]byte{memoBase, line, line}, p)
		}
	})
}

// FuzzArchiveTime: whatever the flow's time, the archive plan's fast and
// protojson decoders agree; a time they accept is one the archive stores
// exactly (int64 nanoseconds, no wrap-around); a line NewPlan decodes and
// the archive plan refuses is refused for its time.
func FuzzArchiveTime(f *testing.F) {
	for _, ts := range []string{
		"2026-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
		"1677-09-21T00:12:43.145224192Z", "1677-09-21T00:12:43.145224191Z", "1677-09-21T00:12:44Z", "1677-09-21T00:12:43Z",
		"2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.854775808Z", "2262-04-11T23:47:16Z", "2262-04-11T23:47:17Z",
		"2262-04-12T00:47:16.854775807+01:00", "1677-09-20T23:12:43.145224192-01:00", "2262-04-11T23:47:16.9Z", "1600-02-29T00:00:00Z",
	} {
		f.Add(ts)
	}
	const line = `{"flow":{"time":%q,"verdict":"FORWARDED","node_name":"c/n"},"node_name":"c/n","time":%[1]q}`
	f.Fuzz(func(t *testing.T, ts string) {
		l := []byte(fmt.Sprintf(line, ts))
		for _, p := range archivePlans[:2] {
			compare(t, [][]byte{l}, p)
		}
		p := archivePlans[0]
		fl := &flowpb.Flow{}
		_, err := hubblejson.NewDecoder(p.compile()).Decode(l, fl)
		if err == nil {
			at := fl.GetTime().AsTime()
			if back := time.Unix(0, at.UnixNano()).UTC(); !back.Equal(at) {
				t.Fatalf("accepted %s, stored as %s", at.Format(time.RFC3339Nano), back.Format(time.RFC3339Nano))
			}
			return
		}
		if _, perr := hubblejson.NewDecoder(hubblejson.NewPlan(p.filter, p.keep)).Decode(l, &flowpb.Flow{}); perr == nil && !strings.Contains(err.Error(), "is outside the times the archive stores") {
			t.Fatalf("NewPlan accepts %q, the archive plan refuses it for another reason: %v", ts, err)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	lines := genLines(b, 5000, 11)
	var size int64
	for _, l := range lines {
		size += int64(len(l))
	}
	for _, p := range []plan{plans[0], plans[1], archivePlans[0], archivePlans[1]} {
		for _, impl := range []string{"protojson", "fast"} {
			b.Run(fmt.Sprintf("%s/%s", strings.ReplaceAll(p.name, "/", "-"), impl), func(b *testing.B) {
				pl := p.compile()
				d := hubblejson.NewDecoder(pl)
				if impl == "protojson" {
					d = hubblejson.NewProtojsonDecoder(pl)
				}
				var arena flow.Arena
				d.SetArena(&arena)
				f := &flowpb.Flow{}
				b.SetBytes(size / int64(len(lines)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if i%len(lines) == 0 {
						arena.Reset()
					}
					if _, err := d.Decode(lines[i%len(lines)], f); err == nil {
						_ = d.Finish(f)
					}
				}
			})
		}
	}
}

// TestTimestampsAsProtojson: timestamps in one minute, across minute, day,
// month, year and leap-day boundaries, with every fraction width, and
// invalid ones (a second of 60, a bad separator, a date that does not
// exist, an offset instead of Z, ten fraction digits) decode as protojson
// decodes them, in every plan.
func TestTimestampsAsProtojson(t *testing.T) {
	base := genLines(t, 1, 7)[0]
	times := []string{
		"2026-01-01T00:00:00Z", "2026-01-01T00:00:01.5Z", "2026-01-01T00:00:59.999999999Z",
		"2026-01-01T00:01:00Z", "2026-01-01T00:01:60Z", "2026-01-01T00:01:6xZ", "2026-01-01T00:01:07Z",
		"2026-01-01T00:01x07Z", "2026-01-01T00:01:07.Z", "2026-01-01T00:01:07.1234567890Z",
		"2026-12-31T23:59:59.1Z", "2027-01-01T00:00:00.000001Z", "2024-02-29T12:00:00Z",
		"2023-02-29T12:00:00Z", "2024-02-29T12:00:30Z", "2024-02-29T12:00:30+09:00",
		"2024-13-01T00:00:00Z", "2024-12-01T24:00:00Z", "2024-12-01T23:60:00Z", "2024-12-01T23:59:00Z",
		"2024-12-01T23:59:01Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
		// The archive's limits (int64 nanoseconds) and one nanosecond past them.
		"1677-09-21T00:12:43.145224192Z", "1677-09-21T00:12:43.145224191Z",
		"2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.854775808Z",
	}
	var lines [][]byte
	timeRE := regexp.MustCompile(`"time":"[^"]*"`)
	for _, ts := range times {
		lines = append(lines, timeRE.ReplaceAll(bytes.Clone(base), []byte(`"time":"`+ts+`"`)))
	}
	// The archive plans' decoders, fast and protojson, agree with each
	// other: protojson's verdict, except for times the archive cannot
	// store (TestArchivePlanRefusesWhatTheArchiveCannotPlace).
	for _, p := range append(plans, archivePlans...) {
		compare(t, lines, p)
	}
}

// TestArchivePlanRefusesWhatTheArchiveCannotPlace: under NewArchivePlan, a
// flow whose time is outside the archive's int64 nanoseconds, or that has
// no time, is a decode error naming the reason (and the
// time's offset), on the fast path and on protojson's, in Decode, whatever
// the filter; NewPlan's decoders accept the same lines, as protojson does.
// A lost_events line's envelope time is checked the same way.
func TestArchivePlanRefusesWhatTheArchiveCannotPlace(t *testing.T) {
	const (
		ok       = `{"flow":{"time":"%s","verdict":"FORWARDED","node_name":"c/n"},"node_name":"c/n","time":"2026-01-01T00:00:00Z"}`
		noTime   = `{"flow":{"verdict":"FORWARDED","node_name":"c/n"},"node_name":"c/n"}`
		noNode   = `{"flow":{"time":"2026-01-01T00:00:00Z","verdict":"FORWARDED"},"time":"2026-01-01T00:00:00Z"}`
		lost     = `{"lost_events":{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":3},"node_name":"n","time":"%s"}`
		timeAt   = 16 // the offset of the flow's time value in ok
		lostAt   = 94 // of the envelope's in lost
		tooEarly = "1677-09-21T00:12:43.145224191Z"
		tooLate  = "2262-04-11T23:47:16.854775808Z"
	)
	first, last := hubblejson.StorableTimes()
	if got := first.Format(time.RFC3339Nano); got != "1677-09-21T00:12:43.145224192Z" {
		t.Fatalf("first storable time %s", got)
	}
	if got := last.Format(time.RFC3339Nano); got != "2262-04-11T23:47:16.854775807Z" {
		t.Fatalf("last storable time %s", got)
	}
	if first.UnixNano() != math.MinInt64 || last.UnixNano() != math.MaxInt64 {
		t.Fatalf("storable times %d..%d, want the int64 range", first.UnixNano(), last.UnixNano())
	}
	for _, tc := range []struct {
		line string
		want string // the error's text; "" accepted
	}{
		{fmt.Sprintf(ok, first.Format(time.RFC3339Nano)), ""},
		{fmt.Sprintf(ok, last.Format(time.RFC3339Nano)), ""},
		{fmt.Sprintf(ok, "1970-01-01T00:00:00Z"), ""},
		{fmt.Sprintf(ok, tooEarly), fmt.Sprintf("offset %d: flow time %s is outside the times the archive stores", timeAt, tooEarly)},
		{fmt.Sprintf(ok, tooLate), fmt.Sprintf("offset %d: flow time %s is outside", timeAt, tooLate)},
		{fmt.Sprintf(ok, "0001-01-01T00:00:00Z"), fmt.Sprintf("offset %d: flow time 0001-01-01T00:00:00Z is outside", timeAt)},
		{fmt.Sprintf(ok, "9999-12-31T23:59:59.999999999Z"), fmt.Sprintf("offset %d: flow time 9999-12-31T23:59:59.999999999Z is outside", timeAt)},
		// An offset protojson alone reads: the same verdict.
		{fmt.Sprintf(ok, "0001-01-01T09:00:00+09:00"), fmt.Sprintf("offset %d: flow time 0001-01-01T00:00:00Z is outside", timeAt)},
		{noTime, "flow without time: the archive cannot place it"},
		// A flow without node_name is the pipeline's to place (its source's node).
		{noNode, ""},
		{fmt.Sprintf(lost, "2026-01-01T00:00:00Z"), ""},
		{fmt.Sprintf(lost, "9999-01-01T00:00:00Z"), fmt.Sprintf("offset %d: time 9999-01-01T00:00:00Z is outside", lostAt)},
	} {
		for _, p := range plans {
			for _, slow := range []bool{false, true} {
				newDec := hubblejson.NewDecoder
				if slow {
					newDec = hubblejson.NewProtojsonDecoder
				}
				name := fmt.Sprintf("%s slow=%v %.90s", p.name, slow, tc.line)
				_, err := newDec(hubblejson.NewArchivePlan(p.filter, p.keep)).Decode([]byte(tc.line), &flowpb.Flow{})
				switch {
				case tc.want == "" && err != nil:
					t.Errorf("%s: %v", name, err)
				case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
					t.Errorf("%s: error %v, want %q", name, err, tc.want)
				}
				// NewPlan (flowaudit filter) decodes as protojson does.
				if _, err := newDec(hubblejson.NewPlan(p.filter, p.keep)).Decode([]byte(tc.line), &flowpb.Flow{}); err != nil {
					t.Errorf("%s: NewPlan: %v", name, err)
				}
			}
		}
	}
}
