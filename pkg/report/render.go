package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// labels are the report's fixed texts in English and Korean.
var labels = map[string]map[string]string{
	"en": {
		"title": "Network traffic evidence report", "period": "Period", "scope": "Scope", "nodes": "Nodes",
		"namespaces": "Namespaces", "versions": "Collector versions", "confighashes": "Configuration hashes",
		"coverage": "Collection coverage", "node": "Node", "hours": "Hours", "collected": "Collected",
		"notraffic": "No traffic", "down": "Collector down", "pct": "Coverage %", "gaps": "Gaps",
		"lost": "Hubble lost events", "decode": "Decode errors", "verdicts": "Verdict totals", "verdict": "Verdict",
		"count": "Count", "lowestcoverage": "Lowest node coverage", "prevline": "the line: last month, same day of the month", "lastmonth": "Last month", "daily": "Daily volume", "day": "Day", "total": "Total", "denied": "Denied traffic (DROPPED and AUDIT)",
		"source": "Source", "destination": "Destination", "port": "Port", "reason": "Drop reason", "policy": "Policy",
		"talkers": "Top talkers", "new": "New this month", "yes": "yes", "zones": "Sensitive zones", "zone": "Zone", "inbound": "Inbound flows", "unauthorized": "From sources not allowed", "worldegress": "Flows to world", "assertion": "0 flows from internal-only zone to world", "holds": "holds", "violated": "VIOLATED", "na": "n/a (zone not internal-only)", "privileged": "Privileged paths (SSH, RDP, kube-apiserver, databases)", "byport": "By port", "pairs": "distinct pairs", "http": "HTTP errors", "dns": "DNS failures", "world": "Internet egress",
		"integrity": "Integrity", "files": "Files checked", "rows": "Rows checked", "findings": "Findings", "none": "none",
		"heads": "Manifest chain heads", "signoff": "Sign-off", "reviewer": "Reviewer", "approver": "Approver", "date": "Date",
		"sql": "DuckDB queries reproducing these numbers", "flows": "Flows", "from": "From", "to": "To", "cause": "Cause",
		"heatmap":    "Hourly coverage (# collected, . no traffic, ~ partly down, ! loss: not collected in full, blank: collector down, - before the first evidence or after this report)",
		"cause_down": "no stats rows: collector not running or not archiving", "cause_counters": "loss counters in the stats rows",
		"reason_rotation_gap": "rotation gap: events.log rotated away before it was read", "reason_truncated": "events.log truncated under the reader",
		"reason_damaged_input": "damaged input file", "reason_hubble_lost_events": "Hubble lost events",
		"reason_line_too_long": "over-long line skipped", "reason_stream_down": "stream down", "reason_decode_error": "undecodable lines",
		"amount_events": "%d events lost", "amount_bytes": "%d bytes lost", "amount_at_least_bytes": "at least %d bytes lost",
		"amount_unknown": "amount unknown", "estimate_rate": "estimate: ~%d flows, from the node's rate around the gap",
		"estimate_line_size": "estimate: ~%d flows, from the bytes and the mean line size",
		"minutes":            "Minutes", "lostmin": "Minutes lost", "downmin": "Minutes down", "withloss": "Hours with loss",
		"first": "First evidence", "losses": "Losses",
		"excluded": "Excluded from the numbers", "excludedfiles": "Files excluded from the numbers", "kind": "Finding", "path": "File",
		"excludednone": "none: every file counted matches its manifest entry",
		"excludedsome": "%d file(s) (%s) that the manifests do not vouch for, or that are missing or damaged: every number of this report leaves them out (see %s)",
		"xrows":        "%d rows", "xrowsunknown": "%d rows, and the rows of %d file(s) unknown", "xrowscol": "Rows",
		"controlsline": "Controls evidenced", "check": "Check", "status": "Status", "value": "Value", "section": "Section", "controls": "Controls", "why": "Why",
		"configurations": "Collector configurations (version and configuration hash per node, first and last minute seen)", "version": "Version", "confighash": "Configuration hash",
		"firstseen": "First seen", "lastseen": "Last seen", "unexplainedmin": "Minutes with unexplained loss",
		"approved": "Sources approved for privileged paths", "noapproved": "none configured (privileged_sources in --zones)", "labels": "labels",
		"unapproved": "Requests on privileged paths from sources not approved, not stopped", "reached": "Not allowed and not stopped",
		"oldest": "Oldest flow in the archive", "minimum": "retention minimum", "retired": "Files deleted by retention", "keyids": "Signing keys", "unsigned": "none: the manifests are not signed",
		"controlsintro": "What this report evidences for each control, and what it does not: network flows do not replace the systems' and applications' own access records.",
		"control":       "Control", "checks": "Checks", "sectionscol": "Sections", "evidences": "The flows evidence", "limits": "They do not evidence",
		"status_holds": "holds", "status_violated": "VIOLATED", "status_not_evaluated": "not evaluated",
		"unit_minutes": "min", "unit_flows": "flows", "unit_findings": "findings", "unit_days": "days", "unit_changes": "changes",
		"sec_findings": "Findings", "sec_scope": "Scope", "sec_coverage": "Collection coverage", "sec_traffic": "Verdict totals and daily volume",
		"sec_denied": "Denied traffic (DROPPED and AUDIT)", "sec_privileged": "Privileged paths (SSH, RDP, kube-apiserver, databases)", "sec_zones": "Sensitive zones",
		"sec_egress": "Internet egress, top talkers, HTTP errors, DNS failures", "sec_integrity": "Integrity and retention", "sec_controls": "Control mapping",
		"sec_signoff": "Sign-off", "sec_queries": "DuckDB queries reproducing these numbers",
		"axisday": "day", "axishour": "hour",
		"mom": "Month over month", "thismonth": "This month", "change": "Change", "deniedflows": "Denied flows", "deniedgroups": "Denied groups",
		"gone":     "Gone this month (denied last month, not this month)",
		"timeline": "Changes during the month", "time": "Time", "event": "Event", "nochanges": "none",
		"event_collector_stopped": "collector stopped (no stats rows from here)", "event_collector_started": "collector started (stats rows again)",
		"event_configuration_changed": "configuration changed to",
	},
	"ko": {
		"title": "네트워크 트래픽 증적 보고서", "period": "기간", "scope": "범위", "nodes": "노드",
		"namespaces": "네임스페이스", "versions": "수집기 버전", "confighashes": "설정 해시",
		"coverage": "수집 커버리지", "node": "노드", "hours": "시간", "collected": "수집됨",
		"notraffic": "트래픽 없음", "down": "수집기 중단", "pct": "커버리지 %", "gaps": "공백",
		"lost": "Hubble 유실 이벤트", "decode": "디코딩 오류", "verdicts": "판정별 합계", "verdict": "판정",
		"count": "건수", "lowestcoverage": "최저 노드 커버리지", "prevline": "선: 지난달 같은 날", "lastmonth": "지난달", "daily": "일별 건수", "day": "일자", "total": "합계", "denied": "차단된 트래픽 (DROPPED, AUDIT)",
		"source": "출발지", "destination": "목적지", "port": "포트", "reason": "차단 사유", "policy": "정책",
		"talkers": "상위 통신", "new": "이번 달 신규", "yes": "예", "zones": "민감 구역", "zone": "구역", "inbound": "유입 플로우", "unauthorized": "허용되지 않은 출발지", "worldegress": "외부(world)로 나간 플로우", "assertion": "내부 전용 구역에서 외부로 나간 플로우 0건", "holds": "충족", "violated": "위반", "na": "해당 없음 (내부 전용 아님)", "privileged": "특권 경로 (SSH, RDP, kube-apiserver, 데이터베이스)", "byport": "포트별", "pairs": "고유 쌍", "http": "HTTP 오류", "dns": "DNS 실패", "world": "인터넷 egress",
		"integrity": "무결성", "files": "검사한 파일", "rows": "검사한 행", "findings": "발견 사항", "none": "없음",
		"heads": "매니페스트 해시 체인 헤드", "signoff": "승인", "reviewer": "검토자", "approver": "승인자", "date": "일자",
		"sql": "이 수치를 재현하는 DuckDB 쿼리", "flows": "플로우", "from": "시작", "to": "끝", "cause": "원인",
		"heatmap":    "시간별 커버리지 (# 수집, . 트래픽 없음, ~ 일부 중단, ! 유실: 완전히 수집되지 않음, 공백: 수집기 중단, - 최초 증적 이전 또는 보고서 작성 이후)",
		"cause_down": "통계 행 없음: 수집기가 실행되지 않았거나 보관하지 않음", "cause_counters": "통계 행의 유실 카운터",
		"reason_rotation_gap": "로테이션 공백: 읽기 전에 events.log가 로테이션되어 삭제됨", "reason_truncated": "읽는 중 events.log가 잘림",
		"reason_damaged_input": "손상된 입력 파일", "reason_hubble_lost_events": "Hubble 유실 이벤트",
		"reason_line_too_long": "너무 긴 줄 건너뜀", "reason_stream_down": "스트림 중단", "reason_decode_error": "디코딩할 수 없는 줄",
		"amount_events": "이벤트 %d건 유실", "amount_bytes": "%d 바이트 유실", "amount_at_least_bytes": "최소 %d 바이트 유실",
		"amount_unknown": "유실량 알 수 없음", "estimate_rate": "추정: 공백 전후 노드 유입률 기준 약 %d건",
		"estimate_line_size": "추정: 유실 바이트와 평균 줄 크기 기준 약 %d건",
		"minutes":            "분", "lostmin": "유실 분", "downmin": "중단 분", "withloss": "유실 있는 시간",
		"first": "최초 증적", "losses": "유실 기록",
		"excluded": "수치에서 제외", "excludedfiles": "수치에서 제외된 파일", "kind": "발견 사항", "path": "파일",
		"excludednone": "없음: 집계한 모든 파일이 매니페스트 항목과 일치합니다",
		"excludedsome": "매니페스트가 보증하지 않거나 누락 또는 손상된 파일 %d개(%s)는 이 보고서의 모든 수치에서 제외되었습니다 (%s 참조)",
		"xrows":        "%d행", "xrowsunknown": "%d행, 행 수를 알 수 없는 파일 %d개", "xrowscol": "행",
		"controlsline": "관련 통제 항목", "check": "점검 항목", "status": "상태", "value": "값", "section": "절", "controls": "통제 항목", "why": "근거",
		"configurations": "수집기 설정 (노드별 버전과 설정 해시, 처음과 마지막으로 관찰된 분)", "version": "버전", "confighash": "설정 해시",
		"firstseen": "처음 관찰", "lastseen": "마지막 관찰", "unexplainedmin": "원인 미기록 유실 분",
		"approved": "특권 경로 사용이 승인된 출발지", "noapproved": "설정 없음 (--zones의 privileged_sources)", "labels": "레이블",
		"unapproved": "승인되지 않은 출발지의 차단되지 않은 특권 경로 요청", "reached": "허용되지 않았으나 차단되지 않음",
		"oldest": "보관소의 가장 오래된 플로우", "minimum": "최소 보존 기간", "retired": "보존 정책으로 삭제된 파일", "keyids": "서명 키", "unsigned": "없음: 매니페스트가 서명되지 않음",
		"controlsintro": "이 보고서가 각 통제 항목에 대해 증명하는 것과 증명하지 않는 것: 네트워크 플로우는 시스템·애플리케이션 자체의 접속기록을 대체하지 않습니다.",
		"control":       "통제 항목", "checks": "점검 항목", "sectionscol": "절", "evidences": "플로우가 증명하는 것", "limits": "증명하지 않는 것",
		"status_holds": "충족", "status_violated": "위반", "status_not_evaluated": "평가 안 됨",
		"unit_minutes": "분", "unit_flows": "건", "unit_findings": "건", "unit_days": "일", "unit_changes": "회",
		"sec_findings": "점검 결과 요약", "sec_scope": "범위", "sec_coverage": "수집 커버리지", "sec_traffic": "판정별 합계와 일별 건수",
		"sec_denied": "차단된 트래픽 (DROPPED, AUDIT)", "sec_privileged": "특권 경로 (SSH, RDP, kube-apiserver, 데이터베이스)", "sec_zones": "민감 구역",
		"sec_egress": "인터넷 egress, 상위 통신, HTTP 오류, DNS 실패", "sec_integrity": "무결성과 보존", "sec_controls": "통제 항목 매핑",
		"sec_signoff": "승인", "sec_queries": "이 수치를 재현하는 DuckDB 쿼리",
		"axisday": "일", "axishour": "시",
		"mom": "전월 대비", "thismonth": "이번 달", "change": "증감", "deniedflows": "차단된 플로우", "deniedgroups": "차단 그룹",
		"gone":     "이번 달 사라짐 (지난달 차단, 이번 달 없음)",
		"timeline": "월 중 변경 내역", "time": "시각", "event": "사건", "nochanges": "없음",
		"event_collector_stopped": "수집기 중지 (이후 통계 행 없음)", "event_collector_started": "수집기 시작 (통계 행 재개)",
		"event_configuration_changed": "설정 변경:",
	},
}

func tr(lang string) map[string]string {
	if l, ok := labels[lang]; ok {
		return l
	}
	return labels["en"]
}

// excludedSummary is the sentence that says which files the numbers leave
// out.
func excludedSummary(t map[string]string, r *Report) string {
	if len(r.Excluded) == 0 {
		return t["excludednone"]
	}
	var rows int64
	unknown := 0
	for _, x := range r.Excluded {
		if x.Rows == nil {
			unknown++
		} else {
			rows += *x.Rows
		}
	}
	n := fmt.Sprintf(t["xrows"], rows)
	if unknown > 0 {
		n = fmt.Sprintf(t["xrowsunknown"], rows, unknown)
	}
	return fmt.Sprintf(t["excludedsome"], len(r.Excluded), n, t["integrity"])
}

// rowsText is an excluded file's rows, or "?" when unknown.
func rowsText(n *int64) string {
	if n == nil {
		return "?"
	}
	return strconv.FormatInt(*n, 10)
}

// RenderJSON writes the report as indented JSON.
func RenderJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// bar is one bar of a chart: its label, its width (of 300) and its count.
type bar struct {
	Label string
	Width int
	Count int64
}

// deniedBars are the first ten denied groups, labelled source -> destination
// protocol/port (cut to 60 characters), as bars scaled to the first.
func deniedBars(r *Report) []bar {
	var out []bar
	for i, d := range r.Denied {
		if i == 10 {
			break
		}
		label := d.Source + " -> " + d.Destination + " " + d.Protocol + "/" + d.Port
		if rs := []rune(label); len(rs) > 60 {
			label = string(rs[:59]) + "…"
		}
		w := 0
		if r.Denied[0].Count > 0 {
			w = int(300 * d.Count / r.Denied[0].Count)
		}
		out = append(out, bar{Label: label, Width: w, Count: d.Count})
	}
	return out
}

// eventText is a timeline event in the language of t.
func eventText(t map[string]string, e Event) string {
	s := t["event_"+e.Event]
	if e.Detail != "" {
		s += " " + e.Detail
	}
	return s
}

// momRow is a headline number beside last month's.
type momRow struct {
	What, This, Last, Change string
}

// momRows are the month-over-month rows (none without a previous month).
func momRows(t map[string]string, r *Report) []momRow {
	pm := r.Previous
	if pm == nil {
		return nil
	}
	var rows []momRow
	count := func(what string, this, last int64) {
		rows = append(rows, momRow{what, strconv.FormatInt(this, 10), strconv.FormatInt(last, 10), changeText(this, last)})
	}
	count(t["flows"], r.TotalFlows, pm.TotalFlows)
	count(t["deniedflows"], r.DeniedTotal, pm.DeniedTotal)
	count(t["deniedgroups"], int64(r.DeniedPairs), int64(pm.DeniedPairs))
	count(t["world"], r.WorldEgressTotal, pm.WorldEgressTotal)
	low, down, ok := lowestCoverage(r.Coverage, func(c NodeCoverage) (int, int, float64) { return c.Minutes, c.MinutesDown, c.CoveragePct })
	plow, pdown, pok := lowestCoverage(pm.Coverage, func(c PreviousCoverage) (int, int, float64) { return c.Minutes, c.MinutesDown, c.CoveragePct })
	pct, change := func(v float64, ok bool) string {
		if !ok {
			return "—"
		}
		return fmt.Sprintf("%.2f %%", v)
	}, "—"
	if ok && pok {
		change = fmt.Sprintf("%+.2f", low-plow)
	}
	rows = append(rows, momRow{t["lowestcoverage"], pct(low, ok), pct(plow, pok), change})
	count(t["downmin"], int64(down), int64(pdown))
	return rows
}

// changeText is this month's change over last month's: the difference and,
// when last month had any, the percentage.
func changeText(this, last int64) string {
	s := fmt.Sprintf("%+d", this-last)
	if last != 0 {
		s += fmt.Sprintf(" (%+.1f%%)", 100*float64(this-last)/float64(last))
	}
	return s
}

// sectionTitle is the numbered title of section id.
func sectionTitle(t map[string]string, id string) string {
	return fmt.Sprintf("%d. %s", SectionNumber(id), t["sec_"+id])
}

// sectionControls are the controls section id evidences.
func (r *Report) sectionControls(id string) []string {
	for _, s := range r.Sections {
		if s.ID == id {
			return s.Controls
		}
	}
	return nil
}

// periodText is the month's bounds in the report's zone, with the UTC
// bounds beside them.
func periodText(r *Report) string {
	l := loc(r)
	return fmt.Sprintf("%s – %s (%s; UTC %s – %s)", r.FromUTC.In(l).Format("2006-01-02 15:04"), r.ToUTC.In(l).Format("2006-01-02 15:04"), r.TimeZone,
		r.FromUTC.Format("2006-01-02T15:04Z"), r.ToUTC.Format("2006-01-02T15:04Z"))
}

// minuteTime shows a stats minute.
const minuteTime = "2006-01-02T15:04Z"

func statusText(t map[string]string, s string) string { return t["status_"+s] }

// valueText is a finding's number with its unit, or a dash.
func valueText(t map[string]string, f *Finding) string {
	if f.Value == nil {
		return "—"
	}
	if f.Unit == "percent" {
		return fmt.Sprintf("%.2f %%", *f.Value)
	}
	return fmt.Sprintf("%s %s", strconv.FormatFloat(*f.Value, 'f', -1, 64), t["unit_"+f.Unit])
}

func approvedText(t map[string]string, s *Selector) string {
	if s == nil {
		return t["noapproved"]
	}
	var parts []string
	if len(s.Namespaces) > 0 {
		parts = append(parts, t["namespaces"]+" "+strings.Join(s.Namespaces, ", "))
	}
	if len(s.Labels) > 0 {
		parts = append(parts, t["labels"]+" "+strings.Join(s.Labels, " + "))
	}
	return strings.Join(parts, "; ")
}

func oldestText(t map[string]string, r *Report) string {
	if r.OldestFlow.IsZero() {
		return t["none"]
	}
	s := r.OldestFlow.Format(time.RFC3339)
	if r.RetentionMin != "" {
		s += fmt.Sprintf(" (%s %s)", t["minimum"], r.RetentionMin)
	}
	return s
}

func keyIDsText(t map[string]string, ids []string) string {
	if len(ids) == 0 {
		return t["unsigned"]
	}
	return strings.Join(ids, ", ")
}

// gapTime shows a gap's bounds to the second: a rotation gap can last
// seconds.
const gapTime = "2006-01-02T15:04:05Z"

// firstEvidence is the node's first evidence in the month, or "".
func firstEvidence(c NodeCoverage) string {
	if c.FirstEvidence == nil {
		return ""
	}
	return c.FirstEvidence.Format("2006-01-02T15:04Z")
}

func assertion(t map[string]string, z ZoneResult) string {
	switch {
	case !z.InternalOnly:
		return t["na"]
	case z.AssertionHolds:
		return t["holds"]
	}
	return fmt.Sprintf("%s (%d)", t["violated"], z.WorldEgress)
}

func optInt(p *int64) string {
	if p == nil {
		return ""
	}
	return fmt.Sprint(*p)
}

func loc(r *Report) *time.Location {
	l, err := time.LoadLocation(r.TimeZone)
	if err != nil {
		return time.UTC
	}
	return l
}
