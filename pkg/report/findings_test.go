package report

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
)

// checkZones is the zones file of the findings tests: db is internal-only
// and open to payments; ops may use privileged paths.
const checkZones = `zones:
  - name: db
    namespaces: [db]
    internal_only: true
    allowed_sources: {namespaces: [payments]}
privileged_sources:
  namespaces: [ops]
`

type ep struct{ ns, app string }

// checkArchive writes Jan 1, 00:00-02:00, of node c/n1: a stats row every
// minute, and flows that keep every check holding, or, with bad, violate
// each: an unauthorised source reaching the db zone, an unapproved source
// on SSH, the db zone talking to the internet, decode errors with no loss
// record, and a second collector configuration from 01:00. A stopped
// unauthorised attempt and a loss with its record are there in both.
func checkArchive(t *testing.T, bad bool, key ed25519.PrivateKey) string {
	t.Helper()
	root := t.TempDir()
	start := jan
	write := func(from, to time.Time, hash string) {
		w, err := archive.Open(archive.Config{Root: root, CollectorVersion: "v1", ConfigHash: hash, SigningKey: key}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := &flow.Batch{}
		i := 0
		add := func(m time.Time, src, dst ep, port uint32, verdict flowpb.Verdict, world bool) {
			i++
			f := b.Next()
			f.Reset()
			f.Uuid = hash + strconv.Itoa(i)
			f.Time = timestamppb.New(m.Add(time.Duration(i%50) * time.Second))
			f.NodeName = "c/n1"
			f.Verdict = verdict
			f.Source = &flowpb.Endpoint{Identity: 1000, Namespace: src.ns, PodName: src.app + "-0", Workloads: []*flowpb.Workload{{Name: src.app, Kind: "Deployment"}}}
			f.Destination = &flowpb.Endpoint{Identity: 1001, Namespace: dst.ns, PodName: dst.app + "-0", Workloads: []*flowpb.Workload{{Name: dst.app, Kind: "Deployment"}}}
			f.IP = &flowpb.IP{Source: "10.0.0.1", Destination: "10.0.0.2", IpVersion: flowpb.IPVersion_IPv4}
			if world {
				f.Destination = &flowpb.Endpoint{Identity: 2}
				f.IP.Destination = "1.2.3.4"
			}
			f.L4 = &flowpb.Layer4{Protocol: &flowpb.Layer4_TCP{TCP: &flowpb.TCP{SourcePort: 40000, DestinationPort: port}}}
		}
		for m := from; m.Before(to); m = m.Add(time.Minute) {
			c := flow.Counts{Seen: 1, Kept: 1}
			add(m, ep{"payments", "api"}, ep{"db", "postgres"}, 5433, flowpb.Verdict_FORWARDED, false)
			if m.Minute() == 5 {
				add(m, ep{"frontend", "web"}, ep{"db", "postgres"}, 5433, flowpb.Verdict_DROPPED, false)
				add(m, ep{"ops", "bastion"}, ep{"web", "app"}, 22, flowpb.Verdict_FORWARDED, false)
				add(m, ep{"default", "curl"}, ep{"web", "app"}, 22, flowpb.Verdict_DROPPED, false)
				c.Seen += 3
				c.Kept += 3
			}
			if bad && m.Minute() == 7 {
				add(m, ep{"frontend", "web"}, ep{"db", "postgres"}, 5433, flowpb.Verdict_FORWARDED, false)
				add(m, ep{"default", "curl"}, ep{"web", "app"}, 22, flowpb.Verdict_FORWARDED, false)
				add(m, ep{"db", "postgres"}, ep{}, 443, flowpb.Verdict_FORWARDED, true)
				c.Seen += 3
				c.Kept += 3
			}
			if bad && m.Minute() == 10 {
				c.DecodeErrors = 2
			}
			b.AddStat("c/n1", m.Unix(), c)
			if m.Minute() == 20 {
				b.Losses = append(b.Losses, flow.Loss{Node: "c/n1", Time: m, Reason: flow.LossHubbleLostEvents, Detail: "PERF_EVENT_RING_BUFFER", Events: 4})
			}
		}
		b.Checkpoint = flow.Checkpoint{Source: "test", Position: hash + strconv.Itoa(i)}
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if bad {
		write(start, start.Add(time.Hour), "hash-a")
		write(start.Add(time.Hour), start.Add(2*time.Hour), "hash-b")
	} else {
		write(start, start.Add(2*time.Hour), "hash-a")
	}
	return root
}

// buildAt builds the report at o.Now.
func buildAt(t *testing.T, o Options) *Report {
	t.Helper()
	rep, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func findingOf(t *testing.T, rep *Report, check string) Finding {
	t.Helper()
	for _, f := range rep.Findings {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no finding %s in %+v", check, rep.Findings)
	return Finding{}
}

func checkOptions(t *testing.T, root string) Options {
	t.Helper()
	zf, err := ParseZonesFile([]byte(checkZones))
	if err != nil {
		t.Fatal(err)
	}
	return Options{Archives: []string{root}, Month: jan, Now: jan.Add(2 * time.Hour), Zones: zf.Zones, PrivilegedSources: zf.PrivilegedSources,
		CoverageTarget: 98, RetentionMin: Retention{Days: 1}}
}

// TestFindingsHoldAndAreViolated: every check holds over a month that
// keeps it, and is violated, with the number behind it, over one that does
// not.
func TestFindingsHoldAndAreViolated(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	good := checkArchive(t, false, priv)
	o := checkOptions(t, good)
	o.PublicKey = pub
	o.Now = jan.Add(3 * 24 * time.Hour) // 2 h of 72 collected: below 99%
	low := buildAt(t, o)
	o.Now = jan.Add(2 * time.Hour)
	rep := buildAt(t, o)
	if len(rep.Findings) != len(Checks) {
		t.Fatalf("%d findings, want one per check (%d)", len(rep.Findings), len(Checks))
	}
	for i, f := range rep.Findings {
		if f.Check != Checks[i] {
			t.Errorf("finding %d is %s, want %s", i, f.Check, Checks[i])
		}
		if f.Status != Holds {
			t.Errorf("%s: %s (%s), want holds", f.Check, f.Status, f.Reason)
		}
		if f.Value == nil || len(f.Controls) == 0 || SectionNumber(f.Section) == 0 || f.Reason == "" || f.ReasonIn("ko") == f.Reason {
			t.Errorf("%s: value %v, controls %v, section %q, reason %q / %q", f.Check, f.Value, f.Controls, f.Section, f.Reason, f.ReasonIn("ko"))
		}
	}
	// The minute of each hour's recorded loss is lost: 118 of 120 collected.
	if f := findingOf(t, rep, CheckCoverage); *f.Value != 98.33 {
		t.Errorf("coverage %v, want 98.33", *f.Value)
	}
	if f := findingOf(t, low, CheckCoverage); f.Status != Violated || *f.Value >= 98 || !strings.Contains(f.Reason, "c/n1") {
		t.Errorf("coverage over 3 days with 2 h collected: %+v", f)
	}
	if f := findingOf(t, low, CheckGapsExplained); f.Status != Violated || *f.Value != 72*60-120 {
		t.Errorf("gaps over 3 days with 2 h collected: %+v (want %d minutes)", f, 72*60-120)
	}
	if len(low.Timeline) != 1 || low.Timeline[0].Event != "collector_stopped" || !low.Timeline[0].Time.Equal(jan.Add(2*time.Hour)) {
		t.Errorf("timeline over 3 days with 2 h collected: %+v, want the stop at 02:00", low.Timeline)
	}
	if len(rep.Timeline) != 0 {
		t.Errorf("timeline of 2 h collected, one configuration: %+v", rep.Timeline)
	}
	if f := findingOf(t, rep, CheckZoneSources); !strings.Contains(f.Reason, "2 attempt(s) stopped") {
		t.Errorf("zone_sources: %s: the dropped attempt is not counted as stopped", f.Reason)
	}

	bad := checkArchive(t, true, priv)
	o = checkOptions(t, bad)
	other, _, _ := ed25519.GenerateKey(nil)
	o.PublicKey = other
	rep = buildAt(t, o)
	want := map[string]float64{
		CheckLossesExplained:   2, // minute 10's decode errors, every hour
		CheckInternalOnlyZones: 2, // db -> world, every hour
		CheckZoneSources:       2, // frontend -> db, FORWARDED, every hour
		CheckPrivilegedSources: 2, // default/curl -> :22, FORWARDED, every hour
		CheckConfigUnchanged:   1,
	}
	for check, v := range want {
		f := findingOf(t, rep, check)
		if f.Status != Violated || f.Value == nil || *f.Value != v {
			t.Errorf("%s: %s %v (%s), want violated with %v", check, f.Status, f.Value, f.Reason, v)
		}
	}
	if f := findingOf(t, rep, CheckSignatures); f.Status != Violated || *f.Value == 0 {
		t.Errorf("signatures checked with another key: %+v", f)
	}
	if len(rep.PrivilegedUnapprovedTop) != 1 || rep.PrivilegedUnapprovedTop[0].Source != "default/curl" || rep.PrivilegedUnapprovedTop[0].Count != 2 {
		t.Errorf("privileged_unapproved_top %+v", rep.PrivilegedUnapprovedTop)
	}
	if len(rep.Timeline) != 1 || rep.Timeline[0].Event != "configuration_changed" || rep.Timeline[0].Detail != "v1 hash-b" || !rep.Timeline[0].Time.Equal(jan.Add(time.Hour)) {
		t.Errorf("timeline %+v: want the change to hash-b at 01:00", rep.Timeline)
	}
	if c := rep.Coverage[0]; len(c.Configurations) != 2 || c.Configurations[0].ConfigHash != "hash-a" || c.Configurations[1].ConfigHash != "hash-b" ||
		!c.Configurations[1].First.Equal(jan.Add(time.Hour)) {
		t.Errorf("configurations %+v", c.Configurations)
	}
}

// TestFindingsIntegrityViolated: a modified file of the month is an
// integrity finding, and the check is violated.
func TestFindingsIntegrityViolated(t *testing.T) {
	root := checkArchive(t, false, nil)
	files, err := filepath.Glob(filepath.Join(root, "flows", "date=2026-01-01", "node=*", "part-*.parquet"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no flows file: %v", err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(files[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := buildAt(t, checkOptions(t, root))
	if f := findingOf(t, rep, CheckIntegrity); f.Status != Violated || *f.Value != 1 || !strings.Contains(f.Reason, "modified") {
		t.Errorf("integrity of a modified file: %+v", f)
	}
}

// TestFindingsNotEvaluated: a check whose input is not configured is not
// evaluated, and says which input.
func TestFindingsNotEvaluated(t *testing.T) {
	root := checkArchive(t, false, nil)
	rep := buildAt(t, Options{Archives: []string{root}, Month: jan, Now: jan.Add(2 * time.Hour)})
	for check, flag := range map[string]string{
		CheckCoverage: "--coverage-target", CheckInternalOnlyZones: "--zones", CheckZoneSources: "--zones",
		CheckPrivilegedSources: "privileged_sources", CheckSignatures: "--public-key", CheckRetention: "--retention-min",
	} {
		f := findingOf(t, rep, check)
		if f.Status != NotEvaluated || !strings.Contains(f.Reason, flag) {
			t.Errorf("%s: %s (%s), want not_evaluated naming %s", check, f.Status, f.Reason, flag)
		}
	}
	if f := findingOf(t, rep, CheckCoverage); f.Value == nil || *f.Value != 98.33 {
		t.Errorf("coverage without a target still shows the lowest coverage: %+v", f)
	}
	var js bytes.Buffer
	if err := RenderJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Findings []map[string]any `json:"findings"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range doc.Findings {
		for _, k := range []string{"check", "status", "section", "controls", "reason"} {
			if _, ok := f[k]; !ok {
				t.Errorf("JSON finding %v has no %s", f, k)
			}
		}
	}
}

// TestFindingsRetention: retention that deleted flows younger than the
// minimum violates it; an archive younger than the minimum from which
// nothing was deleted holds it; one holding the minimum holds it.
func TestFindingsRetention(t *testing.T) {
	root := t.TempDir()
	now := jan.Add(36 * time.Hour)
	w, err := archive.Open(archive.Config{Root: root, Now: func() time.Time { return now }}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &flow.Batch{}
	for i, m := range []time.Time{jan.Add(-12 * time.Hour), jan.Add(time.Hour)} {
		f := b.Next()
		f.Reset()
		f.Uuid = strconv.Itoa(i)
		f.Time = timestamppb.New(m)
		f.NodeName = "c/n1"
		b.AddStat("c/n1", m.Unix()/60*60, flow.Counts{Seen: 1, Kept: 1})
	}
	b.Checkpoint = flow.Checkpoint{Source: "test", Position: "2"}
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	o := Options{Archives: []string{root}, Month: jan, Now: now, RetentionMin: Retention{Days: 40}}
	if f := findingOf(t, buildAt(t, o), CheckRetention); f.Status != Holds || !strings.Contains(f.Reason, "younger than the minimum") || *f.Value != 31 {
		t.Errorf("archive younger than the minimum, nothing deleted: %+v", f)
	}
	o.RetentionMin = Retention{Days: 20}
	if f := findingOf(t, buildAt(t, o), CheckRetention); f.Status != Holds || !strings.Contains(f.Reason, "2025-12-31T12:00:00Z") {
		t.Errorf("31 days held, minimum 20: %+v", f)
	}
	// Flows kept one day: Dec 31 goes, at 36 hours old.
	if w, err = archive.Open(archive.Config{Root: root, Now: func() time.Time { return now }}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ApplyRetention(now, archive.Retention{Flows: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	o.RetentionMin = Retention{Days: 20}
	rep := buildAt(t, o)
	if f := findingOf(t, rep, CheckRetention); f.Status != Violated || !strings.Contains(f.Reason, "1 partition(s)") {
		t.Errorf("retention deleted Dec 31 with a 20-day minimum: %+v", f)
	}
	if !rep.OldestFlow.Equal(jan.Add(time.Hour)) {
		t.Errorf("oldest flow %v after retention, want %v", rep.OldestFlow, jan.Add(time.Hour))
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]Retention{"12mo": {Months: 12}, "1y": {Years: 1}, "400d": {Days: 400}, "1y6mo": {Years: 1, Months: 6}} {
		got, err := ParseRetention(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
		if got.String() != in {
			t.Errorf("%q prints as %q", in, got.String())
		}
	}
	for _, in := range []string{"", "12", "mo", "0d", "12m", "1w", "-1d", "123456d"} {
		if _, err := ParseRetention(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func FuzzParseRetention(f *testing.F) {
	for _, s := range []string{"12mo", "1y6mo", "400d", "0d", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRetention(s)
		if err != nil {
			return
		}
		if r.IsZero() {
			t.Fatalf("%q: zero retention accepted", s)
		}
		if back, err := ParseRetention(r.String()); err != nil || back != r {
			t.Fatalf("%q -> %+v -> %q -> %+v %v", s, r, r.String(), back, err)
		}
	})
}

func TestParseControls(t *testing.T) {
	ct, err := ParseControls([]byte(`controls:
  - id: INTERNAL-7
    framework: {en: "Internal policy", ko: "내부 정책"}
    title: {en: "Databases reached only from the payment API", ko: "결제 API만 데이터베이스 접근"}
    checks: [zone_sources]
    sections: [zones]
  - id: EFSR-15
    title: {en: "Replaced"}
    checks: [internal_only_zones]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(ct.Controls) != len(BuiltinControls)+1 {
		t.Errorf("extended table has %d controls, want %d", len(ct.Controls), len(BuiltinControls)+1)
	}
	if got := ct.controlsOf(CheckZoneSources); !strings.Contains(strings.Join(got, " "), "INTERNAL-7") || strings.Contains(strings.Join(got, " "), "EFSR-15") {
		t.Errorf("zone_sources controls %v: want INTERNAL-7, not the replaced EFSR-15", got)
	}
	ct, err = ParseControls([]byte("replace: true\ncontrols:\n  - id: X-1\n    title: {en: x}\n    sections: [integrity]\n"))
	if err != nil || len(ct.Controls) != 1 {
		t.Fatalf("replace: %+v %v", ct, err)
	}
	root := checkArchive(t, false, nil)
	o := checkOptions(t, root)
	o.Controls = ct
	rep := buildAt(t, o)
	for _, f := range rep.Findings {
		if len(f.Controls) != 0 {
			t.Errorf("%s: controls %v from a table that maps no check", f.Check, f.Controls)
		}
	}
	if s := rep.Sections[SectionNumber(SecIntegrity)-1]; s.ID != SecIntegrity || len(s.Controls) != 1 || s.Controls[0] != "X-1" {
		t.Errorf("integrity section %+v", s)
	}
	for _, bad := range []string{"", "controls: []", "controls:\n  - id: a\n    title: {en: x}\n", "controls:\n  - id: a\n    title: {en: x}\n    checks: [nope]\n",
		"controls:\n  - id: a\n    title: {en: x}\n    sections: [nope]\n", "controls:\n  - id: a\n    checks: [retention]\n", "controls:\n  - title: {en: x}\n    checks: [retention]\n",
		"controls:\n  - {id: a, title: {en: x}, checks: [retention]}\n  - {id: a, title: {en: y}, checks: [retention]}\n", "unknown: 1\ncontrols: []"} {
		if _, err := ParseControls([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseControls(f *testing.F) {
	f.Add([]byte("controls:\n  - id: a\n    title: {en: x}\n    checks: [retention]\n"))
	f.Add([]byte("replace: true\ncontrols:\n  - {id: b, title: {en: y, ko: z}, sections: [zones]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ct, err := ParseControls(b)
		if err != nil {
			return
		}
		for _, c := range ct.Controls {
			if c.ID == "" || c.Title.En == "" {
				t.Fatalf("control without id or title: %+v", c)
			}
		}
	})
}

// TestParseZonesFile: a zones file may hold zones, the sources approved for
// privileged paths, or both; an empty selector or value is refused.
func TestParseZonesFile(t *testing.T) {
	f, err := ParseZonesFile([]byte("privileged_sources:\n  namespaces: [ops]\n  labels: [\"k8s:app=bastion\"]\n"))
	if err != nil || len(f.Zones) != 0 || f.PrivilegedSources == nil || f.PrivilegedSources.Namespaces[0] != "ops" {
		t.Fatalf("ParseZonesFile = %+v, %v", f, err)
	}
	ops, other := "ops", "default"
	if !f.PrivilegedSources.match(&ops, nil) || !f.PrivilegedSources.match(&other, []string{"k8s:app=bastion"}) || f.PrivilegedSources.match(&other, nil) {
		t.Errorf("privileged_sources matching wrong")
	}
	if _, err := ParseZones([]byte("privileged_sources:\n  namespaces: [ops]\n")); err == nil {
		t.Errorf("ParseZones accepted a file without zones")
	}
	for _, bad := range []string{"", "privileged_sources: {}\n", "privileged_sources:\n  namespaces: [\"\"]\n", "privileged_sources:\n  labels: [\"\"]\n",
		"privileged_sources:\n  namespaces: [a]\n  typo: 1\n"} {
		if _, err := ParseZonesFile([]byte(bad)); err == nil {
			t.Errorf("ParseZonesFile(%q) accepted", bad)
		}
	}
}
