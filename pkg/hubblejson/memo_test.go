package hubblejson

import (
	"fmt"
	"strings"
	"testing"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	observerpb "github.com/cilium/cilium/api/v1/observer"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// memoLine is an events.log line whose source endpoint is pod n's (labels
// that differ only in their last one, so that many share memoSet's bytes).
func memoLine(n, port int) []byte {
	labels := []string{`"k8s:app.kubernetes.io/managed-by=argocd"`, `"k8s:app.kubernetes.io/name=payments"`,
		`"k8s:io.kubernetes.pod.namespace=bank"`, `"k8s:io.cilium.k8s.policy.cluster=prod-kr1"`, fmt.Sprintf(`"k8s:pod=%d"`, n)}
	return fmt.Appendf(nil, `{"flow":{"time":"2026-01-01T00:00:00.000001Z","verdict":"FORWARDED",`+
		`"l4":{"TCP":{"source_port":%d,"destination_port":443}},`+
		`"source":{"ID":7,"identity":11410,"cluster_name":"prod-kr1","namespace":"bank","labels":[%s],"pod_name":"payments-%d","workloads":[{"name":"payments","kind":"Deployment"}]},`+
		`"destination":{"identity":2,"labels":["reserved:world"]},"node_name":"prod-kr1/node-01","node_labels":["kubernetes.io/hostname=node-01"],"Summary":"TCP Flags: SYN"},`+
		`"node_name":"prod-kr1/node-01","time":"2026-01-01T00:00:00.000001Z"}`, port, strings.Join(labels, ","), n)
}

// protojsonFlow is what Cilium decodes from line.
func protojsonFlow(t *testing.T, line []byte) *flowpb.Flow {
	t.Helper()
	var ev observerpb.ExportEvent
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(line, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.GetFlow()
}

// TestMemoDecodesRepeatedEndpointsAsProtojson: endpoints that repeat, that
// share their first bytes, and a label list that is a remembered one with a
// label more (the same bytes up to its last label), decoded under the plans
// that use the check memo and the decode memo, equal protojson's; the memos
// were hit.
func TestMemoDecodesRepeatedEndpointsAsProtojson(t *testing.T) {
	var lines [][]byte
	for r := 0; r < 4; r++ {
		for n := 0; n < 600; n++ { // more pods than a memo holds: evictions
			lines = append(lines, memoLine(n%(50+r*200), 1000+n))
		}
	}
	longer := []byte(strings.Replace(string(memoLine(3, 1)), `"k8s:pod=3"]`, `"k8s:pod=3","k8s:tier=db"]`, 1))
	lines = append(lines, memoLine(3, 1), longer, memoLine(3, 1), longer)
	for pi, p := range []*Plan{
		NewPlan(flow.AllFields(), flow.AllFields()),
		NewPlan(flow.Fields(), flow.Fields("source.namespace", "source.pod_name", "l4")),
		NewPlan(flow.Fields("verdict"), flow.Fields("source", "time")),
	} {
		d, slow := NewDecoder(p), NewProtojsonDecoder(p)
		var arena flow.Arena
		d.SetArena(&arena)
		slots := []*flowpb.Flow{{}, {}, {}}
		for i, line := range lines {
			if i%64 == 0 {
				arena.Reset()
			}
			f, want := slots[i%len(slots)], &flowpb.Flow{}
			if _, err := d.Decode(line, f); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if _, err := slow.Decode(line, want); err != nil {
				t.Fatalf("line %d: protojson: %v", i, err)
			}
			if err := d.Finish(f); err != nil {
				t.Fatalf("line %d: %v", i, err)
			}
			if err := slow.Finish(want); err != nil {
				t.Fatalf("line %d: protojson: %v", i, err)
			}
			if !proto.Equal(f, want) {
				t.Fatalf("line %d:\ngot  %v\nwant %v", i, f, want)
			}
		}
		hits := 0
		for _, m := range d.fast.endpoints {
			hits += int(m.hits)
		}
		for _, m := range d.fast.memos {
			hits += int(m.hits)
		}
		if hits == 0 {
			t.Errorf("plan #%d: no memo hit", pi)
		}
	}
}

// TestMemoCopiesDoNotAliasTheMemo: a flow decoded from a remembered
// endpoint keeps its strings when the memo's entries are rewritten.
func TestMemoCopiesDoNotAliasTheMemo(t *testing.T) {
	d := NewDecoder(NewPlan(flow.AllFields(), flow.AllFields()))
	line := memoLine(1, 1)
	f := &flowpb.Flow{}
	for range 2 { // the second decode copies from the memo
		if _, err := d.Decode(line, f); err != nil {
			t.Fatal(err)
		}
	}
	if d.fast.endpoints[0].hits == 0 {
		t.Fatal("the source endpoint was not found in the memo")
	}
	for s := range d.fast.endpoints[0].sets {
		for w := range d.fast.endpoints[0].sets[s] {
			e := &d.fast.endpoints[0].sets[s][w].e
			for i := range e.strs {
				e.strs[i] = 'X'
			}
		}
	}
	if want := protojsonFlow(t, line); !proto.Equal(f, want) {
		t.Fatalf("after the memo changed:\ngot  %v\nwant %v", f.GetSource(), want.GetSource())
	}
}

// TestMemoCopiesEveryEndpointField: copyEndpoint and remember copy the
// fields flowpb.Endpoint and flowpb.Workload have (a Cilium upgrade that adds
// one fails here until they copy it too).
func TestMemoCopiesEveryEndpointField(t *testing.T) {
	names := func(md protoreflect.MessageDescriptor) string {
		var s []string
		for i := 0; i < md.Fields().Len(); i++ {
			s = append(s, string(md.Fields().Get(i).Name()))
		}
		return strings.Join(s, ",")
	}
	if got := names((&flowpb.Endpoint{}).ProtoReflect().Descriptor()); got != "ID,identity,cluster_name,namespace,labels,pod_name,workloads" {
		t.Fatalf("flowpb.Endpoint has fields %s: copyEndpoint and remember must copy each", got)
	}
	if got := names((&flowpb.Workload{}).ProtoReflect().Descriptor()); got != "name,kind" {
		t.Fatalf("flowpb.Workload has fields %s: copyEndpoint and remember must copy each", got)
	}
	src := &flowpb.Endpoint{ID: 1, Identity: 2, ClusterName: "c", Namespace: "n", Labels: []string{"a", "b"}, PodName: "p",
		Workloads: []*flowpb.Workload{{Name: "w", Kind: "k"}, {Name: "v", Kind: "j"}}}
	var x endpointDecoded
	x.remember(src, nil)
	var d fastDec
	dst := &flowpb.Endpoint{Labels: []string{"old", "older", "oldest"}, Workloads: []*flowpb.Workload{{Name: "old"}}}
	d.copyEndpoint(dst, &x)
	if !proto.Equal(dst, src) {
		t.Fatalf("copy %v, want %v", dst, src)
	}
	x.remember(&flowpb.Endpoint{Namespace: "m"}, nil)
	d.copyEndpoint(dst, &x)
	if !proto.Equal(dst, &flowpb.Endpoint{Namespace: "m"}) {
		t.Fatalf("copy of a sparse endpoint %v", dst)
	}
}

// TestMemoBypassesValuesThatDoNotRepeat: a memo whose lookups miss stops
// looking for memoBypass lookups, then looks again.
func TestMemoBypassesValuesThatDoNotRepeat(t *testing.T) {
	var m memo[struct{}]
	for n := 0; n < memoWindow; n++ {
		v := fmt.Appendf(nil, `["value %d"]`, n)
		e, set := m.find(v, 0)
		if e != nil || set < 0 {
			t.Fatalf("lookup %d: entry %v, set %d", n, e, set)
		}
		m.add(v, set, 0, len(v))
	}
	if _, set := m.find([]byte(`["x"]`), 0); set != -1 || m.bypass != memoBypass-1 {
		t.Fatalf("after %d misses: set %d, bypass %d", memoWindow, set, m.bypass)
	}
	for m.bypass > 0 {
		m.find([]byte(`["x"]`), 0)
	}
	v := fmt.Appendf(nil, `["value %d"]`, memoWindow-1) // the newest value of its set
	if e, _ := m.find(v, 0); e == nil || string(e.b) != string(v) {
		t.Fatalf("after the bypass: %v", e)
	}
}

// TestMemoHoldsAtMostItsBudget: however large and many the values, a memo
// holds at most memoBudget/2 bytes of them (a decoded endpoint's strings
// take about as much again), and counts them exactly.
func TestMemoHoldsAtMostItsBudget(t *testing.T) {
	var m memo[struct{}]
	for n := 0; n < 2000; n++ {
		v := fmt.Appendf(nil, `["%d%s"]`, n, strings.Repeat("x", 3000+n%1000))
		e, set := m.find(v, 0)
		if e != nil {
			t.Fatalf("value %d found before it was added", n)
		}
		if set >= 0 {
			m.add(v, set, 0, len(v))
		}
		held := 0
		for s := range m.sets {
			for w := range m.sets[s] {
				held += len(m.sets[s][w].b)
			}
		}
		if held != m.held || held > memoBudget/2 {
			t.Fatalf("after %d values: %d bytes held, counted %d, budget %d", n+1, held, m.held, memoBudget/2)
		}
	}
	if m.held < memoBudget/4 {
		t.Fatalf("only %d bytes held: the budget is not used", m.held)
	}
}

// TestMemoFindsShortValuesWhateverFollows: a value shorter than the bytes
// memoSet may hash (a node's few labels, one DNS name) is found again when
// the line goes on differently after it, as the next member of a flow does;
// and a set keeps its memoWays most recently used values.
func TestMemoFindsShortValuesWhateverFollows(t *testing.T) {
	values := []string{
		`["kubernetes.io/hostname=node-01","topology.kubernetes.io/zone=ap-northeast-2a"]`,
		`["api.example.com"]`,
		`{"ID":7,"identity":2,"labels":["reserved:world"]}`,
		`"TCP Flags: ACK"`,
		`[]`,
	}
	for _, v := range values {
		var m memo[struct{}]
		for n := 0; n < 50; n++ {
			line := fmt.Appendf(nil, `x%s,"l4":{"TCP":{"source_port":%d}},"uuid":"%08x-%d"}`, v, 40000+n, n*7919, n)
			e, set := m.find(line, 1)
			switch {
			case n == 0 && e != nil:
				t.Fatalf("%s: found before it was added", v)
			case n > 0 && (e == nil || string(e.b) != v):
				t.Fatalf("%s: not found after %d lookups with other bytes after it (set %d)", v, n, set)
			}
			if e == nil {
				m.add(line, set, 1, 1+len(v))
			}
		}
	}
	// Values that share a set: the memoWays most recently used stay.
	var m memo[struct{}]
	bySet := map[int][][]byte{}
	for n := 0; ; n++ {
		v := fmt.Appendf(nil, `["pod-%d"]`, n)
		s := memoSet(v)
		if bySet[s] = append(bySet[s], v); len(bySet[s]) == memoWays+1 {
			vs := bySet[s]
			for _, v := range vs[:memoWays] {
				_, set := m.find(v, 0)
				m.add(v, set, 0, len(v))
			}
			if e, _ := m.find(vs[0], 0); e == nil { // vs[0] most recently used now
				t.Fatalf("%s: evicted with %d values in its set", vs[0], memoWays)
			}
			_, set := m.find(vs[memoWays], 0)
			m.add(vs[memoWays], set, 0, len(vs[memoWays])) // evicts vs[1], the least recently used
			for k, v := range vs {
				if e, _ := m.find(v, 0); (e != nil) != (k != 1) {
					t.Fatalf("value %d of %d in one set: found %v", k, len(vs), e != nil)
				}
			}
			return
		}
	}
}
