package archive

import (
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

// readTestArchive writes n generated flows, with one that sets every
// message the schema stores every 997 flows, into an archive of row groups
// of 25,000 rows (pages of pageRows), and returns its flows row groups.
func readTestArchive(t testing.TB, n int) []FlowRowGroup {
	t.Helper()
	root := t.TempDir()
	cfg := DefaultConfig()
	cfg.Root, cfg.RowGroupRows = root, 25_000
	w, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gen.New(gen.Config{Seed: 3, Nodes: 1, LostEventEvery: -1, AgentEventEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	ext, err := anypb.New(wrapperspb.String("x"))
	if err != nil {
		t.Fatal(err)
	}
	b := &flow.Batch{}
	for done := 0; done < n; {
		b.Reset()
		for b.Len() < 4096 && done < n {
			f := g.Next().GetFlow()
			if f == nil {
				continue
			}
			if done%997 == 5 {
				f = proto.Clone(f).(*flowpb.Flow)
				f.Tunnel = &flowpb.Tunnel{Protocol: flowpb.Tunnel_VXLAN, IP: &flowpb.IP{Source: "1.1.1.1", Destination: "2.2.2.2"}, L4: &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{SourcePort: 5, DestinationPort: 8472}}}}
				f.L7 = &flowpb.Layer7{Type: flowpb.L7FlowType_REQUEST, Record: &flowpb.Layer7_Http{Http: &flowpb.HTTP{Code: 200, Method: "GET", Headers: []*flowpb.HTTPHeader{{Key: "a", Value: "b"}, {Key: "c", Value: "d"}}}}}
				f.Source = &flowpb.Endpoint{Namespace: "a", Workloads: []*flowpb.Workload{{Name: "w", Kind: "Deployment"}, {Name: "v", Kind: "Job"}}}
				f.IsReply, f.TraceContext = wrapperspb.Bool(false), &flowpb.TraceContext{Parent: &flowpb.TraceParent{TraceId: "t"}}
				f.EgressDeniedBy = []*flowpb.Policy{{Name: "p", Namespace: "n", Labels: []string{"k=v", "k2=v2"}, Revision: 4, Kind: "CiliumNetworkPolicy"}, {Name: "q"}, {Name: "r", Labels: []string{"x"}}}
				f.Extensions, f.Interface, f.File = ext, &flowpb.NetworkInterface{Index: 2, Name: "eth0"}, &flowpb.FileInfo{Name: "bpf.c", Line: 9}
				f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 1, DestinationPort: 2, Flags: &flowpb.TCPFlags{SYN: true}}}}
				f.EventType = &flowpb.CiliumEventType{Type: 4, SubType: 3}
				f.SocketCookie, f.ProxyPort = 77, 8080
			}
			proto.Merge(b.Next(), f)
			done++
		}
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sc, err := OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	files, err := sc.Files("flows", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	groups, err := FlowRowGroups(files, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return groups
}

// firstRowGroup is a reader and the first row group of a test archive of
// n flows (closed when the test ends).
func firstRowGroup(t *testing.T, n int) (*RowReader[FlowRow], parquet.RowGroup) {
	t.Helper()
	groups := readTestArchive(t, n)
	r, err := NewRowReader[FlowRow]()
	if err != nil {
		t.Fatal(err)
	}
	f, err := OpenFlowFile(groups[0].File)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return r, f.pf.RowGroups()[groups[0].Index]
}

// parquetRows reads a row group's rows with parquet-go's row reader.
func parquetRows(t testing.TB, rg parquet.RowGroup) []FlowRow {
	t.Helper()
	r := parquet.NewGenericRowGroupReader[FlowRow](rg)
	defer r.Close()
	out := make([]FlowRow, rg.NumRows())
	for n := 0; n < len(out); {
		k, err := r.Read(out[n:])
		n += k
		if err != nil && !errors.Is(err, io.EOF) || k == 0 && n < len(out) {
			t.Fatalf("row %d: %v", n, err)
		}
	}
	return out
}

// sameRow compares rows as FlowBuilder reads them: the Flows they make,
// and the time column.
func sameRow(t *testing.T, what string, got, want *FlowRow) {
	t.Helper()
	var b1, b2 FlowBuilder
	f1, f2 := &flowpb.Flow{}, &flowpb.Flow{}
	if err := b1.Flow(got, f1); err != nil {
		t.Fatal(err)
	}
	if err := b2.Flow(want, f2); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(f1, f2) || got.Time != want.Time {
		t.Fatalf("%s:\n got %v\nwant %v", what, f1, f2)
	}
}

// TestRowReaderMatchesParquetGo: every row read column-first, in batches,
// forward and back, with rows left out, equals parquet-go's row.
func TestRowReaderMatchesParquetGo(t *testing.T) {
	n := 60_000
	if raceEnabled {
		n = 30_000 // still two row groups, of several pages
	}
	groups := readTestArchive(t, n)
	if len(groups) < 2 {
		t.Fatalf("%d row groups, want several", len(groups))
	}
	r, err := NewRowReader[FlowRow]()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, g := range groups {
		f, err := OpenFlowFile(g.File)
		if err != nil {
			t.Fatal(err)
		}
		rg := f.pf.RowGroups()[g.Index]
		want := parquetRows(t, rg)
		r.Reset(RowGroup{rg})
		times, err := r.Int64s("time_ns", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if times[i] != want[i].TimeNs {
				t.Fatalf("time_ns of row %d: %d, want %d", i, times[i], want[i].TimeNs)
			}
		}
		// Forward, all columns, in batches that cross pages.
		batch := make([]FlowRow, 1000)
		for first := int64(0); first < rg.NumRows(); first += int64(len(batch)) {
			rows := batch[:min(int64(len(batch)), rg.NumRows()-first)]
			r.Begin()
			if err := r.Read(r.AllColumns(), first, rows, nil); err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				sameRow(t, "forward", &rows[i], &want[first+int64(i)])
			}
		}
		// Anywhere, in two passes as serve reads: some columns, then the
		// others for the rows kept.
		some := r.FlowColumns(flow.Fields("source", "verdict", "l4"))
		keep := make([]bool, 300)
		for range 40 {
			first := rng.Int64N(rg.NumRows() - int64(len(keep)))
			rows := batch[:len(keep)]
			clear(rows)
			r.Begin()
			if err := r.Read(some, first, rows, nil); err != nil {
				t.Fatal(err)
			}
			for i := range keep {
				keep[i] = rng.IntN(5) == 0
			}
			if err := r.Read(r.AllColumns().Without(some), first, rows, keep); err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				if keep[i] {
					sameRow(t, "two passes", &rows[i], &want[first+int64(i)])
				}
			}
		}
		f.Close()
	}
}

// TestFlowColumnsHoldTheirFields: a row read with the columns of one Flow
// field makes that field as the whole row does, for every field of Flow.
func TestFlowColumnsHoldTheirFields(t *testing.T) {
	r, rg := firstRowGroup(t, 3000)
	want := parquetRows(t, rg)
	r.Reset(RowGroup{rg})
	fields := (&flowpb.Flow{}).ProtoReflect().Descriptor().Fields()
	covered := Columns{}
	rows := make([]FlowRow, len(want))
	for i := range fields.Len() {
		fd := fields.Get(i)
		cols := r.FlowColumns(flow.Fields(string(fd.Name())))
		covered = covered.Union(cols)
		clear(rows)
		r.Begin()
		if err := r.Read(cols, 0, rows, nil); err != nil {
			t.Fatal(err)
		}
		var b1, b2 FlowBuilder
		f1, f2 := &flowpb.Flow{}, &flowpb.Flow{}
		for k := range rows {
			if err := b1.Flow(&rows[k], f1); err != nil {
				t.Fatal(err)
			}
			if err := b2.Flow(&want[k], f2); err != nil {
				t.Fatal(err)
			}
			v1, v2 := f1.ProtoReflect().Get(fd), f2.ProtoReflect().Get(fd)
			if !v1.Equal(v2) {
				t.Fatalf("field %s of row %d: %v, want %v", fd.Name(), k, v1, v2)
			}
		}
	}
	if covered != r.AllColumns() {
		t.Fatalf("the Flow fields hold %d of the %d columns", covered.Len(), r.AllColumns().Len())
	}
	for col := range flowFieldOf {
		if _, err := r.Columns(col); err != nil {
			t.Errorf("flowFieldOf: %v", err)
		}
	}
}

// TestRowReaderLeavesAreTheSchema: FlowRow's leaves, as the reader lays
// them out, are the writer's.
func TestRowReaderLeavesAreTheSchema(t *testing.T) {
	l, err := layoutOf(reflect.TypeFor[FlowRow]())
	if err != nil {
		t.Fatal(err)
	}
	if len(l.leaves) != len(shredPaths) {
		t.Fatalf("%d leaves, the writer has %d", len(l.leaves), len(shredPaths))
	}
	for i, s := range l.leaves {
		if s.path != shredPaths[i] {
			t.Errorf("leaf %d: %s, the writer's is %s", i, s.path, shredPaths[i])
		}
	}
	type notARow struct {
		Time int64 `parquet:"time"`
	}
	if _, err := NewRowReader[notARow](); err == nil {
		t.Error("a struct whose field's tag differs from FlowRow's was accepted")
	}
}

// TestRowReaderAllocations: reading rows in steady state, with transient
// strings, allocates nothing per row.
func TestRowReaderAllocations(t *testing.T) {
	r, rg := firstRowGroup(t, 20_000)
	r.Transient()
	rows := make([]FlowRow, 1000)
	read := func() {
		r.Reset(RowGroup{rg})
		for first := int64(0); first+int64(len(rows)) <= rg.NumRows(); first += int64(len(rows)) {
			r.Begin()
			if err := r.Read(r.AllColumns(), first, rows, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	read()
	allocs := testing.AllocsPerRun(3, read)
	// What is left is per page and per dictionary (parquet-go's pages,
	// the offset indexes); a value of each row in a string of its own
	// would be several a row.
	if perRow := allocs / float64(rg.NumRows()); perRow > 0.5 {
		t.Fatalf("%.0f allocations for %d rows", allocs, rg.NumRows())
	}
}

// TestFilterColumns: the fields of an endpoint or of the IP header are read
// column by column, and the messages so read in part are named; other
// fields are read whole.
func TestFilterColumns(t *testing.T) {
	r, err := NewRowReader[FlowRow]()
	if err != nil {
		t.Fatal(err)
	}
	cols := func(names ...string) Columns {
		c, err := r.Columns(names...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		fields flow.FieldSet
		want   Columns
		parts  []Part
	}{
		{flow.Fields("source.namespace", "source.pod_name"), cols("source_namespace", "source_pod_name"), []Part{{"source", cols("source_namespace", "source_pod_name")}}},
		{flow.Fields("verdict", "IP.source", "destination.identity"), cols("verdict", "ip_source", "destination_identity"), []Part{{"destination", cols("destination_identity")}, {"IP", cols("ip_source")}}},
		{flow.Fields("source", "l4.TCP.flags"), r.FlowColumns(flow.Fields("source", "l4")), nil},
		{flow.Fields("IP.source", "IP.source_xlated", "IP.destination", "IP.ipVersion", "IP.encrypted"), r.FlowColumns(flow.Fields("IP")), nil},
		{flow.AllFields(), r.AllColumns(), nil},
	} {
		got, parts := r.FilterColumns(tc.fields)
		if got != tc.want || !reflect.DeepEqual(parts, tc.parts) {
			t.Errorf("%v: %d columns %v, want %d %v", tc.fields, got.Len(), parts, tc.want.Len(), tc.parts)
		}
	}
	ep := cols("source_identity", "source_labels", "source_workloads")
	var row FlowRow
	if !r.Null(ep, &row) {
		t.Error("a zero row is not NULL")
	}
	row.SourceLabels = []string{}
	if r.Null(ep, &row) {
		t.Error("an empty list is NULL")
	}
	row.SourceLabels, row.SourceWorkloads = nil, []Workload{{Name: "api"}}
	if r.Null(ep, &row) {
		t.Error("a list of structs is NULL")
	}
	row.SourceWorkloads, row.SourceIdentity = nil, new(uint32)
	if r.Null(ep, &row) {
		t.Error("an identity of 0 is NULL")
	}
}
