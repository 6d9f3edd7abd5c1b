package report

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	hostileScript  = "<script>alert(1)</script>"
	hostileFormula = "=HYPERLINK(\"http://evil\",\"x\")"
	hostilePipe    = "a|b\nc`d"
)

var jan = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// smallArchive writes a handful of flows whose workload names, DNS names and
// HTTP URLs are hostile, on two nodes, with node-2 down on Jan 2.
func smallArchive(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &flow.Batch{}
	names := []string{hostileScript, hostileFormula, hostilePipe, "api"}
	i := 0
	for m := jan.Add(-time.Hour); m.Before(jan.AddDate(0, 0, 3)); m = m.Add(10 * time.Minute) {
		for n, node := range []string{"c/node-1", "c/node-2"} {
			if n == 1 && m.Day() == 2 && m.Month() == time.January {
				continue
			}
			i++
			f := b.Next()
			f.Reset()
			f.Uuid = strconv.Itoa(i)
			f.Time = timestamppb.New(m)
			f.NodeName = node
			f.Verdict = flowpb.Verdict_FORWARDED
			if i%5 == 0 {
				f.Verdict = flowpb.Verdict_DROPPED
				f.DropReasonDesc = flowpb.DropReason_POLICY_DENIED
				f.EgressDeniedBy = []*flowpb.Policy{{Name: "deny-" + names[i%4], Namespace: "shop"}}
			}
			f.Source = &flowpb.Endpoint{Identity: 1000, Namespace: "shop", PodName: "p", Workloads: []*flowpb.Workload{{Name: names[i%4], Kind: "Deployment"}}}
			f.Destination = &flowpb.Endpoint{Identity: 2}
			f.DestinationNames = []string{names[(i+1)%4] + ".example"}
			f.IP = &flowpb.IP{Source: "10.0.0.1", Destination: "1.2.3.4", IpVersion: flowpb.IPVersion_IPv4}
			f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 40000, DestinationPort: []uint32{443, 22, 5432}[i%3]}}}
			switch i % 4 {
			case 1:
				f.L7 = &flowpb.Layer7{Type: flowpb.L7FlowType_RESPONSE, Record: &flowpb.Layer7_Http{Http: &flowpb.HTTP{Code: 503, Method: "GET", Url: "http://x/" + names[i%4]}}}
			case 2:
				f.L7 = &flowpb.Layer7{Type: flowpb.L7FlowType_RESPONSE, Record: &flowpb.Layer7_Dns{Dns: &flowpb.DNS{Query: names[i%4] + ".", Rcode: 3}}}
			}
			b.AddStat(node, m.Unix()/60*60, flow.Counts{Seen: 1, Kept: 1})
			// The daemon's heartbeat: a row for every minute it runs.
			for k := 1; k < 10; k++ {
				b.AddStat(node, m.Unix()/60*60+int64(k*60), flow.Counts{})
			}
		}
	}
	b.Checkpoint = flow.Checkpoint{Source: "test", Position: strconv.Itoa(i)}
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return root
}

func buildSmall(t *testing.T) (*Report, string) {
	t.Helper()
	root := smallArchive(t)
	zones, err := ParseZones([]byte("zones:\n  - name: shop\n    namespaces: [shop]\n    internal_only: true\n  - name: \"<b>pci|zone</b>\"\n    labels: [\"k8s:zone=pci\"]\n    allowed_sources: {namespaces: [shop]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Build(context.Background(), Options{Archives: []string{root}, Month: jan, Now: jan.AddDate(0, 1, 0), Zones: zones})
	if err != nil {
		t.Fatal(err)
	}
	return rep, root
}

// normalise replaces what differs between runs (the temporary archive path,
// the chain heads that hash commit times) so golden files are stable.
func normalise(rep *Report, root string) {
	rep.Archive = "ARCHIVE"
	for i := range rep.Queries {
		rep.Queries[i].SQL = strings.ReplaceAll(rep.Queries[i].SQL, root, "ARCHIVE")
	}
	if rep.Integrity != nil {
		for k := range rep.Integrity.ChainHeads {
			rep.Integrity.ChainHeads[k] = "HEAD"
		}
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update and review the diff)\n%s", name, got)
	}
}

func TestRenderGoldenAndHostileValues(t *testing.T) {
	rep, root := buildSmall(t)
	normalise(rep, root)
	if len(rep.Zones) != 2 || rep.Zones[0].AssertionHolds || rep.Zones[0].WorldEgress != rep.TotalFlows || !rep.Zones[1].AssertionHolds {
		t.Errorf("zones %+v: shop is internal-only and every flow goes to world", rep.Zones)
	}
	if rep.TotalFlows == 0 || rep.DeniedTotal == 0 || len(rep.HTTPErrors) == 0 || len(rep.DNSFailures) == 0 || len(rep.Privileged) == 0 {
		t.Fatalf("small archive does not exercise every section: %+v", rep)
	}
	for _, lang := range []string{"en", "ko"} {
		var md, html bytes.Buffer
		if err := RenderMarkdown(&md, rep, lang); err != nil {
			t.Fatal(err)
		}
		if err := RenderHTML(&html, rep, lang); err != nil {
			t.Fatal(err)
		}
		golden(t, "report."+lang+".md", md.Bytes())
		golden(t, "report."+lang+".html", html.Bytes())

		h := html.String()
		if strings.Contains(h, "<script>") || !strings.Contains(h, "&lt;script&gt;") {
			t.Errorf("%s HTML: <script> not escaped", lang)
		}
		m := md.String()
		if strings.Contains(m, "<script>") || strings.Contains(m, "a|b") || strings.Contains(m, "c`d") {
			t.Errorf("%s Markdown: hostile value not escaped", lang)
		}
		// Every table row keeps its column count: no value broke a table.
		cols := 0
		for _, line := range strings.Split(m, "\n") {
			if !strings.HasPrefix(line, "|") {
				cols = 0
				continue
			}
			n := strings.Count(strings.ReplaceAll(line, `\|`, ""), "|")
			if cols == 0 {
				cols = n
			} else if n != cols {
				t.Errorf("%s Markdown: row %q has %d pipes, table has %d", lang, line, n, cols)
			}
		}
		if lang == "ko" && !strings.Contains(m, "수집 커버리지") {
			t.Errorf("Korean labels missing")
		}
	}

	dir := t.TempDir()
	if err := RenderCSV(dir, rep); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
	if len(files) < 9 {
		t.Errorf("%d CSV files, want one per table", len(files))
	}
	sawFormula := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "csv."+filepath.Base(f), b)
		for _, line := range strings.Split(string(b), "\n") {
			for _, cell := range strings.Split(line, ",") {
				cell = strings.TrimPrefix(cell, `"`)
				if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
					t.Errorf("%s: cell %q starts with a formula prefix", filepath.Base(f), cell)
				}
				if strings.HasPrefix(cell, "'=HYPERLINK") {
					sawFormula = true
				}
			}
		}
	}
	if !sawFormula {
		t.Errorf("hostile =HYPERLINK value missing from the CSV tables")
	}

	var js bytes.Buffer
	if err := RenderJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.TotalFlows != rep.TotalFlows || !strings.Contains(js.String(), `\u003cscript\u003e`) {
		t.Errorf("JSON round trip lost data or left <script> unescaped")
	}
}

func TestCoverageAndBounds(t *testing.T) {
	rep, _ := buildSmall(t)
	// Flows of Dec 31 23:00-24:00 are outside January.
	var want int64
	for _, d := range rep.Daily {
		want += d.Total
	}
	if want != rep.TotalFlows || len(rep.Daily) != 3 || rep.Daily[0].Day != "2026-01-01" {
		t.Errorf("daily %+v does not add up to %d", rep.Daily, rep.TotalFlows)
	}
	if rep.TotalFlows != 3*24*6*2-24*6 {
		t.Errorf("total %d, want %d", rep.TotalFlows, 3*24*6*2-24*6)
	}
	if len(rep.Coverage) != 2 {
		t.Fatalf("coverage %+v", rep.Coverage)
	}
	c := rep.Coverage[1]
	if c.Node != "c/node-2" || c.Hours != 31*24 || c.Collected != 48 || c.Down != 31*24-48 {
		t.Errorf("node-2 coverage %+v", c)
	}
	if len(c.Gaps) != 2 || !c.Gaps[0].From.Equal(jan.AddDate(0, 0, 1)) || !c.Gaps[0].To.Equal(jan.AddDate(0, 0, 2)) {
		t.Errorf("node-2 gaps %+v, want Jan 2 and Jan 4 onwards", c.Gaps)
	}
}

func TestParseMonthAndBounds(t *testing.T) {
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	m, err := ParseMonth("2026-01", seoul, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	from, to := Bounds(m, seoul)
	if !from.Equal(time.Date(2025, 12, 31, 15, 0, 0, 0, time.UTC)) || !to.Equal(time.Date(2026, 1, 31, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("Seoul January = [%v, %v)", from, to)
	}
	// 2026-03-01 01:00 in Seoul is still February 28 in UTC: previous is February.
	m, err = ParseMonth("previous", seoul, time.Date(2026, 2, 28, 16, 0, 0, 0, time.UTC))
	if err != nil || m.Month() != time.February {
		t.Errorf("previous = %v, %v; want February", m, err)
	}
	if _, err := ParseMonth("2026-13", time.UTC, time.Time{}); err == nil {
		t.Errorf("month 13 accepted")
	}
}

// TestParseMonthRefusesMonthsTheArchiveCannotHold: the archive's times are
// int64 nanoseconds (1677-09-21 to 2262-04-11): a month reaching out of
// them is refused with a clear error (9999-12 failed in JSON encoding,
// 0001-01 wrapped around), in any time zone; the first and last whole
// months are accepted.
func TestParseMonthRefusesMonthsTheArchiveCannotHold(t *testing.T) {
	east := time.FixedZone("UTC+14", 14*3600)
	west := time.FixedZone("UTC-12", -12*3600)
	for _, tc := range []struct {
		month string
		loc   *time.Location
		ok    bool
	}{
		{"9999-12", time.UTC, false}, {"0001-01", time.UTC, false}, {"1677-09", time.UTC, false}, {"2262-04", time.UTC, false},
		{"1677-10", time.UTC, true}, {"2262-03", time.UTC, true}, {"1677-10", east, true}, {"2262-03", west, true},
		{"1677-10", west, true}, {"2262-03", east, true},
	} {
		_, err := ParseMonth(tc.month, tc.loc, time.Time{})
		if tc.ok && err != nil {
			t.Errorf("%s in %s: %v", tc.month, tc.loc, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "outside the times the archive stores")) {
			t.Errorf("%s in %s: error %v, want one saying the archive cannot hold it", tc.month, tc.loc, err)
		}
	}
}

func TestParseZones(t *testing.T) {
	z, err := ParseZones([]byte("zones:\n- name: db\n  namespaces: [db]\n  labels: [\"k8s:tier=db\"]\n  internal_only: true\n  allowed_sources:\n    namespaces: [api]\n"))
	if err != nil || len(z) != 1 || !z[0].InternalOnly || z[0].AllowedSources.Namespaces[0] != "api" {
		t.Fatalf("ParseZones = %+v, %v", z, err)
	}
	ns := "db"
	if !z[0].members().match(&ns, nil) || !z[0].members().match(nil, []string{"k8s:tier=db", "x"}) || z[0].members().match(nil, []string{"x"}) {
		t.Errorf("membership wrong")
	}
	for _, bad := range []string{"", "zones: []", "zones:\n- name: a\n", "zones:\n- namespaces: [a]\n",
		"zones:\n- name: a\n  namespaces: [a]\n- name: a\n  namespaces: [b]\n", "zones:\n- name: a\n  namespaces: [a]\n  typo: 1\n",
		"zones:\n- name: a\n  namespaces: [\"\"]\n"} {
		if _, err := ParseZones([]byte(bad)); err == nil {
			t.Errorf("ParseZones(%q) accepted", bad)
		}
	}
}

func FuzzParseZones(f *testing.F) {
	f.Add([]byte("zones:\n- name: db\n  namespaces: [db]\n  internal_only: true\n"))
	f.Add([]byte("zones:\n- name: x\n  labels: [a, b]\n  allowed_sources: {labels: [c]}\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		zs, err := ParseZones(b)
		if err != nil {
			return
		}
		for _, z := range zs {
			if z.Name == "" || len(z.Namespaces)+len(z.Labels) == 0 {
				t.Fatalf("invalid zone accepted: %+v", z)
			}
			_ = selectorSQL(z.members(), "source")
		}
	})
}

func TestParsePorts(t *testing.T) {
	got, err := ParsePorts("22, 3389\n# databases\n5432 22\n")
	if err != nil || len(got) != 3 || got[2] != 5432 {
		t.Errorf("ParsePorts = %v, %v", got, err)
	}
	for _, bad := range []string{"", "# only a comment", "0", "65536", "ssh"} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("ParsePorts(%q) accepted", bad)
		}
	}
}

func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"22,3389", "22\n# x\n5432", "", "65535", "-1", "1,,2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePorts(s)
		if err != nil {
			return
		}
		if len(ps) == 0 {
			t.Fatal("empty list without error")
		}
		for _, p := range ps {
			if p == 0 || p > 65535 {
				t.Fatalf("port %d", p)
			}
		}
	})
}

func TestMarkdownAndCSVCells(t *testing.T) {
	if got := mdCell("a|b\nc`d<x>"); strings.ContainsAny(strings.ReplaceAll(got, `\|`, ""), "|\n<>") || strings.Contains(got, "c`") {
		t.Errorf("mdCell = %q", got)
	}
	for _, s := range []string{"=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"} {
		if got := csvCell(s); got[0] != '\'' {
			t.Errorf("csvCell(%q) = %q", s, got)
		}
	}
	if csvCell("ok") != "ok" {
		t.Errorf("csvCell changed a harmless value")
	}
}

// TestRankingKeepsTheFirstN: a ranking of n is the first n of a full sort,
// ties on the count included.
func TestRankingKeepsTheFirstN(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	var all []Pair
	for i := 0; i < 5000; i++ {
		all = append(all, Pair{Source: strconv.Itoa(r.IntN(50)), Destination: strconv.Itoa(r.IntN(50)), Count: int64(r.IntN(30))})
	}
	cmpPair := func(x, y Pair) int {
		if x.Count != y.Count {
			return cmp.Compare(y.Count, x.Count)
		}
		return strings.Compare(x.sortKey(), y.sortKey())
	}
	want := slices.Clone(all)
	slices.SortStableFunc(want, cmpPair)
	for _, n := range []int{-1, 1, 20, 4999, 5000, 6000} {
		rk := ranking[Pair]{n: n, cmp: cmpPair}
		for _, p := range all {
			if rk.mayTake(p.Count) {
				rk.add(p)
			}
		}
		got, w := rk.sorted(), want
		if n > 0 && n < len(w) {
			w = w[:n]
		}
		if !slices.EqualFunc(got, w, func(x, y Pair) bool { return cmpPair(x, y) == 0 }) {
			t.Fatalf("n=%d: %d items, want %d (first differences: %v vs %v)", n, len(got), len(w), got[:min(3, len(got))], w[:min(3, len(w))])
		}
	}
}

// TestMarkdownEscapesInvisibleCharacters: NUL, ESC, DEL, C1 controls and
// bidirectional overrides in a value are shown as \uXXXX, never written as
// they are; other text, Korean included, is kept.
func TestMarkdownEscapesInvisibleCharacters(t *testing.T) {
	got := mdCell("pod\x00a\x1b[31mb\x7fc\u0085d\u202eevil\u2066x\tend 수집")
	for _, r := range got {
		if invisible(r) {
			t.Fatalf("mdCell left %U in %q", r, got)
		}
	}
	for _, want := range []string{`\u0000`, `\u001B`, `\u007F`, `\u0085`, `\u202E`, `\u2066`, `\u0009`, "수집"} {
		if !strings.Contains(got, want) {
			t.Errorf("mdCell = %q, want %s in it", got, want)
		}
	}
}

// TestWorldEgressNamesSomething: a flow to the world whose first DNS name
// is empty is named by its IP, and one with neither by "unknown", never by
// nothing; an endpoint's empty first name falls through to the next rule,
// as in endpointSQL.
func TestWorldEgressNamesSomething(t *testing.T) {
	sym := newSymbols()
	a := newAggregator(sym, time.UTC, nil, nil)
	src := &flowRow{Time: jan.UnixMicro(), SourceIdentity: ptr(uint32(10210)), DestIdentity: ptr(uint32(2))}
	withIP := *src
	withIP.DestinationNames, withIP.IPDestination = []string{""}, ptr("203.0.113.9")
	a.add([]flowRow{*src, withIP})
	rep := &Report{}
	a.finish(rep, 10)
	keys := map[string]int64{}
	for _, c := range rep.WorldEgress {
		keys[c.Key] = c.Count
	}
	if keys["identity:10210 -> unknown"] != 1 || keys["identity:10210 -> 203.0.113.9"] != 1 || len(keys) != 2 {
		t.Errorf("world egress keys %v", keys)
	}
	if got := endpointKey(nil, nil, nil, ptr(uint32(2)), []string{""}, ptr("203.0.113.9")).String(); got != "world:203.0.113.9" {
		t.Errorf("endpoint with an empty first name: %q, want world:203.0.113.9", got)
	}
}
