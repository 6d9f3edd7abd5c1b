package report

import (
	"fmt"
	"testing"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// benchRows makes a batch of rows with realistic cardinality: 40 source and
// 40 destination workloads, 6 ports, drops, HTTP errors and DNS failures.
func benchRows(n int) []flowRow {
	rows := make([]flowRow, n)
	verdicts := []string{"FORWARDED", "FORWARDED", "FORWARDED", "DROPPED", "AUDIT"}
	for i := range rows {
		r := &rows[i]
		r.Time = time.Date(2026, 1, 1+i%31, i%24, 0, 0, 0, time.UTC).UnixMicro()
		r.Verdict = ptr(verdicts[i%len(verdicts)])
		r.NodeName = ptr(fmt.Sprintf("c/node-%d", i%3))
		r.SourceNamespace = ptr(fmt.Sprintf("ns-%d", i%8))
		r.SourceWorkloads = []archive.Workload{{Name: fmt.Sprintf("app-%d", i%40), Kind: "Deployment"}}
		r.DestNamespace = ptr(fmt.Sprintf("ns-%d", (i/3)%8))
		r.DestPod = ptr(fmt.Sprintf("pod-%d", (i/7)%40))
		r.SourceIdentity, r.DestIdentity = ptr(uint32(10000+i%40)), ptr(uint32(20000+i%40))
		r.IPSource, r.IPDestination = ptr(fmt.Sprintf("10.0.0.%d", i%250)), ptr(fmt.Sprintf("10.1.0.%d", i%250))
		r.L4Protocol = ptr("TCP")
		r.L4DestPort = ptr([]uint32{443, 80, 22, 5432, 53, 8080}[i%6])
		if *r.Verdict == "DROPPED" {
			r.DropReasonDesc = ptr("POLICY_DENIED")
			r.EgressDeniedBy = []archive.Policy{{Name: "deny-all", Namespace: "default"}}
		}
		if i%11 == 0 {
			r.L7HTTPCode, r.L7HTTPMethod = ptr(uint32(500+i%4)), ptr("GET")
		}
		if i%13 == 0 {
			r.L7DNSRcode, r.L7DNSQuery = ptr(uint32(3)), ptr(fmt.Sprintf("svc-%d.example.", i%20))
		}
		if i%17 == 0 {
			r.DestIdentity = ptr(uint32(2))
			r.DestNamespace, r.DestPod = nil, nil
			r.DestinationNames = []string{fmt.Sprintf("api-%d.example.com", i%10)}
		}
	}
	return rows
}

// BenchmarkAggregate measures the per-flow aggregation alone (no Parquet
// decoding): rows/s and allocations per batch in steady state, with a zone,
// and with the sources approved for privileged paths as well (the counts of
// the privileged_sources finding).
func BenchmarkAggregate(b *testing.B) {
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		seoul = time.UTC
	}
	rows := benchRows(4096)
	for _, approved := range []*Selector{nil, {Namespaces: []string{"ns-2"}, Labels: []string{"k8s:app=bastion"}}} {
		name := "zones"
		if approved != nil {
			name = "zones+privileged_sources"
		}
		b.Run(name, func(b *testing.B) {
			a := newAggregator(newSymbols(), seoul, DefaultPrivilegedPorts, []Zone{{Name: "db", Namespaces: []string{"ns-3"}, InternalOnly: true, AllowedSources: Selector{Namespaces: []string{"ns-1"}}}})
			a.approved = approved
			a.add(rows) // every group exists: what follows is the steady state
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				a.add(rows)
			}
			b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkBuild measures the whole report over a small archive (Parquet
// scan, aggregation, stats, verification).
func BenchmarkBuild(b *testing.B) {
	root := smallArchive(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Build(b.Context(), Options{Archives: []string{root}, Month: jan, Now: jan}); err != nil {
			b.Fatal(err)
		}
	}
}
