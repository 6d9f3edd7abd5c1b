package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// Finding statuses.
const (
	Holds        = "holds"
	Violated     = "violated"
	NotEvaluated = "not_evaluated"
)

// The checks of the findings summary, in the order it lists them.
const (
	CheckCoverage          = "coverage"
	CheckGapsExplained     = "gaps_explained"
	CheckLossesExplained   = "losses_explained"
	CheckInternalOnlyZones = "internal_only_zones"
	CheckZoneSources       = "zone_sources"
	CheckPrivilegedSources = "privileged_sources"
	CheckIntegrity         = "integrity"
	CheckSignatures        = "signatures"
	CheckRetention         = "retention"
	CheckConfigUnchanged   = "config_unchanged"
)

// Checks lists every check in the order of the findings summary.
var Checks = []string{CheckCoverage, CheckGapsExplained, CheckLossesExplained, CheckInternalOnlyZones, CheckZoneSources,
	CheckPrivilegedSources, CheckIntegrity, CheckSignatures, CheckRetention, CheckConfigUnchanged}

// Finding is one line of the findings summary: whether a check holds over
// the month, the number it rests on, and where the report shows it.
type Finding struct {
	Check  string `json:"check"`
	Status string `json:"status"` // holds, violated, not_evaluated
	// Value is the number the status rests on (Unit), nil when there is
	// none to show.
	Value *float64 `json:"value,omitempty"`
	Unit  string   `json:"unit"` // percent, minutes, flows, findings, days, changes
	// Section is the id of the report section holding the evidence.
	Section string `json:"section"`
	// Query names the printed query that reproduces Value, when one does.
	Query    string   `json:"query,omitempty"`
	Controls []string `json:"controls"`
	// Reason says in English why the check holds, is violated or could not
	// be evaluated; the renderers write it in the report's language.
	Reason string `json:"reason"`

	text map[string]string // Reason per language
}

// Text is a sentence in every language of the report.
type Text struct {
	En string `json:"en"`
	Ko string `json:"ko"`
}

// In returns the text in lang (English when it has none in lang).
func (t Text) In(lang string) string {
	if lang == "ko" && t.Ko != "" {
		return t.Ko
	}
	return t.En
}

// findingTexts are the findings' titles and sentences; each sentence is a
// format whose arguments are values, never translated.
var findingTexts = map[string]Text{
	"title_coverage":            {"Collection coverage meets the target", "수집 커버리지가 목표 이상"},
	"title_gaps_explained":      {"Every collection gap explained", "모든 수집 공백의 원인이 기록됨"},
	"title_losses_explained":    {"No loss left unexplained", "원인이 기록되지 않은 유실 없음"},
	"title_internal_only_zones": {"Internal-only zones: 0 flows to the internet", "내부 전용 구역에서 인터넷으로 나간 플로우 0건"},
	"title_zone_sources":        {"No unauthorised source reached a sensitive zone", "허용되지 않은 출발지가 민감 구역에 도달하지 않음"},
	"title_privileged_sources":  {"Privileged paths used only from approved sources", "특권 경로는 승인된 출발지에서만 사용됨"},
	"title_integrity":           {"Archive integrity verified (files, hashes, chain)", "보관 무결성 검증 (파일, 해시, 체인)"},
	"title_signatures":          {"Manifest signatures verified", "매니페스트 서명 검증"},
	"title_retention":           {"Retention meets the policy", "보존 기간이 정책을 충족"},
	"title_config_unchanged":    {"Collector configuration unchanged, or each change listed", "수집기 설정 변경 없음 (또는 변경 내역 기재)"},

	"no_nodes":         {"no node in scope: nothing was evaluable", "범위 안에 노드가 없어 평가할 수 없음"},
	"no_target":        {"no coverage target configured (--coverage-target); lowest node coverage %.2f%% (%s)", "커버리지 목표가 설정되지 않음 (--coverage-target); 최저 노드 커버리지 %.2f%% (%s)"},
	"coverage_holds":   {"every node at or above %.2f%%; lowest %.2f%% (%s)", "모든 노드가 %.2f%% 이상; 최저 %.2f%% (%s)"},
	"coverage_low":     {"%d node(s) below %.2f%%; lowest %.2f%% (%s)", "%d개 노드가 %.2f%% 미만; 최저 %.2f%% (%s)"},
	"gaps_holds":       {"no minute without stats rows or a loss record", "통계 행이나 유실 기록이 없는 분 없음"},
	"gaps_down":        {"%d minute(s) with no stats row and no loss record (collector not running or not archiving), on %s", "통계 행도 유실 기록도 없는 %d분 (수집기 미실행 또는 미보관): %s"},
	"losses_holds":     {"every loss counted in the stats rows lies in a loss record's range", "통계 행에 집계된 모든 유실이 유실 기록의 범위 안에 있음"},
	"losses_open":      {"%d minute(s) count losses that no loss record covers, on %s", "유실 기록이 없는 유실이 집계된 %d분: %s"},
	"no_zones":         {"no zones configured (--zones)", "민감 구역이 설정되지 않음 (--zones)"},
	"no_internal":      {"no zone is internal_only (--zones)", "내부 전용(internal_only) 구역이 없음 (--zones)"},
	"internal_holds":   {"0 flows to the internet from %d internal-only zone(s)", "내부 전용 구역 %d개에서 인터넷으로 나간 플로우 0건"},
	"internal_violate": {"%d flow(s) to the internet from %s", "%[2]s에서 인터넷으로 나간 플로우 %[1]d건"},
	"zones_holds":      {"no flow from a source not allowed reached any of %d zone(s) (%d attempt(s) stopped)", "허용되지 않은 출발지의 플로우가 구역 %d개 중 어디에도 도달하지 않음 (차단된 시도 %d건)"},
	"zones_violate":    {"%d flow(s) from sources not allowed reached %s", "허용되지 않은 출발지의 플로우 %d건이 %s에 도달"},
	"no_approved":      {"no approved sources configured (privileged_sources in --zones)", "승인된 출발지가 설정되지 않음 (--zones의 privileged_sources)"},
	"priv_holds":       {"every privileged-path request that was not stopped came from an approved source", "차단되지 않은 모든 특권 경로 요청이 승인된 출발지에서 옴"},
	"priv_violate":     {"%d request flow(s) on privileged paths from sources not approved, not stopped", "승인되지 않은 출발지의 특권 경로 요청 %d건이 차단되지 않음"},
	"integrity_holds":  {"%d file(s), %d row(s) match their manifest entries; every chain intact", "파일 %d개, 행 %d개가 매니페스트 항목과 일치; 모든 체인 온전"},
	"integrity_bad":    {"%d integrity finding(s): %s", "무결성 발견 사항 %d건: %s"},
	"no_key":           {"signatures not checked: no --public-key given", "서명 미검증: --public-key가 주어지지 않음"},
	"sig_holds":        {"every manifest entry signed by key %s", "모든 매니페스트 항목이 키 %s로 서명됨"},
	"sig_bad":          {"%d entry signature(s) missing or invalid", "서명이 없거나 잘못된 항목 %d건"},
	"no_retention":     {"no retention minimum configured (--retention-min); oldest data %s", "최소 보존 기간이 설정되지 않음 (--retention-min); 가장 오래된 데이터 %s"},
	"no_data":          {"the archive holds no flows", "보관소에 플로우가 없음"},
	"ret_holds":        {"oldest flow %s: %d day(s) held at the end of the month, minimum %s", "가장 오래된 플로우 %s: 월말 기준 %d일 보관, 최소 %s"},
	"ret_young":        {"oldest flow %s: %d day(s) held, minimum %s; the archive is younger than the minimum and retention deleted nothing", "가장 오래된 플로우 %s: %d일 보관, 최소 %s; 보관소가 최소 기간보다 짧으며 보존 정책이 삭제한 데이터 없음"},
	"ret_deleted":      {"retention deleted %d partition(s) holding flows younger than %s (the latest up to %s)", "보존 정책이 최근 %[2]s 이내의 플로우를 담은 파티션 %[1]d개를 삭제함 (가장 최근 %[3]s까지)"},
	"config_holds":     {"one collector version and configuration hash per node all month", "월 중 노드마다 수집기 버전과 설정 해시가 하나"},
	"config_changed":   {"%d change(s) on %s: each configuration with its first and last minute is listed in the scope", "%[2]s에서 %[1]d회 변경: 설정별 처음과 마지막 분을 범위 절에 기재"},
	"no_stats":         {"no stats rows in the month", "이 달의 통계 행이 없음"},
}

// set gives the finding its status, value (nil: none) and reason.
func (f *Finding) set(status string, value *float64, key string, args ...any) {
	f.Status, f.Value = status, value
	f.say(key, args...)
}

func (f *Finding) say(key string, args ...any) {
	tx := findingTexts[key]
	f.text = map[string]string{"en": fmt.Sprintf(tx.En, args...), "ko": fmt.Sprintf(tx.Ko, args...)}
	f.Reason = f.text["en"]
}

// ReasonIn is the finding's reason in lang.
func (f *Finding) ReasonIn(lang string) string {
	if s, ok := f.text[lang]; ok {
		return s
	}
	return f.Reason
}

// Title is the check's line in the summary, in lang.
func (f *Finding) Title(lang string) string { return findingTexts["title_"+f.Check].In(lang) }

func num(v float64) *float64 { return &v }

// Retention is a minimum retention period: years, months and days.
type Retention struct{ Years, Months, Days int }

// IsZero reports whether no minimum is configured.
func (r Retention) IsZero() bool { return r == Retention{} }

func (r Retention) String() string {
	var parts []string
	for _, p := range []struct {
		n    int
		unit string
	}{{r.Years, "y"}, {r.Months, "mo"}, {r.Days, "d"}} {
		if p.n != 0 {
			parts = append(parts, fmt.Sprintf("%d%s", p.n, p.unit))
		}
	}
	return strings.Join(parts, "")
}

// before is t less the period.
func (r Retention) before(t time.Time) time.Time { return t.AddDate(-r.Years, -r.Months, -r.Days) }

// ParseRetention parses a period such as 12mo, 1y, 365d or 1y6mo.
func ParseRetention(s string) (Retention, error) {
	var r Retention
	rest := strings.TrimSpace(s)
	if rest == "" {
		return r, fmt.Errorf("report: retention %q: empty", s)
	}
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i > 5 {
			return Retention{}, fmt.Errorf("report: retention %q: want a period like 12mo, 1y, 400d or 1y6mo", s)
		}
		var n int
		fmt.Sscan(rest[:i], &n)
		rest = rest[i:]
		var unit string
		for _, u := range []string{"mo", "y", "d"} {
			if strings.HasPrefix(rest, u) {
				unit = u
				break
			}
		}
		switch unit {
		case "y":
			r.Years += n
		case "mo":
			r.Months += n
		case "d":
			r.Days += n
		default:
			return Retention{}, fmt.Errorf("report: retention %q: want a period like 12mo, 1y, 400d or 1y6mo", s)
		}
		rest = rest[len(unit):]
	}
	if r.IsZero() {
		return Retention{}, fmt.Errorf("report: retention %q: want a period longer than zero", s)
	}
	return r, nil
}

// findings computes the findings summary from the numbers the report
// already holds (no scan): rep's sections, the verification of the month,
// and the manifests of the whole archive (hist: the files they vouch for,
// the partitions retention deleted). Each check is a function of those
// alone, in the order the summary lists them.
func findings(rep *Report, o Options, hist *archive.VerifyReport, ct *ControlTable) []Finding {
	out := make([]Finding, 0, len(checks))
	for _, check := range checks {
		f := check(rep, o, hist)
		f.Controls = ct.controlsOf(f.Check)
		if f.Controls == nil {
			f.Controls = []string{}
		}
		out = append(out, f)
	}
	return out
}

// checks are the findings' checks, in the summary's order.
var checks = []func(rep *Report, o Options, hist *archive.VerifyReport) Finding{
	checkCoverage,
	checkGapsExplained,
	checkLossesExplained,
	checkInternalOnlyZones,
	checkZoneSources,
	checkPrivilegedSources,
	checkIntegrity,
	checkSignatures,
	checkRetention,
	checkConfigUnchanged,
}

// checkCoverage compares the lowest node's coverage with the target.
func checkCoverage(rep *Report, o Options, hist *archive.VerifyReport) Finding {
	f := Finding{Check: CheckCoverage, Unit: "percent", Section: SecCoverage, Query: "coverage"}
	low, lowNode, below, any := 100.0, "", 0, false
	for _, c := range rep.Coverage {
		if c.Minutes == 0 {
			continue
		}
		if !any || c.CoveragePct < low {
			low, lowNode = c.CoveragePct, c.Node
		}
		any = true
		if o.CoverageTarget > 0 && c.CoveragePct < o.CoverageTarget {
			below++
		}
	}
	switch {
	case !any:
		f.set(NotEvaluated, nil, "no_nodes")
	case o.CoverageTarget == 0:
		f.set(NotEvaluated, num(round2(low)), "no_target", low, lowNode)
	case below > 0:
		f.set(Violated, num(round2(low)), "coverage_low", below, o.CoverageTarget, low, lowNode)
	default:
		f.set(Holds, num(round2(low)), "coverage_holds", o.CoverageTarget, low, lowNode)
	}
	return f
}

// checkGapsExplained counts the minutes with neither a stats row nor a loss
// record.
func checkGapsExplained(rep *Report, o Options, hist *archive.VerifyReport) Finding {
	f := Finding{Check: CheckGapsExplained, Unit: "minutes", Section: SecCoverage, Query: "coverage"}
	return minutesFinding(f, rep, func(c NodeCoverage) int { return c.MinutesDown }, "gaps_down", "gaps_holds")
}

// checkLossesExplained counts the minutes whose losses no loss record covers.
func checkLossesExplained(rep *Report, o Options, hist *archive.VerifyReport) Finding {
	f := Finding{Check: CheckLossesExplained, Unit: "minutes", Section: SecCoverage, Query: "losses_unexplained"}
	return minutesFinding(f, rep, func(c NodeCoverage) int { return c.MinutesUnexplained }, "losses_open", "losses_holds")
}

// minutesFinding sets f from the minutes each node's coverage counts:
// violated (naming the nodes) when any, holds when none, not evaluated
// without nodes.
func minutesFinding(f Finding, rep *Report, minutes func(NodeCoverage) int, violated, holds string) Finding {
	var n int
	var nodes []string
	for _, c := range rep.Coverage {
		if m := minutes(c); m > 0 {
			n += m
			nodes = append(nodes, c.Node)
		}
	}
	switch {
	case len(rep.Coverage) == 0:
		f.set(NotEvaluated, nil, "no_nodes")
	case n > 0:
		f.set(Violated, num(float64(n)), violated, n, strings.Join(nodes, ", "))
	default:
		f.set(Holds, num(0), holds)
	}
	return f
}

// checkInternalOnlyZones counts the internal-only zones' flows to the
// internet.
func checkInternalOnlyZones(rep *Report, o Options, hist *archive.VerifyReport) Finding {
	f := Finding{Check: CheckInternalOnlyZones, Unit: "flows", Section: SecZones}
	var n int64
	var internal int
	var bad []string
	for _, z := range rep.Zones {
		if !z.InternalOnly {
			continue
		}
		internal++
		n += z.WorldEgress
		if z.WorldEgress > 0 {
			bad = append(bad, z.Name)
		}
	}
	switch {
	case len(o.Zones) == 0:
		f.set(NotEvaluated, nil, "no_zones")
	case internal == 0:
		f.set(NotEvaluated, nil, "no_internal")
	case n > 0:
		f.Query = "zone NAME"
		f.set(Violated, num(float64(n)), "internal_violate", n, strings.Join(bad, ", "))
	default:
		f.Query = "zone NAME"
		f.set(Holds, num(0), "internal_holds", internal)
	}
	return f
}

// checkZoneSources counts the flows from sources not allowed that reached a
// zone.
func checkZoneSources(rep *Report, o Options, hist *archive.VerifyReport) Finding {
	f := Finding{Check: CheckZoneSources, Unit: "flows", Section: SecZones}
	var reachedN, stopped int64
	var bad []string
	for _, z := range rep.Zones {
		reachedN += z.UnauthorizedReached
		stopped += z.Unauthorized - z.UnauthorizedReached
		if z.UnauthorizedReached > 0 {
			bad = append(bad, z.Name)
		}
	}
	switch {
	case len(o.Zones) == 0:
		f.set(NotEvaluated, nil, "no_zones")
	case reachedN > 0:
		f.Query = "zone NAME"
		f.set(Violated, num(float64(reachedN)), "zones_violate", reachedN, strings.Join(bad, ", "))
	default:
		f.Query = "zone NAME"
		f.set(Holds, num(0), "zones_holds", len(rep.Zones), stopped)
	}
	return f
}

// checkPrivilegedSources counts the privileged-path requests from sources
// not approved that were not stopped.
func checkPrivilegedSources(rep *Report, o Options, hist *archive.VerifyReport) Finding {
	f := Finding{Check: CheckPrivilegedSources, Unit: "flows", Section: SecPrivileged}
	switch {
	case o.PrivilegedSources == nil:
		f.set(NotEvaluated, nil, "no_approved")
	case rep.PrivilegedUnapproved > 0:
		f.Query = "privileged_unapproved"
		f.set(Violated, num(float64(rep.PrivilegedUnapproved)), "priv_violate", rep.PrivilegedUnapproved)
	default:
		f.Query = "privileged_unapproved"
		f.set(Holds, num(0), "priv_holds")
	}
	return f
}

// checkIntegrity counts the integrity findings of the month's files and of
// every chain, signatures aside.
func checkIntegrity(rep *Report, o Options, hist *archive.VerifyReport) Finding {
	f := Finding{Check: CheckIntegrity, Unit: "findings", Section: SecIntegrity}
	iv := rep.Integrity
	var kinds []string
	n := 0
	for _, x := range iv.Findings {
		if x.Kind == "signature" {
			continue
		}
		n++
		if !slices.Contains(kinds, x.Kind) {
			kinds = append(kinds, x.Kind)
		}
	}
	if n > 0 {
		f.set(Violated, num(float64(n)), "integrity_bad", n, strings.Join(kinds, ", "))
	} else {
		f.set(Holds, num(0), "integrity_holds", iv.Files, iv.Rows)
	}
	return f
}

// checkSignatures counts the entries whose signature is missing or invalid.
func checkSignatures(rep *Report, o Options, hist *archive.VerifyReport) Finding {
	f := Finding{Check: CheckSignatures, Unit: "findings", Section: SecIntegrity}
	n := 0
	for _, x := range rep.Integrity.Findings {
		if x.Kind == "signature" {
			n++
		}
	}
	switch {
	case o.PublicKey == nil:
		f.set(NotEvaluated, nil, "no_key")
	case n > 0:
		f.set(Violated, num(float64(n)), "sig_bad", n)
	default:
		f.set(Holds, num(0), "sig_holds", archive.KeyID(o.PublicKey))
	}
	return f
}

// checkRetention compares the oldest flow the manifests vouch for, and what
// retention deleted, with the minimum. It records the oldest flow in rep.
func checkRetention(rep *Report, o Options, hist *archive.VerifyReport) Finding {
	f := Finding{Check: CheckRetention, Unit: "days", Section: SecIntegrity, Query: "retention_oldest"}
	var oldest time.Time
	for _, v := range hist.Intact {
		if v.Table == "flows" && v.Rows > 0 && (oldest.IsZero() || v.MinTime.Before(oldest)) {
			oldest = v.MinTime
		}
	}
	held := 0
	if !oldest.IsZero() {
		held = int(rep.ToUTC.Sub(oldest) / (24 * time.Hour))
	}
	rep.OldestFlow = oldest
	var tooYoung int
	var latest time.Time
	limit := o.RetentionMin.before(rep.Generated)
	for _, p := range hist.Retention {
		if p.Table == "flows" && p.Rows > 0 && p.MaxTime.After(limit) {
			tooYoung++
			latest = maxTime(latest, p.MaxTime)
		}
	}
	switch {
	case o.RetentionMin.IsZero() && oldest.IsZero():
		f.set(NotEvaluated, nil, "no_data")
	case o.RetentionMin.IsZero():
		f.set(NotEvaluated, num(float64(held)), "no_retention", oldest.Format(time.RFC3339))
	case tooYoung > 0:
		f.set(Violated, num(float64(held)), "ret_deleted", tooYoung, o.RetentionMin.String(), latest.Format(time.RFC3339))
	case oldest.IsZero():
		f.set(NotEvaluated, nil, "no_data")
	case !oldest.After(o.RetentionMin.before(rep.ToUTC)):
		f.set(Holds, num(float64(held)), "ret_holds", oldest.Format(time.RFC3339), held, o.RetentionMin.String())
	default:
		f.set(Holds, num(float64(held)), "ret_young", oldest.Format(time.RFC3339), held, o.RetentionMin.String())
	}
	return f
}

// checkConfigUnchanged counts the changes of collector version or
// configuration hash.
func checkConfigUnchanged(rep *Report, o Options, hist *archive.VerifyReport) Finding {
	f := Finding{Check: CheckConfigUnchanged, Unit: "changes", Section: SecScope, Query: "configurations"}
	changes, stats := 0, false
	var nodes []string
	for _, c := range rep.Coverage {
		if len(c.Configurations) > 0 {
			stats = true
		}
		if len(c.Configurations) > 1 {
			changes += len(c.Configurations) - 1
			nodes = append(nodes, c.Node)
		}
	}
	switch {
	case !stats:
		f.set(NotEvaluated, nil, "no_stats")
	case changes > 0:
		f.set(Violated, num(float64(changes)), "config_changed", changes, strings.Join(nodes, ", "))
	default:
		f.set(Holds, num(0), "config_holds")
	}
	return f
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Event is one change during the month: a collector stopping or starting
// (the ends of a run of minutes without stats rows) or its configuration
// changing (the first minute of a node's later configuration).
type Event struct {
	Time time.Time `json:"time"`
	Node string    `json:"node"`
	// Event is collector_stopped, collector_started or
	// configuration_changed.
	Event  string `json:"event"`
	Detail string `json:"detail,omitempty"` // the new version and hash
}

// timeline lists the month's changes in time order, from the coverage the
// report computed.
func timeline(rep *Report) []Event {
	out := []Event{}
	for _, c := range rep.Coverage {
		for _, g := range c.Gaps {
			if g.Reason != reasonCollectorDown {
				continue
			}
			// A run that starts at the node's first evaluable minute is the
			// month's start (or the node's first evidence), not a stop.
			if !g.From.Equal(rep.FromUTC) && (c.FirstEvidence == nil || !g.From.Equal(*c.FirstEvidence)) {
				out = append(out, Event{Time: g.From, Node: c.Node, Event: "collector_stopped"})
			}
			if g.To.Before(rep.ToUTC) && g.To.Before(rep.Generated.Truncate(time.Minute)) {
				out = append(out, Event{Time: g.To, Node: c.Node, Event: "collector_started"})
			}
		}
		for i, x := range c.Configurations {
			if i > 0 {
				out = append(out, Event{Time: x.First, Node: c.Node, Event: "configuration_changed", Detail: x.Version + " " + x.ConfigHash})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
	return out
}
