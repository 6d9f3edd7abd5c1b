// Package report checks every number of the monthly report against DuckDB:
// the test builds an archive, renders the report to JSON and runs the exact
// SQL the report prints beside each number over the same Parquet files.
package report

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	_ "github.com/duckdb/duckdb-go/v2"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/report"
)

var (
	month = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	nodes = []string{"prod/node-a", "prod/node-b", "prod/node-c"}
)

// down reports whether node n's collector is down (no flows, no stats row)
// at minute t: node-b is down for 3 h 20 min on Jan 10, node-c for Jan 20.
func down(n int, t time.Time) bool {
	switch n {
	case 1:
		return !t.Before(time.Date(2026, 1, 10, 5, 0, 0, 0, time.UTC)) && t.Before(time.Date(2026, 1, 10, 8, 20, 0, 0, time.UTC))
	case 2:
		return t.Day() == 20 && t.Month() == time.January
	}
	return false
}

// quiet reports whether node n has stats rows but no traffic at minute t.
func quiet(n int, t time.Time) bool { return n == 0 && t.Day() == 15 && t.Hour() == 3 }

// buildArchive writes flows from Dec 31 to Feb 1 (so the month bounds are
// exercised): every node emits flows every 2 minutes of simulated time.
func buildArchive(t *testing.T, root string) int {
	t.Helper()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &flow.Batch{}
	total := 0
	start, end := month.Add(-6*time.Hour), month.AddDate(0, 1, 0).Add(6*time.Hour)
	i := 0
	for m := start; m.Before(end); m = m.Add(time.Minute) {
		for n, node := range nodes {
			if down(n, m) {
				continue
			}
			var c flow.Counts
			if !quiet(n, m) && m.Minute()%2 == n%2 {
				for k := 0; k < 2; k++ {
					i++
					f := b.Next()
					f.Reset()
					fill(f, i, node, m.Add(time.Duration(k)*20*time.Second+time.Duration(n)*time.Second))
					c.Seen++
					c.Kept++
					total++
				}
				c.Seen++
				c.Denied++
			}
			if n == 1 && m.Day() == 25 && m.Hour() == 10 && m.Minute() == 7 {
				c.DecodeErrors = 3 // no loss record: a loss nothing explains
			}
			b.AddStat(node, m.Unix(), c)
			if n == 2 && m.Hour() == 12 && m.Minute() == 0 {
				b.Losses = append(b.Losses, flow.Loss{Node: node, Time: m, Reason: flow.LossHubbleLostEvents, Detail: "PERF_EVENT_RING_BUFFER", Events: uint64(m.Day())})
			}
		}
		if len(b.Flows) > 4000 || m.Add(time.Minute).Equal(end) {
			b.Checkpoint = flow.Checkpoint{Source: "test", Position: strconv.Itoa(i)}
			if err := w.Write(b); err != nil {
				t.Fatal(err)
			}
			b.Reset()
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return total
}

var (
	nss   = []string{"payments", "frontend", "kube-system", "db"}
	apps  = []string{"api", "web", "coredns", "postgres", "=HYPERLINK(\"x\")", "<script>alert(1)</script>", "a|b\nc`d"}
	ports = []uint32{443, 80, 53, 5432, 22, 6443}
)

func fill(f *flowpb.Flow, i int, node string, ts time.Time) {
	f.Uuid = strconv.Itoa(i)
	f.Time = timestamppb.New(ts)
	f.NodeName = node
	f.Verdict = flowpb.Verdict_FORWARDED
	switch {
	case i%17 == 0:
		f.Verdict = flowpb.Verdict_DROPPED
		f.DropReasonDesc = flowpb.DropReason_POLICY_DENIED
	case i%29 == 0:
		f.Verdict = flowpb.Verdict_AUDIT
	}
	f.IP = &flowpb.IP{Source: fmt.Sprintf("10.0.%d.%d", i%3, i%200), Destination: fmt.Sprintf("10.1.0.%d", i%50), IpVersion: flowpb.IPVersion_IPv4}
	f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 40000 + uint32(i%1000), DestinationPort: ports[i%len(ports)]}}}
	f.Source = &flowpb.Endpoint{Identity: 10000 + uint32(i%7), Namespace: nss[i%len(nss)], PodName: apps[i%len(apps)] + "-pod",
		Workloads: []*flowpb.Workload{{Name: apps[i%len(apps)], Kind: "Deployment"}}}
	f.Destination = &flowpb.Endpoint{Identity: 10000 + uint32(i%11), Namespace: nss[(i/3)%len(nss)], PodName: apps[(i/5)%len(apps)] + "-pod"}
	if i%3 == 0 {
		f.Destination.Labels = []string{"k8s:tier=1", "k8s:zone=pci"}
	}
	if i%4 == 0 {
		f.Source.Labels = []string{"k8s:app=" + apps[i%len(apps)]}
	}
	if i%10 == 0 {
		f.IsReply = &wrapperspb.BoolValue{Value: true}
	}
	if i%13 == 0 {
		f.Destination = &flowpb.Endpoint{Identity: []uint32{2, 9, 10}[i%3]}
		f.DestinationNames = []string{"api.example.com"}
	}
	if i%19 == 0 {
		f.Destination = &flowpb.Endpoint{Identity: 16777300, Labels: []string{"reserved:world"}}
	}
	if i%23 == 0 { // an empty first DNS name: the endpoint is named by the next rule
		f.Destination = &flowpb.Endpoint{Identity: 2}
		f.DestinationNames = []string{""}
	}
}

func query(t *testing.T, db *sql.DB, q string) [][]any {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			switch x := v.(type) {
			case int64, string:
			case int32:
				vals[i] = int64(x)
			case uint64:
				vals[i] = int64(x)
			case *big.Int:
				vals[i] = x.Int64()
			case float64:
				vals[i] = int64(x)
			default:
				vals[i] = fmt.Sprint(v)
			}
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// reportDoc is the report's JSON as an auditor reads it.
type reportDoc struct {
	TotalFlows  int64 `json:"total_flows"`
	DeniedTotal int64 `json:"denied_total"`
	DeniedPairs int64 `json:"denied_pairs"`
	DeniedNew   int64 `json:"denied_new_pairs"`
	World       int64 `json:"world_egress_total"`
	PrivByPort  []struct {
		Key   string `json:"key"`
		Count int64  `json:"count"`
	} `json:"privileged_by_port"`
	Verdicts []struct {
		Key   string `json:"key"`
		Count int64  `json:"count"`
	} `json:"verdicts"`
	Daily []struct {
		Day     string `json:"day"`
		Total   int64  `json:"total"`
		Dropped int64  `json:"dropped"`
		Audit   int64  `json:"audit"`
	} `json:"daily"`
	Coverage []struct {
		Node               string
		Hours              int   `json:"hours"`
		Down               int   `json:"hours_collector_down"`
		Collected          int   `json:"hours_collected"`
		NoTraffic          int   `json:"hours_no_traffic"`
		WithLoss           int   `json:"hours_with_loss"`
		Minutes            int64 `json:"minutes"`
		MinutesCollected   int64 `json:"minutes_collected"`
		MinutesLost        int64 `json:"minutes_lost"`
		MinutesUnexplained int64 `json:"minutes_loss_unexplained"`
		Configurations     []struct {
			Version string    `json:"collector_version"`
			Hash    string    `json:"config_hash"`
			First   time.Time `json:"first"`
			Last    time.Time `json:"last"`
		} `json:"configurations"`
		Seen, Kept, Denied, Decode, Lost, LostRotation int64 `json:"-"`
	} `json:"coverage"`
	Zones []struct {
		Name         string `json:"name"`
		InternalOnly bool   `json:"internal_only"`
		Inbound      int64  `json:"inbound_flows"`
		Unauthorized int64  `json:"unauthorized_flows"`
		Reached      int64  `json:"unauthorized_reached_flows"`
		WorldEgress  int64  `json:"world_egress_flows"`
		Holds        bool   `json:"internal_only_assertion_holds"`
	} `json:"zones"`
	DeniedGone int64 `json:"denied_gone_pairs"`
	Previous   struct {
		TotalFlows  int64   `json:"total_flows"`
		DeniedTotal int64   `json:"denied_total"`
		DeniedPairs int64   `json:"denied_pairs"`
		World       int64   `json:"world_egress_total"`
		Daily       []int64 `json:"daily"`
		Coverage    []struct {
			Node      string `json:"node"`
			Collected int64  `json:"minutes_collected"`
			Lost      int64  `json:"minutes_lost"`
		} `json:"coverage"`
	} `json:"previous_month"`
	PrivilegedUnapproved int64     `json:"privileged_unapproved"`
	OldestFlow           time.Time `json:"oldest_flow"`
	ToUTC                time.Time `json:"to_utc"`
	Findings             []struct {
		Check  string   `json:"check"`
		Status string   `json:"status"`
		Value  *float64 `json:"value"`
		Query  string   `json:"query"`
	} `json:"findings"`
	Excluded []report.Excluded `json:"excluded"`
	Queries  []report.Query    `json:"queries"`
}

// matchDuckDB renders rep to JSON, runs each query it prints with DuckDB
// and requires the rows of the JSON values it names.
func matchDuckDB(t *testing.T, rep *report.Report) reportDoc {
	t.Helper()
	// Round-trip through JSON: the test checks the document an auditor gets.
	var buf bytes.Buffer
	if err := report.RenderJSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	var doc reportDoc
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Coverage []map[string]any `json:"coverage"`
	}
	_ = json.Unmarshal(buf.Bytes(), &raw)
	sqlOf := map[string]string{}
	for _, q := range doc.Queries {
		sqlOf[q.Name] = q.SQL
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check := func(name string, want [][]any) {
		t.Helper()
		q, ok := sqlOf[name]
		if !ok {
			t.Fatalf("report prints no query %q", name)
		}
		got := query(t, db, q)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: DuckDB %v\nreport %v\nSQL: %s", name, got, want, q)
		}
	}
	check("total_flows", [][]any{{doc.TotalFlows}})
	check("denied_total", [][]any{{doc.DeniedTotal}})
	check("denied_pairs", [][]any{{doc.DeniedPairs}})
	check("denied_new_pairs", [][]any{{doc.DeniedNew}})
	check("denied_gone_pairs", [][]any{{doc.DeniedGone}})
	check("previous_totals", [][]any{{doc.Previous.TotalFlows, doc.Previous.DeniedTotal, doc.Previous.DeniedPairs, doc.Previous.World}})
	var pd [][]any
	for i, n := range doc.Previous.Daily {
		if n > 0 {
			pd = append(pd, []any{int32(i + 1), n})
		}
	}
	check("previous_daily", pd)
	check("world_egress_total", [][]any{{doc.World}})
	var ps [][]any
	for _, p := range doc.PrivByPort {
		ps = append(ps, []any{p.Key, p.Count})
	}
	check("privileged_by_port", ps)
	var vs [][]any
	for _, v := range doc.Verdicts {
		vs = append(vs, []any{v.Key, v.Count})
	}
	check("verdicts", vs)
	var ds [][]any
	for _, d := range doc.Daily {
		ds = append(ds, []any{d.Day, d.Total, d.Dropped, d.Audit})
	}
	check("daily", ds)
	var cs [][]any
	for i, c := range doc.Coverage {
		r := raw.Coverage[i]
		n := func(k string) int64 { return int64(r[k].(float64)) }
		cs = append(cs, []any{c.Node, c.MinutesCollected, c.MinutesLost, n("flows_seen"), n("flows_kept"), n("flows_denied_by_filter"), n("decode_errors"), n("hubble_lost_events"), n("lost_rotation_bytes")})
	}
	check("coverage", cs)
	// Last month's coverage: every node the query finds has the report's
	// minutes, and a node the report lists but the query does not (no stats
	// row, no loss) has none collected or lost.
	prevCov := map[string][2]int64{}
	for _, r := range query(t, db, sqlOf["previous_coverage"]) {
		prevCov[r[0].(string)] = [2]int64{r[1].(int64), r[2].(int64)}
	}
	for _, c := range doc.Previous.Coverage {
		if got := prevCov[c.Node]; got != [2]int64{c.Collected, c.Lost} {
			t.Errorf("previous_coverage %s: DuckDB collected, lost %v; report %d, %d", c.Node, got, c.Collected, c.Lost)
		}
		delete(prevCov, c.Node)
	}
	if len(prevCov) > 0 {
		t.Errorf("previous_coverage: nodes the report does not list: %v", prevCov)
	}
	for _, z := range doc.Zones {
		check("zone "+z.Name, [][]any{{z.Inbound, z.Unauthorized, z.WorldEgress, z.Reached}})
	}
	var unexplained int64
	var confs [][]any
	for _, c := range doc.Coverage {
		unexplained += c.MinutesUnexplained
		for _, x := range c.Configurations {
			confs = append(confs, []any{c.Node, x.Version, x.Hash, x.First.UnixMicro(), x.Last.UnixMicro()})
		}
	}
	check("losses_unexplained", [][]any{{unexplained}})
	check("configurations", confs)
	if !doc.OldestFlow.IsZero() {
		check("retention_oldest", [][]any{{doc.OldestFlow.UnixMicro()}})
	}
	if _, ok := sqlOf["privileged_unapproved"]; ok {
		check("privileged_unapproved", [][]any{{doc.PrivilegedUnapproved}})
	}
	matchFindings(t, db, doc, sqlOf)
	t.Logf("%d flows in the month; verdicts %v; coverage %v", doc.TotalFlows, vs, cs)
	return doc
}

// matchFindings requires each finding's number to be the one DuckDB gives
// through the printed queries: the coverage query's minutes (over the
// evaluable minutes, which come from the manifests), the zones' queries, and
// the findings' own queries.
func matchFindings(t *testing.T, db *sql.DB, doc reportDoc, sqlOf map[string]string) {
	t.Helper()
	cov := query(t, db, sqlOf["coverage"])
	collected, lost := map[string]int64{}, map[string]int64{}
	for _, r := range cov {
		collected[r[0].(string)], lost[r[0].(string)] = r[1].(int64), r[2].(int64)
	}
	want := map[string]float64{}
	low, down := -1.0, int64(0)
	for _, c := range doc.Coverage {
		if c.Minutes == 0 {
			continue
		}
		pct := math.Round(10000*float64(collected[c.Node])/float64(c.Minutes)) / 100
		if low < 0 || pct < low {
			low = pct
		}
		down += c.Minutes - collected[c.Node] - lost[c.Node]
	}
	want["coverage"], want["gaps_explained"] = low, float64(down)
	want["losses_explained"] = float64(query(t, db, sqlOf["losses_unexplained"])[0][0].(int64))
	var world, reached int64
	for _, z := range doc.Zones {
		r := query(t, db, sqlOf["zone "+z.Name])[0]
		if z.InternalOnly {
			world += r[2].(int64)
		}
		reached += r[3].(int64)
	}
	want["internal_only_zones"], want["zone_sources"] = float64(world), float64(reached)
	if q, ok := sqlOf["privileged_unapproved"]; ok {
		want["privileged_sources"] = float64(query(t, db, q)[0][0].(int64))
	}
	if o := query(t, db, sqlOf["retention_oldest"])[0][0]; o != nil {
		oldest := time.UnixMicro(o.(int64))
		want["retention"] = float64(int(doc.ToUTC.Sub(oldest) / (24 * time.Hour)))
	}
	perNode := map[string]int{}
	for _, r := range query(t, db, sqlOf["configurations"]) {
		perNode[r[0].(string)]++
	}
	changes := 0
	for _, n := range perNode {
		changes += n - 1
	}
	want["config_unchanged"] = float64(changes)
	for _, f := range doc.Findings {
		w, ok := want[f.Check]
		if f.Value == nil {
			if f.Status != "not_evaluated" {
				t.Errorf("finding %s: %s without a value", f.Check, f.Status)
			}
			delete(want, f.Check)
			continue
		}
		if !ok {
			continue
		}
		if *f.Value != w {
			t.Errorf("finding %s (%s): value %v, DuckDB %v", f.Check, f.Status, *f.Value, w)
		}
		delete(want, f.Check)
	}
	for k, v := range want {
		t.Errorf("finding %s: no value in the report (DuckDB %v)", k, v)
	}
}

func TestReportMatchesDuckDB(t *testing.T) {
	root := t.TempDir()
	written := buildArchive(t, root)
	zf, err := report.ParseZonesFile([]byte(`zones:
  - name: db
    namespaces: [db]
    internal_only: true
    allowed_sources: {namespaces: [kube-system]}
  - name: pci
    labels: ["k8s:zone=pci", "k8s:tier=1"]
    allowed_sources: {labels: ["k8s:app=api"]}
  - name: frontend
    namespaces: [frontend]
privileged_sources:
  namespaces: [kube-system]
  labels: ["k8s:app=api"]
`))
	if err != nil {
		t.Fatal(err)
	}
	// A writer's temporary file (being written, or left by a crash): the
	// report ignores it, and so must the printed queries.
	leftover, err := filepath.Glob(filepath.Join(root, "flows", "date=2026-01-1*", "node=*", "part-*.parquet"))
	if err != nil || len(leftover) == 0 {
		t.Fatalf("no January file to copy: %v", err)
	}
	b, err := os.ReadFile(leftover[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(leftover[0]), ".tmp-99-0123456789ab.parquet"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := report.Build(context.Background(), report.Options{Archives: []string{root}, Month: month, Location: time.UTC, Now: month.AddDate(0, 1, 1),
		Zones: zf.Zones, PrivilegedSources: zf.PrivilegedSources, CoverageTarget: 99, RetentionMin: report.Retention{Months: 12}})
	if err != nil {
		t.Fatal(err)
	}
	doc := matchDuckDB(t, rep)
	if doc.TotalFlows == 0 || doc.TotalFlows >= int64(written) {
		t.Fatalf("total_flows %d of %d written: the month's bounds select nothing or everything", doc.TotalFlows, written)
	}
	for _, q := range rep.Queries {
		if !strings.Contains(q.SQL, "/date=*/node=*/part-*.parquet'") {
			t.Errorf("%s does not read the archive by a glob of its files: %s", q.Name, q.SQL)
		}
	}
	if doc.DeniedNew == 0 || doc.DeniedNew >= doc.DeniedPairs {
		t.Errorf("denied_new_pairs %d of %d: December's 6 hours should have seen some pairs", doc.DeniedNew, doc.DeniedPairs)
	}
	if len(doc.PrivByPort) < 3 {
		t.Errorf("privileged_by_port %v: want 22, 5432 and 6443", doc.PrivByPort)
	}
	if len(doc.Daily) != 31 {
		t.Errorf("daily has %d days, want 31", len(doc.Daily))
	}
	for _, z := range doc.Zones {
		if z.Inbound == 0 || z.Unauthorized == 0 || (z.Name != "frontend" && z.Unauthorized == z.Inbound) {
			t.Errorf("zone %s: inbound %d, unauthorized %d: the dataset should exercise both", z.Name, z.Inbound, z.Unauthorized)
		}
	}
	if len(doc.Zones) != 3 || doc.Zones[0].Holds || doc.Zones[0].WorldEgress == 0 || !doc.Zones[1].Holds {
		t.Errorf("zones %+v: db is internal-only and sends to world", doc.Zones)
	}
	status := map[string]string{}
	for _, f := range doc.Findings {
		status[f.Check] = f.Status
	}
	for check, want := range map[string]string{
		"coverage": "violated", "gaps_explained": "violated", "losses_explained": "violated", "internal_only_zones": "violated",
		"zone_sources": "violated", "integrity": "holds", "signatures": "not_evaluated", "retention": "holds", "config_unchanged": "holds",
	} {
		if status[check] != want {
			t.Errorf("finding %s: %s, want %s", check, status[check], want)
		}
	}
	// node-b's collector stops at 05:00 on Jan 10 and starts at 08:20;
	// node-c's is down on Jan 20.
	var events []string
	for _, e := range rep.Timeline {
		events = append(events, e.Time.Format("01-02T15:04")+" "+e.Node+" "+e.Event)
	}
	if want := []string{"01-10T05:00 prod/node-b collector_stopped", "01-10T08:20 prod/node-b collector_started",
		"01-20T00:00 prod/node-c collector_stopped", "01-21T00:00 prod/node-c collector_started"}; fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("timeline %v, want %v", events, want)
	}
	if doc.PrivilegedUnapproved == 0 {
		t.Errorf("privileged_unapproved 0: the dataset should have privileged flows from other sources")
	}
	// The injected downtime and quiet hours are what the report says.
	byNode := map[string]int{}
	for i, c := range doc.Coverage {
		byNode[c.Node] = i
		if c.Hours != 31*24 {
			t.Errorf("%s: %d hours, want %d", c.Node, c.Hours, 31*24)
		}
	}
	if c := doc.Coverage[byNode["prod/node-b"]]; c.Down != 3 {
		t.Errorf("node-b down %d hours, want 3 (05:00-08:00; 08:00-09:00 has rows)", c.Down)
	}
	if c := doc.Coverage[byNode["prod/node-c"]]; c.Down != 24 {
		t.Errorf("node-c down %d hours, want 24", c.Down)
	}
	if c := doc.Coverage[byNode["prod/node-a"]]; c.NoTraffic != 1 || c.Down != 0 {
		t.Errorf("node-a: %d no-traffic hours, %d down, want 1 and 0", c.NoTraffic, c.Down)
	}
	lossGaps := 0
	for _, g := range rep.Coverage[byNode["prod/node-c"]].Gaps {
		if g.Reason == flow.LossHubbleLostEvents && g.Amount == "exact" && g.LostEvents != nil && *g.LostEvents == int64(g.From.Day()) &&
			strings.Contains(g.Cause, "Hubble lost events") {
			lossGaps++
		}
	}
	if lossGaps != 30 {
		t.Errorf("node-c: %d loss gaps, want 30 (12:00 of every day but the 20th)", lossGaps)
	}
	if c := doc.Coverage[byNode["prod/node-c"]]; c.WithLoss != 30 || c.MinutesLost != 30 {
		t.Errorf("node-c: %d hours and %d minutes with loss, want 30 each (the minute of each lost_events)", c.WithLoss, c.MinutesLost)
	}
	if rep.Integrity == nil || !rep.Integrity.OK() {
		t.Errorf("integrity: %+v", rep.Integrity)
	}
}

// TestExcludedFilesMatchDuckDB: a file planted in a partition of the month
// and one of the previous month, a truncated flows file, a modified one
// and a truncated stats file are excluded from the report, which is still
// written; its printed queries then read the list of the files it counted
// and still give every number.
func TestExcludedFilesMatchDuckDB(t *testing.T) {
	root := t.TempDir()
	buildArchive(t, root)
	clean, err := report.Build(context.Background(), report.Options{Archives: []string{root}, Month: month, Now: month.AddDate(0, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	glob := func(table, dates string) []string {
		m, err := filepath.Glob(filepath.Join(root, table, "date="+dates, "node=*", "part-*.parquet"))
		if err != nil || len(m) < 3 {
			t.Fatalf("%s %s: %v %v", table, dates, m, err)
		}
		return m
	}
	jan, dec, stats := glob("flows", "2026-01-*"), glob("flows", "2025-12-*"), glob("stats", "2026-01-*")
	rowsOf := func(path string) int64 {
		t.Helper()
		rep, err := archive.VerifyAll([]string{root}, month, month.AddDate(0, 1, 0), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range rep.Intact {
			if filepath.Join(root, v.Path) == path {
				return v.Rows
			}
		}
		t.Fatalf("%s is not intact", path)
		return 0
	}
	lost := rowsOf(jan[1]) + rowsOf(jan[2])
	plant := func(src, dir string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "part-01767225600000000000-000099-planted.parquet"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plant(jan[0], filepath.Dir(jan[len(jan)-1]))
	plant(jan[0], filepath.Dir(dec[len(dec)-1])) // January's rows in a December partition
	for _, f := range []string{jan[1], stats[1]} {
		st, _ := os.Stat(f)
		if err := os.Truncate(f, st.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(jan[2])
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 2; i < len(b)/2+32; i++ {
		b[i] ^= 0xa5
	}
	if err := os.WriteFile(jan[2], b, 0o644); err != nil {
		t.Fatal(err)
	}

	rep, err := report.Build(context.Background(), report.Options{Archives: []string{root}, Month: month, Now: month.AddDate(0, 1, 1)})
	if err != nil {
		t.Fatalf("report over planted and damaged files: %v", err)
	}
	doc := matchDuckDB(t, rep)
	for _, q := range rep.Queries {
		if strings.Contains(q.SQL, "planted") || strings.Contains(q.SQL, "date=*") || !strings.Contains(q.SQL, "read_parquet(['"+root+"/") {
			t.Errorf("%s does not read the list of the counted files: %s", q.Name, q.SQL)
		}
	}
	if doc.TotalFlows != clean.TotalFlows-lost {
		t.Errorf("total_flows %d, want %d less the damaged files' %d", doc.TotalFlows, clean.TotalFlows, lost)
	}
	kinds := map[string]int{}
	for _, x := range doc.Excluded {
		kinds[x.Kind]++
		if x.Kind == "extra" && strings.Contains(x.Path, "2025-12") && !strings.HasPrefix(x.Reason, "previous month") {
			t.Errorf("the December file is not marked as the previous month's: %+v", x)
		}
	}
	if kinds["extra"] != 2 || kinds["truncated"] != 2 || kinds["modified"] != 1 || len(doc.Excluded) != 5 {
		t.Errorf("excluded %+v", doc.Excluded)
	}
}

// TestScopedReportMatchesDuckDB checks the --node and --namespace filters:
// the printed SQL carries the same scope.
func TestScopedReportMatchesDuckDB(t *testing.T) {
	root := t.TempDir()
	buildArchive(t, root)
	node := nodes[0]
	rep, err := report.Build(context.Background(), report.Options{Archives: []string{root}, Month: month, Nodes: []string{node}, Namespaces: []string{"db"}, Now: month.AddDate(0, 1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	sqlOf := map[string]string{}
	for _, q := range rep.Queries {
		sqlOf[q.Name] = q.SQL
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := query(t, db, sqlOf["total_flows"]); fmt.Sprint(got) != fmt.Sprint([][]any{{rep.TotalFlows}}) || rep.TotalFlows == 0 {
		t.Errorf("scoped total_flows: report %d, DuckDB %v", rep.TotalFlows, got)
	}
	if got := query(t, db, sqlOf["denied_new_pairs"]); fmt.Sprint(got) != fmt.Sprint([][]any{{int64(rep.DeniedNewPairs)}}) {
		t.Errorf("scoped denied_new_pairs: report %d, DuckDB %v", rep.DeniedNewPairs, got)
	}
	got := query(t, db, sqlOf["coverage"])
	if len(got) != 1 || len(rep.Coverage) != 1 || got[0][0] != rep.Coverage[0].Node || got[0][3] != rep.Coverage[0].FlowsSeen {
		t.Errorf("scoped coverage: report %+v, DuckDB %v", rep.Coverage, got)
	}
}

// TestPerNodeRootsMatchOneRoot splits an archive into one root per node, as
// the DaemonSet writes it (each node its own archive directory on a shared
// volume), and checks that the report over the roots, and every DuckDB query
// it prints (read_parquet over a list of globs), give the same numbers as the
// single archive.
func TestPerNodeRootsMatchOneRoot(t *testing.T) {
	one := t.TempDir()
	buildArchive(t, one)
	shared := t.TempDir()
	for _, node := range nodes {
		part := "node=" + archive.SanitizeNode(node)
		dst := filepath.Join(shared, strings.ReplaceAll(node, "/", "_"))
		for _, table := range []string{"flows", "stats", "losses"} {
			dates, err := filepath.Glob(filepath.Join(one, table, "date=*"))
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range dates {
				copyDir(t, filepath.Join(d, part), filepath.Join(dst, table, filepath.Base(d), part))
			}
			if err := os.MkdirAll(filepath.Join(dst, table), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		copyDir(t, filepath.Join(one, "manifests", part), filepath.Join(dst, "manifests", part))
	}
	roots, err := archive.ExpandRoots([]string{filepath.Join(shared, "*")})
	if err != nil || len(roots) != len(nodes) {
		t.Fatalf("ExpandRoots: %v %v", roots, err)
	}
	build := func(roots []string) (*report.Report, map[string]any) {
		t.Helper()
		rep, err := report.Build(context.Background(), report.Options{Archives: roots, Month: month, Now: month.AddDate(0, 1, 1)})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := report.RenderJSON(&buf, rep); err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		return rep, doc
	}
	repOne, docOne := build([]string{one})
	repMany, docMany := build(roots)
	if !repMany.Integrity.OK() || repMany.Integrity.Files != repOne.Integrity.Files || repMany.Integrity.Rows != repOne.Integrity.Rows {
		t.Errorf("integrity over the roots: %+v; one archive: %+v", repMany.Integrity, repOne.Integrity)
	}
	for _, k := range []string{"archive", "queries", "integrity"} {
		delete(docOne, k)
		delete(docMany, k)
	}
	a, _ := json.Marshal(docOne)
	b, _ := json.Marshal(docMany)
	if !bytes.Equal(a, b) {
		t.Errorf("the report over per-node roots differs from the report over one archive:\n%s\n%s", a, b)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if len(repOne.Queries) != len(repMany.Queries) {
		t.Fatalf("%d queries vs %d", len(repOne.Queries), len(repMany.Queries))
	}
	for i, q := range repMany.Queries {
		if !strings.Contains(q.SQL, "read_parquet([") {
			t.Errorf("%s: %s does not read the list of roots", q.Name, q.SQL)
		}
		got, want := query(t, db, q.SQL), query(t, db, repOne.Queries[i].SQL)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: over the roots %v, over one archive %v", q.Name, got, want)
		}
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}
