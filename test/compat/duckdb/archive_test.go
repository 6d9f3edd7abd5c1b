// Package duckdb_test reads flowaudit's archive with DuckDB, an independent
// Parquet reader, and compares what it sees with what was written: row counts,
// per-column NULL counts (parquet-go NULL pitfall), types, and the report's
// numbers against the DuckDB SQL printed beside them.
package duckdb_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
	"github.com/flowaudit/flowaudit/pkg/ingest"
	"github.com/flowaudit/flowaudit/pkg/pipeline"
	"github.com/flowaudit/flowaudit/pkg/report"
)

func duck(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// writeEvents writes n generated events.log lines and returns the flows.
func writeEvents(t *testing.T, path string, n int, cfg gen.Config) []*flowpb.Flow {
	t.Helper()
	g, err := gen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	var flows []*flowpb.Flow
	for i := 0; i < n; i++ {
		ev := g.Next()
		if f := ev.GetFlow(); f != nil {
			flows = append(flows, f)
		}
		if buf, err = hubblejson.AppendEventLine(buf, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return flows
}

func importFile(t *testing.T, root, path string, spec pipeline.Spec) {
	t.Helper()
	c, err := pipeline.Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	w, err := archive.Open(archive.Config{Root: root, MaxFileRows: 7000, CollectorVersion: "test", ConfigHash: c.Hash}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	src, err := ingest.NewImportSource(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.New(pipeline.Config{Status: "imported"}, src, c, w, nil, nil).Run(context.Background(), w.Checkpoints()[src.ID()]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDuckDBReadsArchive(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	flows := writeEvents(t, events, 20000, gen.Config{Seed: 11, Nodes: 3, Rate: 50})
	root := filepath.Join(dir, "archive")
	importFile(t, root, events, pipeline.Spec{})
	// Importing the same file again adds nothing.
	importFile(t, root, events, pipeline.Spec{})

	db := duck(t)
	flowsGlob := fmt.Sprintf("read_parquet('%s/flows/**/*.parquet', hive_partitioning=true)", root)
	var rows int
	if err := db.QueryRow("SELECT count(*) FROM " + flowsGlob).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != len(flows) {
		t.Fatalf("DuckDB counts %d rows, %d flows were written", rows, len(flows))
	}
	// Non-NULL counts per column equal the flows that have the field.
	count := func(pred func(*flowpb.Flow) bool) int {
		n := 0
		for _, f := range flows {
			if pred(f) {
				n++
			}
		}
		return n
	}
	for col, want := range map[string]int{
		"uuid":                 count(func(f *flowpb.Flow) bool { return f.GetUuid() != "" }),
		"drop_reason_desc":     count(func(f *flowpb.Flow) bool { return f.GetDropReasonDesc() != 0 }),
		"is_reply":             count(func(f *flowpb.Flow) bool { return f.GetIsReply() != nil }),
		"l7_http_code":         count(func(f *flowpb.Flow) bool { return f.GetL7().GetHttp().GetCode() != 0 }),
		"l7_http_url":          count(func(f *flowpb.Flow) bool { return f.GetL7().GetHttp().GetUrl() != "" }),
		"l7_dns_query":         count(func(f *flowpb.Flow) bool { return f.GetL7().GetDns().GetQuery() != "" }),
		"source_namespace":     count(func(f *flowpb.Flow) bool { return f.GetSource().GetNamespace() != "" }),
		"destination_pod_name": count(func(f *flowpb.Flow) bool { return f.GetDestination().GetPodName() != "" }),
		"source_labels":        count(func(f *flowpb.Flow) bool { return len(f.GetSource().GetLabels()) > 0 }),
		"destination_names":    count(func(f *flowpb.Flow) bool { return len(f.GetDestinationNames()) > 0 }),
		"ingress_denied_by":    count(func(f *flowpb.Flow) bool { return len(f.GetIngressDeniedBy()) > 0 }),
		"l4_source_port": count(func(f *flowpb.Flow) bool {
			return f.GetL4().GetTCP().GetSourcePort() != 0 || f.GetL4().GetUDP().GetSourcePort() != 0
		}),
		"l4_icmp_type":                  count(func(f *flowpb.Flow) bool { return f.GetL4().GetICMPv4() != nil || f.GetL4().GetICMPv6() != nil }),
		"ip_source_xlated":              count(func(f *flowpb.Flow) bool { return f.GetIP().GetSourceXlated() != "" }),
		"trace_context_parent_trace_id": count(func(f *flowpb.Flow) bool { return f.GetTraceContext().GetParent().GetTraceId() != "" }),
		"reply":                         count(func(f *flowpb.Flow) bool { return f.GetReply() }),
		"policy_match_type":             count(func(f *flowpb.Flow) bool { return f.GetPolicyMatchType() != 0 }),
	} {
		var got int
		if err := db.QueryRow(fmt.Sprintf("SELECT count(%s) FROM %s", col, flowsGlob)).Scan(&got); err != nil {
			t.Fatalf("%s: %v", col, err)
		}
		if got != want {
			t.Errorf("column %s: DuckDB sees %d non-NULL values, %d flows have the field", col, got, want)
		}
		if want == 0 || want == len(flows) {
			t.Logf("column %s: %d of %d (weak check)", col, want, len(flows))
		}
	}
	// Types as documented.
	for col, want := range map[string]string{"time": "TIMESTAMP WITH TIME ZONE", "source_labels": "VARCHAR[]", "l4_destination_port": "UINTEGER", "is_reply": "BOOLEAN"} {
		var got string
		if err := db.QueryRow(fmt.Sprintf("SELECT typeof(%s) FROM %s LIMIT 1", col, flowsGlob)).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("column %s has type %s, want %s", col, got, want)
		}
	}
	// Filtered counts: DuckDB prunes row groups by the column chunks'
	// min/max statistics, so wrong statistics (an unsigned column compared
	// as signed, a string bound cut) would show as missing rows here.
	mid := flows[len(flows)/2]
	port := func(f *flowpb.Flow) uint32 {
		if p := f.GetL4().GetTCP().GetDestinationPort(); p != 0 {
			return p
		}
		return f.GetL4().GetUDP().GetDestinationPort()
	}
	midT := mid.GetTime().AsTime().UnixMicro()
	for where, want := range map[string]int{
		"l4_destination_port = 443":   count(func(f *flowpb.Flow) bool { return port(f) == 443 }),
		"l4_destination_port > 30000": count(func(f *flowpb.Flow) bool { return port(f) > 30000 }),
		fmt.Sprintf("source_identity > %d", mid.GetSource().GetIdentity()): count(func(f *flowpb.Flow) bool {
			return f.GetSource().GetIdentity() > mid.GetSource().GetIdentity()
		}),
		"verdict = 'DROPPED'": count(func(f *flowpb.Flow) bool { return f.GetVerdict() == flowpb.Verdict_DROPPED }),
		"source_namespace = '" + mid.GetSource().GetNamespace() + "'": count(func(f *flowpb.Flow) bool {
			return f.GetSource().GetNamespace() != "" && f.GetSource().GetNamespace() == mid.GetSource().GetNamespace()
		}),
		"uuid > '" + mid.GetUuid() + "'":          count(func(f *flowpb.Flow) bool { return f.GetUuid() > mid.GetUuid() }),
		fmt.Sprintf("epoch_us(time) >= %d", midT): count(func(f *flowpb.Flow) bool { return f.GetTime().AsTime().UnixMicro() >= midT }),
	} {
		var got int
		if err := db.QueryRow("SELECT count(*) FROM " + flowsGlob + " WHERE " + where).Scan(&got); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if got != want {
			t.Errorf("WHERE %s: DuckDB counts %d rows, %d flows match", where, got, want)
		}
		if want == 0 || want == len(flows) {
			t.Logf("WHERE %s: %d of %d (weak check)", where, want, len(flows))
		}
	}
	// Sample values: every uuid written is there exactly once.
	var distinct int
	if err := db.QueryRow("SELECT count(DISTINCT uuid) FROM " + flowsGlob).Scan(&distinct); err != nil {
		t.Fatal(err)
	}
	if distinct != len(flows) {
		t.Errorf("%d distinct uuids, %d flows", distinct, len(flows))
	}
	// The report's numbers equal the DuckDB SQL it prints.
	rep, err := report.Build(context.Background(), report.Options{Archives: []string{root}, Month: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, db, rep)
	if !rep.Integrity.OK() {
		t.Errorf("verify findings on a fresh archive: %+v", rep.Integrity.Findings)
	}
}

// checkReport runs every query the report prints and compares the numbers.
func checkReport(t *testing.T, db *sql.DB, rep *report.Report) {
	t.Helper()
	for _, q := range rep.Queries {
		rows, err := db.Query(q.SQL)
		if err != nil {
			t.Fatalf("%s: %v\n%s", q.Name, err, q.SQL)
		}
		switch q.Name {
		case "total_flows":
			rows.Next()
			var n int64
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != rep.TotalFlows {
				t.Errorf("total flows: report %d, DuckDB %d", rep.TotalFlows, n)
			}
		case "denied_total":
			rows.Next()
			var n int64
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != rep.DeniedTotal {
				t.Errorf("denied: report %d, DuckDB %d", rep.DeniedTotal, n)
			}
		case "verdicts":
			got := map[string]int64{}
			for rows.Next() {
				var k string
				var n int64
				if err := rows.Scan(&k, &n); err != nil {
					t.Fatal(err)
				}
				got[k] = n
			}
			if len(got) != len(rep.Verdicts) {
				t.Errorf("verdicts: report %v, DuckDB %v", rep.Verdicts, got)
			}
			for _, v := range rep.Verdicts {
				if got[v.Key] != v.Count {
					t.Errorf("verdict %s: report %d, DuckDB %d", v.Key, v.Count, got[v.Key])
				}
			}
		case "coverage_flows_seen":
			got := map[string][3]int64{}
			for rows.Next() {
				var node string
				var seen, kept, lost int64
				if err := rows.Scan(&node, &seen, &kept, &lost); err != nil {
					t.Fatal(err)
				}
				got[node] = [3]int64{seen, kept, lost}
			}
			for _, c := range rep.Coverage {
				if g := got[c.Node]; g != [3]int64{c.FlowsSeen, c.FlowsKept, c.LostEvents} {
					t.Errorf("coverage %s: report %d/%d/%d, DuckDB %v", c.Node, c.FlowsSeen, c.FlowsKept, c.LostEvents, g)
				}
			}
		}
		rows.Close()
	}
}

// moduleRoot is the main module's directory (two levels above this package).
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// TestDemoReportEqualsDuckDB runs the real binary's demo, then its JSON
// report, and compares the verdict totals with DuckDB on the demo's archive.
func TestDemoReportEqualsDuckDB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "flowaudit")
	build := exec.Command("go", "build", "-o", bin, "./cmd/flowaudit")
	build.Dir = moduleRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	work := filepath.Join(dir, "demo")
	if out, err := exec.Command(bin, "demo", "--dir", work, "--days", "10").CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "read_parquet(") {
		t.Fatalf("demo did not print a DuckDB query:\n%s", out)
	}
	var stdout bytes.Buffer
	cmd := exec.Command(bin, "report", "--month", "2026-01", "--archive", filepath.Join(work, "archive"), "--format", "json")
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.TotalFlows == 0 {
		t.Fatal("empty demo archive")
	}
	db := duck(t)
	rows, err := db.Query(fmt.Sprintf("SELECT verdict, count(*) FROM read_parquet('%s/archive/flows/**/*.parquet', hive_partitioning=true) GROUP BY verdict", work))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int64{}
	for rows.Next() {
		var v string
		var n int64
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		got[v] = n
	}
	for _, v := range rep.Verdicts {
		if got[v.Key] != v.Count {
			t.Errorf("verdict %s: report %d, DuckDB %d", v.Key, v.Count, got[v.Key])
		}
	}
	if len(got) != len(rep.Verdicts) {
		t.Errorf("report verdicts %v, DuckDB %v", rep.Verdicts, got)
	}
	checkReport(t, db, &rep)
}

// TestRowLogSameQueryResults: the same events archived with every commit a
// file (import) and through the daemon's row log (files cut by size, the
// writer aborted with rows only in the log, which the next writer replays)
// give DuckDB the same rows, value for value, and the same stats sums.
func TestRowLogSameQueryResults(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	writeEvents(t, events, 20000, gen.Config{Seed: 12, Nodes: 2, Rate: 50})
	files, logged := filepath.Join(dir, "files"), filepath.Join(dir, "log")
	importFile(t, files, events, pipeline.Spec{})

	c, err := pipeline.Compile(pipeline.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := archive.Config{Root: logged, Log: true, MaxFileRows: 7000, CollectorVersion: "test", ConfigHash: c.Hash}
	w, err := archive.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	src, err := ingest.NewImportSource(events, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pipeline.New(pipeline.Config{Status: "imported"}, src, c, w, nil, nil).Run(context.Background(), w.Checkpoints()[src.ID()]); err != nil {
		t.Fatal(err)
	}
	// Abort keeps the log: its records are commits, replayed below.
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if w, err = archive.Open(cfg, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	db := duck(t)
	query := func(root, q string) []string {
		t.Helper()
		rows, err := db.Query(fmt.Sprintf(q, root))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, q := range []string{
		"SELECT CAST(to_json(f) AS VARCHAR) AS j FROM read_parquet('%s/flows/**/*.parquet', hive_partitioning=true) f ORDER BY j",
		"SELECT CAST(to_json(s) AS VARCHAR) AS j FROM (SELECT node, minute, sum(flows_seen) AS seen, sum(flows_kept) AS kept, sum(decode_errors) AS errors, sum(non_flow_events) AS non_flow, sum(lost_events) AS lost FROM read_parquet('%s/stats/**/*.parquet', hive_partitioning=true) GROUP BY ALL) s ORDER BY j",
	} {
		a, b := query(files, q), query(logged, q)
		if len(a) == 0 || len(a) != len(b) {
			t.Fatalf("%s: %d rows from the files, %d through the row log", q, len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: row %d differs:\nfiles %s\nlog   %s", q, i, a[i], b[i])
			}
		}
	}
	rep, err := archive.Verify(logged, time.Time{}, time.Time{}, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep.Findings)
	}
}
