package report

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
)

// variedArchive archives generated flows plus flows with the edge cases of
// every column the report reads: absent and present optional values, empty
// and long lists, several policies, is_reply false, true and absent.
func variedArchive(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root, RowGroupRows: 1000}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gen.New(gen.Config{Seed: 9, Nodes: 3, Rate: 50, Start: jan})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	b := &flow.Batch{}
	for i := 0; i < 6000; i++ {
		f := b.Next()
		f.Reset()
		if i%3 != 0 {
			for {
				if gf := g.Next().GetFlow(); gf != nil {
					f.Time, f.Uuid, f.NodeName, f.Verdict = gf.Time, gf.Uuid, gf.NodeName, gf.Verdict
					f.Source, f.Destination, f.IP, f.L4, f.L7 = gf.Source, gf.Destination, gf.IP, gf.L4, gf.L7
					f.SourceNames, f.DestinationNames, f.IsReply = gf.SourceNames, gf.DestinationNames, gf.IsReply
					f.DropReasonDesc, f.EgressDeniedBy, f.IngressDeniedBy = gf.DropReasonDesc, gf.EgressDeniedBy, gf.IngressDeniedBy
					break
				}
			}
		} else {
			f.Uuid = strconv.Itoa(i)
			f.Time = timestamppb.New(jan.Add(time.Duration(i) * time.Second))
			f.NodeName = []string{"c/a", "", "c/b"}[r.IntN(3)]
			f.Verdict = flowpb.Verdict(r.IntN(4))
			if r.IntN(2) == 0 {
				f.Source = &flowpb.Endpoint{Namespace: "ns" + strconv.Itoa(r.IntN(3)), Identity: uint32(r.IntN(3)), Labels: []string{"k8s:a=1", "k8s:b=" + strconv.Itoa(r.IntN(5))}[:r.IntN(3)]}
				for k := r.IntN(3); k > 0; k-- {
					f.Source.Workloads = append(f.Source.Workloads, &flowpb.Workload{Name: "w" + strconv.Itoa(k), Kind: "Deployment"})
				}
			}
			if r.IntN(2) == 0 {
				f.Destination = &flowpb.Endpoint{PodName: "p" + strconv.Itoa(r.IntN(4)), Labels: []string{"reserved:world"}[:r.IntN(2)]}
			}
			for k := r.IntN(4); k > 0; k-- {
				p := &flowpb.Policy{Name: "pol" + strconv.Itoa(k), Namespace: []string{"", "x"}[r.IntN(2)], Labels: []string{"l"}}
				if r.IntN(2) == 0 {
					f.EgressDeniedBy = append(f.EgressDeniedBy, p)
				} else {
					f.IngressDeniedBy = append(f.IngressDeniedBy, p)
				}
			}
			switch r.IntN(3) {
			case 0:
				f.IsReply = wrapperspb.Bool(false)
			case 1:
				f.IsReply = wrapperspb.Bool(true)
			}
			if r.IntN(2) == 0 {
				f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_UDP{UDP: &flowpb.UDP{DestinationPort: uint32(r.IntN(3) * 53)}}}
			}
			f.DestinationNames = []string{"a.example", "b.example"}[:r.IntN(3)]
		}
		b.AddStat(f.GetNodeName(), f.GetTime().GetSeconds()/60*60, flow.Counts{Seen: 1, Kept: 1})
		if len(b.Flows) == 500 {
			b.Checkpoint = flow.Checkpoint{Source: "t", Position: strconv.Itoa(i)}
			if err := w.Write(b); err != nil {
				t.Fatal(err)
			}
			b = &flow.Batch{}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestColumnScanMatchesRowScan: the report's column reader yields, row for
// row, what parquet-go's row reader yields for the fields the report reads.
func TestColumnScanMatchesRowScan(t *testing.T) {
	root := variedArchive(t)
	sc, err := archive.OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	o := archive.ScanOptions{From: jan.Add(-time.Minute), To: jan.Add(90 * time.Minute)}
	norm := func(r flowRow) string {
		for _, l := range []*[]archive.Workload{&r.SourceWorkloads, &r.DestWorkloads} {
			w := make([]archive.Workload, len(*l))
			for i, x := range *l {
				w[i] = archive.Workload{Name: x.Name} // the report reads the name only
			}
			*l = w
		}
		for _, l := range []*[]archive.Policy{&r.EgressDeniedBy, &r.IngressDeniedBy} {
			p := make([]archive.Policy, len(*l))
			for i, x := range *l {
				p[i] = archive.Policy{Name: x.Name, Namespace: x.Namespace}
			}
			*l = p
		}
		for _, l := range []*[]string{&r.SourceLabels, &r.DestLabels, &r.SourceNames, &r.DestinationNames} {
			if len(*l) == 0 {
				*l = nil
			}
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var want, got []string
	if err := archive.ScanFlowsAs(context.Background(), sc, o, func(r *flowRow) int64 { return r.Time }, func(rows []flowRow) error {
		for _, r := range rows {
			want = append(want, norm(r))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := scanRows(context.Background(), sc, o, allColumns, func(rows []flowRow) {
		for _, r := range rows {
			got = append(got, norm(r))
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(want) < 1000 || len(got) != len(want) {
		t.Fatalf("%d rows from the column reader, %d from parquet-go's", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("row %d:\n column %s\n    row %s", i, got[i], want[i])
		}
	}
}

// TestColumnScanOfAnOlderSchema: a file without some of the report's
// columns (another schema version) reads them as NULL, like parquet-go's
// row reader does.
func TestColumnScanOfAnOlderSchema(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "flows", "date=2026-01-05", "node=n1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	type older struct {
		Time    int64   `parquet:"time,timestamp(microsecond:utc)"`
		Verdict *string `parquet:"verdict,optional,dict"`
		NodeNm  *string `parquet:"node_name,optional,dict"`
	}
	f, err := os.Create(filepath.Join(dir, "part-00000000000000000001-000001-x.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	v, n := "DROPPED", "n1"
	t0 := time.Date(2026, 1, 5, 1, 0, 0, 0, time.UTC)
	w := parquet.NewGenericWriter[older](f)
	if _, err := w.Write([]older{{Time: t0.UnixMicro(), Verdict: &v, NodeNm: &n}, {Time: t0.Add(time.Second).UnixMicro()}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "stats"), 0o755); err != nil {
		t.Fatal(err)
	}
	sc, err := archive.OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []flowRow
	if err := scanRows(context.Background(), sc, archive.ScanOptions{}, allColumns, func(rows []flowRow) {
		got = append(got, rows...)
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Verdict == nil || *got[0].Verdict != "DROPPED" || *got[0].NodeName != "n1" ||
		got[0].IPSource != nil || got[0].SourceLabels != nil || got[1].Verdict != nil || got[1].Time != t0.Add(time.Second).UnixMicro() {
		t.Fatalf("rows of an older schema: %+v", got)
	}
}

// TestColumnScanOfOtherWriters: files of other writers (another tool, an
// older flowaudit) read the same: small pages (a dictionary shared by many
// pages, lists on page boundaries) and plain-encoded strings.
func TestColumnScanOfOtherWriters(t *testing.T) {
	sc, err := archive.OpenScanner(variedArchive(t))
	if err != nil {
		t.Fatal(err)
	}
	o := archive.ScanOptions{From: jan.Add(-time.Minute), To: jan.Add(90 * time.Minute)}
	var want []flowRow
	if err := archive.ScanFlowsAs(context.Background(), sc, o, func(r *flowRow) int64 { return r.Time }, func(rows []flowRow) error {
		for _, r := range rows {
			b, err := json.Marshal(r) // a deep copy: rows are reused
			if err != nil {
				return err
			}
			var c flowRow
			if err := json.Unmarshal(b, &c); err != nil {
				return err
			}
			// What the column reader fills (see norm above).
			for _, l := range []*[]archive.Workload{&c.SourceWorkloads, &c.DestWorkloads} {
				for i := range *l {
					(*l)[i] = archive.Workload{Name: (*l)[i].Name}
				}
			}
			for _, l := range []*[]archive.Policy{&c.EgressDeniedBy, &c.IngressDeniedBy} {
				for i := range *l {
					(*l)[i] = archive.Policy{Name: (*l)[i].Name, Namespace: (*l)[i].Namespace}
				}
			}
			for _, l := range []*[]string{&c.SourceLabels, &c.DestLabels, &c.SourceNames, &c.DestinationNames} {
				if len(*l) == 0 {
					*l = nil
				}
			}
			want = append(want, c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// plainRow is flowRow without dictionary encoding.
	type plainWorkload struct {
		Name string `parquet:"name"`
	}
	type plainPolicy struct {
		Name      string `parquet:"name"`
		Namespace string `parquet:"namespace"`
	}
	type plainRow struct {
		Time             int64           `parquet:"time,timestamp(microsecond:utc)"`
		Verdict          *string         `parquet:"verdict,optional"`
		DropReasonDesc   *string         `parquet:"drop_reason_desc,optional"`
		IPSource         *string         `parquet:"ip_source,optional"`
		IPDestination    *string         `parquet:"ip_destination,optional"`
		L4Protocol       *string         `parquet:"l4_protocol,optional"`
		L4DestPort       *uint32         `parquet:"l4_destination_port,optional"`
		SourceIdentity   *uint32         `parquet:"source_identity,optional"`
		SourceNamespace  *string         `parquet:"source_namespace,optional"`
		SourcePod        *string         `parquet:"source_pod_name,optional"`
		SourceLabels     []string        `parquet:"source_labels,optional,list"`
		SourceWorkloads  []plainWorkload `parquet:"source_workloads,optional,list"`
		DestIdentity     *uint32         `parquet:"destination_identity,optional,dict"` // a dictionary of numbers
		DestNamespace    *string         `parquet:"destination_namespace,optional"`
		DestPod          *string         `parquet:"destination_pod_name,optional"`
		DestLabels       []string        `parquet:"destination_labels,optional,list"`
		DestWorkloads    []plainWorkload `parquet:"destination_workloads,optional,list"`
		NodeName         *string         `parquet:"node_name,optional"`
		SourceNames      []string        `parquet:"source_names,optional,list"`
		DestinationNames []string        `parquet:"destination_names,optional,list"`
		L7DNSQuery       *string         `parquet:"l7_dns_query,optional"`
		L7DNSRcode       *uint32         `parquet:"l7_dns_rcode,optional"`
		L7HTTPCode       *uint32         `parquet:"l7_http_code,optional"`
		L7HTTPMethod     *string         `parquet:"l7_http_method,optional"`
		IsReply          *bool           `parquet:"is_reply,optional"`
		EgressDeniedBy   []plainPolicy   `parquet:"egress_denied_by,optional,list"`
		IngressDeniedBy  []plainPolicy   `parquet:"ingress_denied_by,optional,list"`
	}
	plain := make([]plainRow, len(want))
	for i, r := range want {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &plain[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		write func(f *os.File) error
	}{
		{"dictionary, small pages", func(f *os.File) error {
			w := parquet.NewGenericWriter[flowRow](f, parquet.PageBufferSize(256))
			if _, err := w.Write(want); err != nil {
				return err
			}
			return w.Close()
		}},
		{"plain, small pages", func(f *os.File) error {
			w := parquet.NewGenericWriter[plainRow](f, parquet.PageBufferSize(512))
			if _, err := w.Write(plain); err != nil {
				return err
			}
			return w.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "flows", "date=2026-01-01", "node=n1")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Join(root, "stats"), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(filepath.Join(dir, "part-00000000000000000001-000001-x.parquet"))
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.write(f); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			sc, err := archive.OpenScanner(root)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			if err := scanRows(context.Background(), sc, o, allColumns, func(rows []flowRow) {
				for _, r := range rows {
					b, _ := json.Marshal(r)
					got = append(got, string(b))
				}
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for i := range want {
				b, _ := json.Marshal(want[i])
				if got[i] != string(b) {
					t.Fatalf("row %d:\n got %s\nwant %s", i, got[i], b)
				}
			}
		})
	}
}

// TestColumnScanOfDamagedPages: bytes flipped inside a file's pages are an
// error naming the file and column (the writer stores page CRCs and
// parquet-go checks them), never a panic; damage in columns the report does
// not read is not noticed by the scan (verify's hashes are for that).
func TestColumnScanOfDamagedPages(t *testing.T) {
	root := variedArchive(t)
	files, _ := filepath.Glob(filepath.Join(root, "flows", "*", "*", "*.parquet"))
	errs := 0
	for seed := 0; seed < 10; seed++ {
		for _, f := range files {
			good, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			bad := slices.Clone(good)
			for i := 0; i < 64; i++ { // past the magic, before the footer
				bad[(seed*7919+i*131)%(len(bad)-200)+4] ^= byte(0x5a + i)
			}
			if err := os.WriteFile(f, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			sc, err := archive.OpenScanner(root)
			if err != nil {
				t.Fatal(err)
			}
			err = scanRows(context.Background(), sc, archive.ScanOptions{}, allColumns, func([]flowRow) {})
			if err != nil {
				errs++
				if !strings.Contains(err.Error(), filepath.Base(f)) {
					t.Errorf("damaged %s: %v, want an error naming it", filepath.Base(f), err)
				}
			}
			if err := os.WriteFile(f, good, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if errs == 0 {
		t.Fatal("no damage was noticed")
	}
}
