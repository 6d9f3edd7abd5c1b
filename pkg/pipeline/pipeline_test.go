package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
	"github.com/flowaudit/flowaudit/pkg/ingest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sliceSource emits fixed line batches, each with a checkpoint naming its index.
type sliceSource struct {
	batches [][][]byte
	losses  []flow.Loss
}

func (s *sliceSource) ID() string { return "test:slice" }

func (s *sliceSource) Run(ctx context.Context, from flow.Checkpoint, emit func(*ingest.LineBatch) error) error {
	start := 0
	if from.Position != "" {
		n, err := strconv.Atoi(from.Position)
		if err != nil {
			return err
		}
		start = n + 1
	}
	for i := start; i < len(s.batches); i++ {
		lb := &ingest.LineBatch{Lines: s.batches[i], Checkpoint: flow.Checkpoint{Source: s.ID(), Position: strconv.Itoa(i)}}
		if i == 0 {
			lb.Losses = s.losses
		}
		if err := emit(lb); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// recordSink keeps what it was given, copying out of the batch (which is reused).
type recordSink struct {
	uuids       []string
	stats       map[string]flow.Counts
	losses      []flow.Loss
	checkpoints []flow.Checkpoint
	failAt      int
	writes      int
}

func (r *recordSink) Write(b *flow.Batch) error {
	r.writes++
	if r.failAt > 0 && r.writes == r.failAt {
		return errors.New("disk full")
	}
	for _, f := range b.Flows {
		r.uuids = append(r.uuids, f.GetUuid())
		if f.GetTime() == nil {
			return errors.New("archived flow without time")
		}
	}
	if r.stats == nil {
		r.stats = map[string]flow.Counts{}
	}
	for _, s := range b.Stats {
		c := r.stats[s.Node]
		c.Add(s.Counts)
		r.stats[s.Node] = c
	}
	r.losses = append(r.losses, b.Losses...)
	r.checkpoints = append(r.checkpoints, b.Checkpoint)
	return nil
}

func fixtureLines(t *testing.T) [][]byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "fixtures", "generated", "encoder-golden-nomask.jsonl"))
	if err != nil {
		t.Skipf("fixtures not available: %v", err)
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, append([]byte(nil), sc.Bytes()...))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestPipelineAccountsForEveryLine(t *testing.T) {
	lines := fixtureLines(t)
	bad := []byte(`{"flow":{"verdict":`)
	src := &sliceSource{
		batches: [][][]byte{lines[:3], append(append([][]byte{}, lines[3:]...), bad)},
		losses:  []flow.Loss{{Reason: flow.LossRotationGap, Bytes: 42, Detail: "events-x.log"}},
	}
	for _, tc := range []struct {
		name  string
		spec  Spec
		check func(t *testing.T, sink *recordSink, total flow.Counts)
	}{
		{"keep everything", Spec{}, func(t *testing.T, sink *recordSink, total flow.Counts) {
			if total.Denied != 0 || total.Kept != total.Seen {
				t.Errorf("counts %+v: every flow should be kept", total)
			}
		}},
		{"allow dropped only", Spec{Allowlist: `{"verdict":["DROPPED"]}`}, func(t *testing.T, sink *recordSink, total flow.Counts) {
			if total.Kept == 0 || total.Denied == 0 {
				t.Errorf("counts %+v: want some kept and some denied", total)
			}
		}},
		{"mask of verdict", Spec{FieldMask: []string{"verdict", "time", "node_name"}}, func(t *testing.T, sink *recordSink, total flow.Counts) {
			for _, u := range sink.uuids {
				if u != "" {
					t.Errorf("uuid %q survived a mask without uuid", u)
				}
			}
		}},
	} {
		for _, mode := range modes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				c, err := Compile(tc.spec)
				if err != nil {
					t.Fatal(err)
				}
				sink := &recordSink{}
				p := New(Config{Node: "test/node", Inline: mode.inline}, src, c, sink, nil, nil)
				if err := p.Run(context.Background(), flow.Checkpoint{}); err != nil {
					t.Fatal(err)
				}
				var total flow.Counts
				for _, c := range sink.stats {
					total.Add(c)
				}
				// Every line is a flow (seen), a non-flow event, or a decode error.
				if got := total.Seen + total.NonFlow + total.DecodeErrors; got != uint64(len(lines)+1) {
					t.Errorf("accounted %d lines (%+v), read %d", got, total, len(lines)+1)
				}
				if total.Seen != total.Kept+total.Denied {
					t.Errorf("seen %d != kept %d + denied %d", total.Seen, total.Kept, total.Denied)
				}
				if int(total.Kept) != len(sink.uuids) {
					t.Errorf("kept %d but archived %d", total.Kept, len(sink.uuids))
				}
				if total.DecodeErrors != 1 {
					t.Errorf("decode errors %d, want 1", total.DecodeErrors)
				}
				var gap bool
				for _, l := range sink.losses {
					if l.Reason == flow.LossRotationGap && l.Bytes == 42 && l.Node != "" {
						gap = true
					}
				}
				if !gap {
					t.Errorf("source loss not passed on with a node: %+v", sink.losses)
				}
				if n := len(sink.checkpoints); n == 0 || sink.checkpoints[n-1].Position != "1" {
					t.Errorf("last checkpoint %v, want position 1", sink.checkpoints)
				}
				tc.check(t, sink, total)
			})
		}
	}
}

func TestPipelineStopsAtSinkError(t *testing.T) {
	lines := fixtureLines(t)
	var batches [][][]byte
	for i := 0; i < 10; i++ {
		batches = append(batches, lines)
	}
	c, err := Compile(Spec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			sink := &recordSink{failAt: 3}
			p := New(Config{Inline: mode.inline}, &sliceSource{batches: batches}, c, sink, nil, nil)
			err := p.Run(context.Background(), flow.Checkpoint{})
			if err == nil || !strings.Contains(err.Error(), "disk full") {
				t.Fatalf("sink error not returned: %v", err)
			}
			// Nothing after the failed batch may be acknowledged.
			for _, cp := range sink.checkpoints {
				if n, _ := strconv.Atoi(cp.Position); n >= 2 {
					t.Errorf("checkpoint %s acknowledged after the failed batch", cp.Position)
				}
			}
			if mode.inline && sink.writes != 3 {
				t.Errorf("the sink was given %d batches; inline, the source stops at the failed third", sink.writes)
			}
		})
	}
}

// modes are the pipeline's two ways to reach the sink.
// TestDeniedLinesReadUpToTheStatsAndFilterFields: with a filter, a line is
// decoded up to the last member the filter or the stats read (node_name, the
// 13th), the rest only checked to look complete (hubblejson.Decoder.Decode):
// damage that leaves a line incomplete, or a wrong value before that member,
// is a decode error; a wrong value after it in a line the filter drops is a
// denial (on amd64; elsewhere lines are read whole); in a line it keeps, a
// decode error.
func TestDeniedLinesReadUpToTheStatsAndFilterFields(t *testing.T) {
	var fwd, drop []byte
	for _, l := range fixtureLines(t) {
		switch {
		case fwd == nil && bytes.Contains(l, []byte(`"verdict":"FORWARDED"`)) && bytes.Contains(l, []byte(`"destination_port":80`)):
			fwd = l
		case drop == nil && bytes.Contains(l, []byte(`"verdict":"DROPPED"`)):
			drop = l
		}
	}
	if fwd == nil || drop == nil || !bytes.Contains(fwd, []byte(`"Summary":"`)) || !bytes.Contains(drop, []byte(`"Summary":"`)) {
		t.Fatal("fixture: want a FORWARDED flow to port 80 and a DROPPED flow, both with a Summary")
	}
	lateWrong := func(l []byte) []byte {
		return bytes.Replace(l, []byte(`"Summary":"`), []byte(`"Summary":["x"],"zz":"`), 1)
	}
	lines := [][]byte{
		fwd, drop,
		lateWrong(fwd), // after node_name, dropped: denied
		fwd[:len(fwd)*2/3],
		bytes.Replace(fwd, []byte(`"destination_port":80`), []byte(`"destination_port":true`), 1), // before node_name
		lateWrong(drop), // kept: read whole by Finish
	}
	c, err := Compile(Spec{Allowlist: `{"verdict":["DROPPED"]}`})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordSink{}
	p := New(Config{Node: "test/node", Inline: true}, &sliceSource{batches: [][][]byte{lines}}, c, sink, nil, nil)
	if err := p.Run(context.Background(), flow.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	var total flow.Counts
	for _, c := range sink.stats {
		total.Add(c)
	}
	want := flow.Counts{Seen: 3, Kept: 1, Denied: 2, DecodeErrors: 3}
	if runtime.GOARCH != "amd64" {
		want = flow.Counts{Seen: 2, Kept: 1, Denied: 1, DecodeErrors: 4}
	}
	if total.Seen != want.Seen || total.Kept != want.Kept || total.Denied != want.Denied || total.DecodeErrors != want.DecodeErrors {
		t.Fatalf("counts %+v, want seen %d, kept %d, denied %d, decode errors %d", total, want.Seen, want.Kept, want.Denied, want.DecodeErrors)
	}
	if len(sink.uuids) != 1 {
		t.Fatalf("archived %d flows, want the valid DROPPED one", len(sink.uuids))
	}
}

var modes = []struct {
	name   string
	inline bool
}{{"queue", false}, {"inline", true}}

// TestInlineWritesBeforeEmitReturns: inline, a batch is in the sink when the
// source's emit returns (the source may reuse or drop everything after it),
// written by the emitting goroutine (under -race, a write by another one is
// reported). With the queue it fails.
func TestInlineWritesBeforeEmitReturns(t *testing.T) {
	lines := fixtureLines(t)
	c, err := Compile(Spec{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordSink{}
	src := &checkingSource{lines: lines, n: 5, sink: sink}
	if err := New(Config{Inline: true}, src, c, sink, nil, nil).Run(context.Background(), flow.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	if src.err != nil {
		t.Error(src.err)
	}
	one := &recordSink{}
	if err := New(Config{}, &sliceSource{batches: [][][]byte{lines}}, c, one, nil, nil).Run(context.Background(), flow.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	if len(one.uuids) == 0 || len(sink.uuids) != 5*len(one.uuids) {
		t.Errorf("archived %d flows, want 5 x %d", len(sink.uuids), len(one.uuids))
	}
}

// TestInlineAndQueueArchiveTheSameFlows: the sink gets the same flows, stats
// and checkpoints either way, over many batches (inline, one batch and its
// arena are reused for every emit; memoized endpoints must not alias it).
func TestInlineAndQueueArchiveTheSameFlows(t *testing.T) {
	lines, _ := genLines(t, gen.Config{Seed: 21, Nodes: 3, Rate: 1000, DropRatio: 0.2}, 3000)
	var batches [][][]byte
	for i := 0; i < len(lines); i += 97 {
		batches = append(batches, lines[i:min(i+97, len(lines))])
	}
	for _, spec := range []Spec{{}, {FieldMask: []string{"source", "destination", "verdict", "l4", "time", "node_name"}}, {Allowlist: `{"verdict":["DROPPED"]}`}} {
		c, err := Compile(spec)
		if err != nil {
			t.Fatal(err)
		}
		var got [2]*cloneSink
		for i, mode := range modes {
			got[i] = &cloneSink{}
			if err := New(Config{Node: "c/n", Inline: mode.inline}, &sliceSource{batches: batches}, c, got[i], nil, nil).Run(context.Background(), flow.Checkpoint{}); err != nil {
				t.Fatal(err)
			}
		}
		q, in := got[0], got[1]
		if len(q.flows) == 0 || len(q.flows) != len(in.flows) {
			t.Fatalf("%+v: %d flows queued, %d inline", spec, len(q.flows), len(in.flows))
		}
		for i := range q.flows {
			if !proto.Equal(q.flows[i], in.flows[i]) {
				t.Fatalf("%+v: flow %d differs:\nqueue  %v\ninline %v", spec, i, q.flows[i], in.flows[i])
			}
		}
		if fmt.Sprint(q.stats) != fmt.Sprint(in.stats) || fmt.Sprint(q.checkpoints) != fmt.Sprint(in.checkpoints) {
			t.Errorf("%+v: stats or checkpoints differ:\n%v %v\n%v %v", spec, q.stats, q.checkpoints, in.stats, in.checkpoints)
		}
	}
}

// cloneSink keeps copies of the flows, stats rows and checkpoints it was
// given (nothing pointing into the batch).
type cloneSink struct {
	flows       []*flowpb.Flow
	stats       []flow.MinuteStat
	checkpoints []flow.Checkpoint
}

func (s *cloneSink) Write(b *flow.Batch) error {
	for _, f := range b.Flows {
		// Through the wire format: proto.Clone would keep the strings, which
		// live in the batch's arena and are rewritten once Write returns.
		raw, err := proto.Marshal(f)
		if err != nil {
			return err
		}
		c := new(flowpb.Flow)
		if err := proto.Unmarshal(raw, c); err != nil {
			return err
		}
		s.flows = append(s.flows, c)
	}
	for _, st := range b.Stats {
		st.Node = strings.Clone(st.Node)
		s.stats = append(s.stats, st)
	}
	s.checkpoints = append(s.checkpoints, b.Checkpoint)
	return nil
}

// checkingSource emits n batches of lines and checks after each emit that
// the sink holds its checkpoint and that the emitting goroutine wrote it.
type checkingSource struct {
	lines [][]byte
	n     int
	sink  *recordSink
	err   error
}

func (s *checkingSource) ID() string { return "test:checking" }

func (s *checkingSource) Run(ctx context.Context, _ flow.Checkpoint, emit func(*ingest.LineBatch) error) error {
	for i := 0; i < s.n; i++ {
		pos := strconv.Itoa(i)
		if err := emit(&ingest.LineBatch{Lines: s.lines, Checkpoint: flow.Checkpoint{Source: s.ID(), Position: pos}}); err != nil {
			return err
		}
		// No synchronisation here: the race detector reports a write by
		// another goroutine.
		if n := len(s.sink.checkpoints); n != i+1 || s.sink.checkpoints[n-1].Position != pos {
			s.err = fmt.Errorf("after emit %d the sink holds checkpoints %v", i, s.sink.checkpoints)
		}
	}
	return nil
}

func TestPipelineResumesFromCheckpoint(t *testing.T) {
	lines := fixtureLines(t)
	c, err := Compile(Spec{})
	if err != nil {
		t.Fatal(err)
	}
	src := &sliceSource{batches: [][][]byte{lines[:4], lines[4:]}}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			cfg := Config{Inline: mode.inline}
			all := &recordSink{}
			if err := New(cfg, src, c, all, nil, nil).Run(context.Background(), flow.Checkpoint{}); err != nil {
				t.Fatal(err)
			}
			rest := &recordSink{}
			if err := New(cfg, src, c, rest, nil, nil).Run(context.Background(), flow.Checkpoint{Source: src.ID(), Position: "0"}); err != nil {
				t.Fatal(err)
			}
			first := &recordSink{}
			if err := New(cfg, &sliceSource{batches: [][][]byte{lines[:4]}}, c, first, nil, nil).Run(context.Background(), flow.Checkpoint{}); err != nil {
				t.Fatal(err)
			}
			if len(first.uuids)+len(rest.uuids) != len(all.uuids) {
				t.Errorf("resumed run archived %d + %d flows, a full run %d", len(first.uuids), len(rest.uuids), len(all.uuids))
			}
		})
	}
}

func TestPipelineHeartbeat(t *testing.T) {
	c, err := Compile(Spec{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	src := &tickingSource{n: 3}
	sink := &recordSink{}
	p := New(Config{Node: "c/n1", Heartbeat: time.Millisecond, Now: func() time.Time { return now }}, src, c, sink, nil, nil)
	if err := p.Run(context.Background(), flow.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := sink.stats["c/n1"]; !ok {
		t.Fatalf("no heartbeat stats row for the node: %v", sink.stats)
	}
}

// tickingSource emits n empty batches, 5 ms apart (an idle source).
type tickingSource struct{ n int }

func (s *tickingSource) ID() string { return "test:tick" }

func (s *tickingSource) Run(ctx context.Context, _ flow.Checkpoint, emit func(*ingest.LineBatch) error) error {
	for i := 0; i < s.n; i++ {
		time.Sleep(5 * time.Millisecond)
		if err := emit(&ingest.LineBatch{Checkpoint: flow.Checkpoint{Source: s.ID(), Position: strconv.Itoa(i)}}); err != nil {
			return err
		}
	}
	return nil
}

// TestCompileOnePassWithoutFilter: without a filter every flow is kept, so
// the plan decodes the archived fields (time and node_name among them,
// whatever the mask) in one pass over the line, not one for the fields
// the pipeline reads and another for the rest: Decode alone gives what
// Decode and Finish give.
func TestCompileOnePassWithoutFilter(t *testing.T) {
	lines, _ := genLines(t, gen.Config{Seed: 3, Nodes: 1, Rate: 1000, DropRatio: 0.3}, 50)
	for _, tc := range []struct {
		spec Spec
		one  bool
	}{
		{Spec{}, true},
		{Spec{FieldMask: []string{"source.namespace", "verdict", "time", "node_name"}}, true},
		{Spec{Allowlist: `{"verdict":["DROPPED"]}`}, false},
		{Spec{Denylist: `{"source_pod":["kube-system/"]}`, FieldMask: []string{"verdict", "time", "node_name"}}, false},
	} {
		c, err := Compile(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		got := true
		for _, l := range lines {
			dec := hubblejson.NewDecoder(c.Plan)
			var decoded, finished flowpb.Flow
			if k, err := dec.Decode(l, &decoded); err != nil || k != flow.KindFlow {
				continue
			}
			if _, err := dec.Decode(l, &finished); err != nil {
				t.Fatal(err)
			}
			if err := dec.Finish(&finished); err != nil {
				t.Fatal(err)
			}
			got = got && proto.Equal(&decoded, &finished)
		}
		if got != tc.one {
			t.Errorf("%+v: one pass %v, want %v", tc.spec, got, tc.one)
		}
	}
}

// TestPruneOnlyWhenTheFilterReadsMore: the hot path skips the archive mask's
// Prune when the plan decodes nothing but the mask's fields; then pruning
// a decoded flow must change nothing, whatever the line (generated flows,
// the golden fixtures, and lines only protojson decodes). With a filter
// reading fields outside the mask, pruning is needed and does change flows.
func TestPruneOnlyWhenTheFilterReadsMore(t *testing.T) {
	lines, _ := genLines(t, gen.Config{Seed: 11, Nodes: 2, Rate: 1000, DropRatio: 0.3}, 3000)
	lines = append(lines, fixtureLines(t)...)
	// protojson's share: an escaped member name and an exponent.
	lines = append(lines,
		[]byte(`{"flow":{"time":"2026-01-01T00:00:00Z","verdict":"DROPPED","\u0073ource":{"namespace":"a","labels":["k8s:x=y"]},"l4":{"TCP":{"source_port":1e1}},"node_name":"c/n"},"node_name":"c/n","time":"2026-01-01T00:00:00Z"}`))
	for _, tc := range []struct {
		spec  Spec
		prune bool
	}{
		{Spec{FieldMask: fieldmask.ParsePaths(fieldmask.DocsExample)}, false},
		{Spec{FieldMask: []string{"source", "time", "node_name"}}, false},
		{Spec{FieldMask: []string{"l4.TCP", "source.labels", "time", "node_name"}}, false},
		{Spec{Allowlist: `{"verdict":["DROPPED"]}`, FieldMask: []string{"verdict", "source.namespace", "time", "node_name"}}, false},
		{Spec{Denylist: `{"source_pod":["kube-system/"]}`, FieldMask: []string{"source", "destination", "time", "node_name"}}, false},
		{Spec{Allowlist: `{"verdict":["DROPPED","FORWARDED"]}`, FieldMask: []string{"source.namespace", "time", "node_name"}}, true},
		{Spec{Denylist: `{"source_label":["k8s:app=none"]}`, FieldMask: []string{"destination", "l4", "time", "node_name"}}, true},
		{Spec{Allowlist: `{"verdict":["DROPPED"]}`}, false},
	} {
		c, err := Compile(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		if c.prune != tc.prune {
			t.Errorf("%+v: prune %v, want %v", tc.spec, c.prune, tc.prune)
		}
		dec := hubblejson.NewDecoder(c.Plan)
		changed, kept := 0, 0
		for _, line := range lines {
			f := &flowpb.Flow{}
			kind, err := dec.Decode(line, f)
			if err != nil {
				t.Fatalf("%+v: decode %.80s: %v", tc.spec, line, err)
			}
			if kind != flow.KindFlow || !c.Program.MatchFlow(f) {
				continue
			}
			if err := dec.Finish(f); err != nil {
				t.Fatalf("%+v: finish: %v", tc.spec, err)
			}
			kept++
			pruned := proto.Clone(f).(*flowpb.Flow)
			c.ArchiveMask.Prune(pruned)
			if !proto.Equal(pruned, f) {
				changed++
				if !c.prune {
					t.Fatalf("%+v: pruning changed a flow the plan decoded:\n%v\n%v", tc.spec, f, pruned)
				}
			}
		}
		if kept == 0 {
			t.Errorf("%+v: no flow kept", tc.spec)
		}
		if tc.prune && changed == 0 {
			t.Errorf("%+v: pruning changed nothing in %d flows: the case does not test it", tc.spec, kept)
		}
	}
}

// TestProcessAllocatesNothingPerFlow: a batch of a cluster-wide log, whose
// node changes from one line to the next, costs no allocation per flow
// once the pipeline is warm (each change of node copied the name out of
// the batch arena: 2,183 allocations per 4,096 lines of 3 nodes).
func TestProcessAllocatesNothingPerFlow(t *testing.T) {
	lines, _ := genLines(t, gen.Config{Seed: 4, Nodes: 5, Rate: 1000}, 2048)
	for _, spec := range []Spec{{}, {FieldMask: []string{"source", "verdict", "time", "node_name"}}, {Allowlist: `{"verdict":["FORWARDED"]}`}} {
		c, err := Compile(spec)
		if err != nil {
			t.Fatal(err)
		}
		p := New(Config{Node: "test"}, &sliceSource{}, c, &recordSink{}, nil, nil)
		lb := &ingest.LineBatch{Lines: lines}
		batch := &flow.Batch{}
		p.process(lb, batch)
		allocs := testing.AllocsPerRun(5, func() {
			batch.Reset()
			p.process(lb, batch)
		})
		if allocs > 16 {
			t.Errorf("%+v: %.0f allocations per batch of %d lines", spec, allocs, len(lines))
		}
		t.Logf("%+v: %.0f allocations per batch of %d lines", spec, allocs, len(lines))
	}
}

// genLines returns n lines of flowaudit gen's events (without their
// newlines) and the bytes they make with them.
func genLines(tb testing.TB, cfg gen.Config, n int) ([][]byte, int) {
	tb.Helper()
	g, err := gen.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	var data []byte
	for range n {
		if data, err = g.AppendLine(data); err != nil {
			tb.Fatal(err)
		}
	}
	return bytes.Split(bytes.TrimSuffix(data, []byte{'\n'}), []byte{'\n'}), len(data)
}

// TestProgressMovesWithFlowsOnly: readiness compares the wall time of the
// last write holding flows with those flows' time; a batch whose flows were
// all denied, or a quiet source's empty one, must not make the archive look
// behind (a DROPPED-only allowlist on a node without drops, a node without
// traffic).
func TestProgressMovesWithFlowsOnly(t *testing.T) {
	lines := fixtureLines(t)
	c, err := Compile(Spec{Denylist: `{"verdict":["FORWARDED","DROPPED","ERROR","AUDIT","REDIRECTED","TRACED","TRANSLATED"]}`})
	if err != nil {
		t.Fatal(err)
	}
	src := &sliceSource{batches: [][][]byte{lines, nil}}
	sink := &recordSink{}
	p := New(Config{Inline: true}, src, c, sink, nil, nil)
	if err := p.Run(context.Background(), flow.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	if sink.writes != 2 || len(sink.uuids) != 0 {
		t.Fatalf("%d writes, %d flows: want 2 writes of no flow", sink.writes, len(sink.uuids))
	}
	if lastFlow, lastWrite := p.Progress(); !lastFlow.IsZero() || !lastWrite.IsZero() {
		t.Fatalf("progress %v / %v after batches without flows, want none", lastFlow, lastWrite)
	}

	c, err = Compile(Spec{})
	if err != nil {
		t.Fatal(err)
	}
	p = New(Config{Inline: true}, src, c, &recordSink{}, nil, nil)
	if err := p.Run(context.Background(), flow.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	lastFlow, lastWrite := p.Progress()
	if lastFlow.IsZero() || lastWrite.IsZero() {
		t.Fatalf("progress %v / %v after flows were written, want both", lastFlow, lastWrite)
	}
	// The empty second batch came after the flows: the write time stays
	// that of the batch holding them.
	if lag := lastWrite.Sub(lastFlow); lag <= 0 {
		t.Fatalf("lag %v: the fixture's flows are older than the run", lag)
	}
}

// lossSource emits fixed batches with losses at given line indexes.
type lossSource struct{ batches []ingest.LineBatch }

func (s *lossSource) ID() string { return "test:loss" }

func (s *lossSource) Run(ctx context.Context, _ flow.Checkpoint, emit func(*ingest.LineBatch) error) error {
	for i := range s.batches {
		lb := s.batches[i]
		lb.Checkpoint = flow.Checkpoint{Source: s.ID(), Position: strconv.Itoa(i)}
		if err := emit(&lb); err != nil {
			return err
		}
	}
	return nil
}

// TestLossesAreBoundedByTheFlowsAroundThem checks a gap's time range: from
// the latest flow before it to the first flow after it, widened by the most
// the flows' times were out of order (gen stamps some flows with whole
// seconds, earlier than those before them); a gap with no flow after it in
// its batch has no end; checkpoints carry the latest time and the disorder
// for the next run; and flows without a node get the source's node.
func TestLossesAreBoundedByTheFlowsAroundThem(t *testing.T) {
	lines, _ := genLines(t, gen.Config{Seed: 5, Nodes: 1, Rate: 50, LostEventEvery: -1, AgentEventEvery: -1}, 400)
	times := make([]int64, len(lines))
	dec := hubblejson.NewDecoder(hubblejson.NewPlan(flow.AllFields(), flow.AllFields()))
	f := &flowpb.Flow{}
	for i, l := range lines {
		if _, err := dec.Decode(l, f); err != nil {
			t.Fatal(err)
		}
		if err := dec.Finish(f); err != nil {
			t.Fatal(err)
		}
		times[i] = f.GetTime().AsTime().UnixNano()
	}
	// The latest time and the disorder after the first n lines.
	seen := func(n int) (latest, disorder int64) {
		for _, t := range times[:n] {
			if t >= latest {
				latest = t
			} else {
				disorder = max(disorder, latest-t)
			}
		}
		return latest, disorder
	}
	noNode := []byte(strings.Replace(string(lines[399]), `"node_name":"prod-kr1/node-01",`, "", 1))
	if string(noNode) == string(lines[399]) {
		t.Fatalf("no node_name to remove in %s", lines[399])
	}
	rot := flow.Loss{Reason: flow.LossRotationGap, Amount: flow.AtLeast, Bytes: 4096}
	src := &lossSource{batches: []ingest.LineBatch{
		{Lines: lines[:200]},
		{Lines: lines[200:300], Losses: []flow.Loss{rot}, LossAt: []int{50}},
		{Lines: append(slices.Clone(lines[300:399]), noNode), Losses: []flow.Loss{{Reason: flow.LossTruncated, Amount: flow.AmountUnknown}}, LossAt: []int{100}},
	}}
	c, err := Compile(Spec{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordSink{}
	nodes := &nodeSink{}
	p := New(Config{Node: "prod-kr1/node-09"}, src, c, multiSink{sink, nodes}, nil, nil)
	if err := p.Run(context.Background(), flow.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	if len(sink.losses) != 2 {
		t.Fatalf("losses %+v", sink.losses)
	}
	latest, disorder := seen(250)
	if disorder == 0 {
		t.Fatalf("the generated flows are in time order: the test needs disorder")
	}
	l := sink.losses[0]
	if !l.From.Equal(time.Unix(0, latest-disorder)) || !l.To.Equal(time.Unix(0, times[250]+disorder)) ||
		l.Node != "prod-kr1/node-01" || l.Source != src.ID() || l.Estimated == 0 {
		t.Errorf("rotation gap %+v: want from %v to %v, node-01, an estimate of its lines", l, time.Unix(0, latest-disorder), time.Unix(0, times[250]+disorder))
	}
	latest, disorder = seen(400)
	if l := sink.losses[1]; !l.To.IsZero() || !l.From.Equal(time.Unix(0, latest-disorder)) {
		t.Errorf("truncation %+v: after the last flow, want no end and from %v", l, time.Unix(0, latest-disorder))
	}
	last := sink.checkpoints[len(sink.checkpoints)-1]
	if last.LastFlow != latest || last.Disorder != disorder {
		t.Errorf("checkpoint %+v: want last flow %d, disorder %d", last, latest, disorder)
	}
	if nodes.last != "prod-kr1/node-09" {
		t.Errorf("a flow without node_name archived on node %q, want the source's node", nodes.last)
	}
}

// TestLossBeforeAnOlderFlowIsNotBackwards: a lost event followed by a flow
// older than the latest read (a resumed stream's overlap) gives a range
// from that flow to the latest, not one that ends before it starts.
func TestLossBeforeAnOlderFlowIsNotBackwards(t *testing.T) {
	lines, _ := genLines(t, gen.Config{Seed: 9, Nodes: 1, Rate: 50, LostEventEvery: 60, AgentEventEvery: -1}, 200)
	lost := -1
	for i, l := range lines {
		if bytes.Contains(l, []byte(`"lost_events"`)) {
			lost = i
			break
		}
	}
	if lost < 0 {
		t.Fatal("gen wrote no lost_events line")
	}
	var flows [][]byte
	for i, l := range lines {
		if i != lost && bytes.Contains(l, []byte(`"flow"`)) {
			flows = append(flows, l)
		}
	}
	batch := append(slices.Clone(flows[100:150]), lines[lost], flows[10])
	src := &lossSource{batches: []ingest.LineBatch{{Lines: batch}}}
	c, err := Compile(Spec{})
	if err != nil {
		t.Fatal(err)
	}
	sink := &recordSink{}
	if err := New(Config{}, src, c, sink, nil, nil).Run(context.Background(), flow.Checkpoint{}); err != nil {
		t.Fatal(err)
	}
	if len(sink.losses) != 1 {
		t.Fatalf("losses %+v", sink.losses)
	}
	timeOf := func(line []byte) time.Time {
		f := &flowpb.Flow{}
		dec := hubblejson.NewDecoder(hubblejson.NewPlan(flow.AllFields(), flow.AllFields()))
		if _, err := dec.Decode(line, f); err != nil {
			t.Fatal(err)
		}
		if err := dec.Finish(f); err != nil {
			t.Fatal(err)
		}
		return f.GetTime().AsTime()
	}
	l := sink.losses[0]
	after, latest := timeOf(flows[10]), timeOf(flows[149])
	if l.To.Before(l.From) || l.From.After(after) || l.To.Before(latest.Add(-time.Second)) {
		t.Errorf("loss %v .. %v: want a range from the flow after it (%v) to about the latest before it (%v)", l.From, l.To, after, latest)
	}
}

// nodeSink remembers the node of the last flow written.
type nodeSink struct{ last string }

func (n *nodeSink) Write(b *flow.Batch) error {
	if len(b.Flows) > 0 {
		n.last = b.Flows[len(b.Flows)-1].GetNodeName()
	}
	return nil
}

type multiSink []Sink

func (m multiSink) Write(b *flow.Batch) error {
	for _, s := range m {
		if err := s.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// TestProtoAndJSONArchiveTheSame: the same events as events.log lines and
// as GetFlowsResponse messages (the gRPC source's) give the same archived
// flows and counts, for filters and masks that stop the decoder early, prune
// and keep everything: one compiled program whatever the format.
func TestProtoAndJSONArchiveTheSame(t *testing.T) {
	g, err := gen.New(gen.Config{Seed: 9, Nodes: 2, Rate: 1000, LostEventEvery: 200, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	var lines, msgs [][]byte
	for range 3000 {
		ev := g.Next()
		line, err := hubblejson.AppendEventLine(nil, ev)
		if err != nil {
			t.Fatal(err)
		}
		resp := &observerpb.GetFlowsResponse{NodeName: ev.GetNodeName(), Time: ev.GetTime()}
		switch {
		case ev.GetFlow() != nil:
			resp.ResponseTypes = &observerpb.GetFlowsResponse_Flow{Flow: ev.GetFlow()}
		case ev.GetLostEvents() != nil:
			resp.ResponseTypes = &observerpb.GetFlowsResponse_LostEvents{LostEvents: ev.GetLostEvents()}
		default:
			continue // GetFlows sends flows and lost events only
		}
		msg, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, bytes.TrimSuffix(line, []byte{'\n'}))
		msgs = append(msgs, msg)
	}
	for _, spec := range []Spec{
		{},
		{Allowlist: `{"verdict":["DROPPED","AUDIT"]}`},
		{Denylist: `{"source_pod":["kube-system/"]}`, FieldMask: fieldmask.ParsePaths("time,node_name,source.namespace,source.pod_name,destination,l4,IP,verdict,drop_reason_desc")},
		{Allowlist: `{"destination_port":["53","443"]}{"http_status_code":["5+"]}`, FieldMask: fieldmask.ParsePaths("time,node_name,verdict,l7")},
	} {
		c, err := Compile(spec)
		if err != nil {
			t.Fatal(err)
		}
		run := func(format ingest.Format, raw [][]byte) ([]*flowpb.Flow, map[string]flow.Counts, []flow.Loss) {
			p := New(Config{Node: "prod-kr1/node-01"}, &sliceSource{}, c, &recordSink{}, nil, nil)
			var flows []*flowpb.Flow
			counts := map[string]flow.Counts{}
			var losses []flow.Loss
			for i := 0; i < len(raw); i += 700 {
				b := &flow.Batch{}
				p.process(&ingest.LineBatch{Lines: raw[i:min(i+700, len(raw))], Format: format}, b)
				for _, f := range b.Flows {
					flows = append(flows, proto.Clone(f).(*flowpb.Flow))
				}
				for _, s := range b.Stats {
					x := counts[s.Node]
					x.Add(s.Counts)
					counts[s.Node] = x
				}
				losses = append(losses, b.Losses...)
			}
			return flows, counts, losses
		}
		jf, jc, jl := run(ingest.FormatJSON, lines)
		pf, pc, pl := run(ingest.FormatProto, msgs)
		if len(jf) == 0 || len(jf) != len(pf) {
			t.Fatalf("%+v: %d flows from lines, %d from messages", spec, len(jf), len(pf))
		}
		for i := range jf {
			if !proto.Equal(jf[i], pf[i]) {
				t.Fatalf("%+v: flow %d differs:\nlines:    %v\nmessages: %v", spec, i, jf[i], pf[i])
			}
		}
		if fmt.Sprint(jc) != fmt.Sprint(pc) {
			t.Errorf("%+v: counts %v from lines, %v from messages", spec, jc, pc)
		}
		if len(jl) == 0 || len(jl) != len(pl) {
			t.Errorf("%+v: %d losses from lines, %d from messages", spec, len(jl), len(pl))
		}
		for i := range min(len(jl), len(pl)) {
			a, b := jl[i], pl[i]
			a.Time, b.Time = time.Time{}, time.Time{} // decoded envelope times agree; the wall clock is not compared
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("%+v: loss %d: %+v from lines, %+v from messages", spec, i, a, b)
			}
		}
	}
}
