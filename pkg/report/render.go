package report

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
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

// mdReplacer escapes what would break a Markdown table cell or inject
// markup.
var mdReplacer = strings.NewReplacer("\\", "\\\\", "|", "\\|", "\r", " ", "\n", " ", "`", "\\`", "<", "&lt;", ">", "&gt;", "*", "\\*", "_", "\\_", "[", "\\[", "]", "\\]")

// mdCell makes a value safe inside a Markdown table cell: pipes, newlines,
// backticks and HTML cannot break the table or inject markup, and control
// and bidirectional-formatting characters (NUL, ESC, U+202E, ...), which
// would be written as they are and hide or reorder the text around them,
// are shown as \uXXXX.
func mdCell(s string) string {
	s = mdReplacer.Replace(s)
	if !strings.ContainsFunc(s, invisible) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if invisible(r) {
			fmt.Fprintf(&b, "\\u%04X", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// invisible reports whether r is a control or format character (Unicode Cc
// and Cf: C0, DEL, C1, bidirectional marks, overrides and isolates, zero
// width characters).
func invisible(r rune) bool { return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) }

// codeFence returns a backtick fence longer than any backtick run in s, so
// s cannot close its code block.
func codeFence(s string) string {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

// RenderMarkdown writes the report as Markdown.
func RenderMarkdown(w io.Writer, r *Report, lang string) error {
	t := tr(lang)
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	// heading starts section id, with an anchor the findings link to and
	// the controls the section evidences.
	heading := func(id string) {
		p("\n<a id=\"%s\"></a>\n\n## %s\n", id, sectionTitle(t, id))
		if ids := r.sectionControls(id); len(ids) > 0 {
			p("\n%s: %s\n", t["controlsline"], mdCell(strings.Join(ids, ", ")))
		}
		p("\n")
	}
	p("# %s — %s\n\n%s: %s\n", t["title"], r.Month, t["period"], mdCell(periodText(r)))

	heading(SecFindings)
	p("| %s | %s | %s | %s | %s | %s |\n|---|---|---:|---|---|---|\n", t["check"], t["status"], t["value"], t["section"], t["controls"], t["why"])
	for i := range r.Findings {
		f := &r.Findings[i]
		p("| %s | **%s** | %s | [%s](#%s) | %s | %s |\n", mdCell(f.Title(lang)), statusText(t, f.Status), mdCell(valueText(t, f)),
			mdCell(sectionTitle(t, f.Section)), f.Section, mdCell(strings.Join(f.Controls, ", ")), mdCell(f.ReasonIn(lang)))
	}

	heading(SecScope)
	p("| | |\n|---|---|\n| %s | %s |\n", t["period"], mdCell(periodText(r)))
	p("| %s | %s |\n| %s | %d |\n| %s | %s |\n| %s | %s |\n| %s | %d |\n| %s | %s |\n", t["nodes"], mdCell(strings.Join(r.Nodes, ", ")), t["namespaces"], r.Namespaces,
		t["versions"], mdCell(strings.Join(r.Versions, ", ")), t["confighashes"], mdCell(strings.Join(r.ConfigHashes, ", ")), t["flows"], r.TotalFlows,
		t["excluded"], mdCell(excludedSummary(t, r)))
	p("\n**%s**\n\n| %s | %s | %s | %s | %s |\n|---|---|---|---|---|\n", t["configurations"], t["node"], t["version"], t["confighash"], t["firstseen"], t["lastseen"])
	for _, c := range r.Coverage {
		for _, s := range c.Configurations {
			p("| %s | %s | %s | %s | %s |\n", mdCell(c.Node), mdCell(s.Version), mdCell(s.ConfigHash), s.First.Format(minuteTime), s.Last.Format(minuteTime))
		}
	}

	p("\n**%s**\n\n", t["timeline"])
	if len(r.Timeline) == 0 {
		p("%s\n", t["nochanges"])
	} else {
		p("| %s | %s | %s |\n|---|---|---|\n", t["time"], t["node"], t["event"])
		for _, e := range r.Timeline {
			p("| %s | %s | %s |\n", e.Time.Format(minuteTime), mdCell(e.Node), mdCell(eventText(t, e)))
		}
	}

	heading(SecCoverage)
	p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
		t["node"], t["pct"], t["minutes"], t["lostmin"], t["downmin"], t["unexplainedmin"], t["hours"], t["collected"], t["notraffic"], t["withloss"], t["down"], t["losses"], t["first"])
	for _, c := range r.Coverage {
		p("| %s | %.2f | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s |\n", mdCell(c.Node), c.CoveragePct, c.Minutes, c.MinutesLost, c.MinutesDown, c.MinutesUnexplained,
			c.Hours, c.Collected, c.NoTraffic, c.WithLoss, c.Down, c.Losses, firstEvidence(c))
	}
	for _, c := range r.Coverage {
		if len(c.Gaps) == 0 {
			continue
		}
		p("\n**%s — %s**\n\n| %s | %s | %s |\n|---|---|---|\n", mdCell(c.Node), t["gaps"], t["from"], t["to"], t["cause"])
		for _, g := range c.Gaps {
			p("| %s | %s | %s |\n", g.From.Format(gapTime), g.To.Format(gapTime), mdCell(gapCause(t, g)))
		}
	}

	heading(SecTraffic)
	if pm := r.Previous; pm != nil {
		p("**%s**\n\n| | %s | %s | %s |\n|---|---:|---:|---:|\n", t["mom"], t["thismonth"], pm.Month, t["change"])
		for _, m := range momRows(t, r) {
			p("| %s | %s | %s | %s |\n", m.What, m.This, m.Last, m.Change)
		}
		p("\n")
	}
	p("| %s | %s |\n|---|---:|\n", t["verdict"], t["count"])
	for _, v := range r.Verdicts {
		p("| %s | %d |\n", mdCell(v.Key), v.Count)
	}
	if r.Previous != nil {
		p("\n**%s**\n\n| %s | %s | DROPPED | AUDIT | %s (%s) |\n|---|---:|---:|---:|---:|\n", t["daily"], t["day"], t["total"], t["lastmonth"], r.Previous.Month)
	} else {
		p("\n**%s**\n\n| %s | %s | DROPPED | AUDIT |\n|---|---:|---:|---:|\n", t["daily"], t["day"], t["total"])
	}
	for _, d := range r.Daily {
		p("| %s | %d | %d | %d |", d.Day, d.Total, d.Dropped, d.Audit)
		if r.Previous != nil {
			if v, ok := r.Previous.sameDay(d.Day); ok {
				p(" %d |", v)
			} else {
				p(" — |")
			}
		}
		p("\n")
	}

	heading(SecDenied)
	p("%s: %d\n\n%s: %d / %d\n\n%s: %d\n\n| %s | %s | %s | %s | %s | %s | %s | %s |\n|---|---|---|---|---|---|---|---:|\n", t["total"], r.DeniedTotal, t["new"], r.DeniedNewPairs, r.DeniedPairs, t["gone"], r.DeniedGonePairs,
		t["source"], t["destination"], t["port"], t["reason"], t["policy"], t["verdict"], t["new"], t["count"])
	for _, d := range r.Denied {
		isNew := ""
		if d.NewThisMonth {
			isNew = t["yes"]
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %d |\n", mdCell(d.Source), mdCell(d.Destination), mdCell(d.Protocol+"/"+d.Port), mdCell(d.Reason), mdCell(d.Policy), mdCell(d.Verdict), isNew, d.Count)
	}

	heading(SecPrivileged)
	p("| %s | %s |\n|---|---:|\n", t["port"], t["count"])
	for _, c := range r.PrivilegedByPort {
		p("| %s | %d |\n", mdCell(c.Key), c.Count)
	}
	p("\n| %s | %s | %s | %s | %s |\n|---|---|---|---|---:|\n", t["source"], t["destination"], t["port"], t["verdict"], t["count"])
	for _, u := range r.Privileged {
		p("| %s | %s | %s | %s | %d |\n", mdCell(u.Source), mdCell(u.Destination), mdCell(u.Protocol+"/"+u.Port), mdCell(u.Verdict), u.Count)
	}
	p("\n%s: %s\n", t["approved"], mdCell(approvedText(t, r.PrivilegedSources)))
	if r.PrivilegedSources != nil {
		p("\n**%s: %d**\n\n| %s | %s | %s | %s | %s |\n|---|---|---|---|---:|\n", t["unapproved"], r.PrivilegedUnapproved, t["source"], t["destination"], t["port"], t["verdict"], t["count"])
		for _, u := range r.PrivilegedUnapprovedTop {
			p("| %s | %s | %s | %s | %d |\n", mdCell(u.Source), mdCell(u.Destination), mdCell(u.Protocol+"/"+u.Port), mdCell(u.Verdict), u.Count)
		}
	}

	heading(SecZones)
	if len(r.Zones) == 0 {
		p("%s\n", findingTexts["no_zones"].In(lang))
	} else {
		p("| %s | %s | %s | %s | %s | %s |\n|---|---:|---:|---:|---:|---|\n", t["zone"], t["inbound"], t["unauthorized"], t["reached"], t["worldegress"], t["assertion"])
		for _, z := range r.Zones {
			p("| %s | %d | %d | %d | %d | %s |\n", mdCell(z.Name), z.Inbound, z.Unauthorized, z.UnauthorizedReached, z.WorldEgress, assertion(t, z))
		}
		for _, z := range r.Zones {
			for _, sec := range []struct {
				what string
				rows []Count
			}{{t["unauthorized"], z.Violations}, {t["worldegress"], z.WorldEgressTop}} {
				if len(sec.rows) == 0 {
					continue
				}
				p("\n**%s — %s**\n\n| | %s |\n|---|---:|\n", mdCell(z.Name), sec.what, t["count"])
				for _, c := range sec.rows {
					p("| %s | %d |\n", mdCell(c.Key), c.Count)
				}
			}
		}
	}

	heading(SecEgress)
	p("%s: %d\n", t["world"], r.WorldEgressTotal)
	for _, sec := range []struct {
		title string
		rows  []Count
	}{{t["world"], r.WorldEgress}, {t["talkers"], r.TopTalkers}, {t["http"], r.HTTPErrors}, {t["dns"], r.DNSFailures}} {
		p("\n### %s\n\n| | %s |\n|---|---:|\n", sec.title, t["count"])
		for _, c := range sec.rows {
			p("| %s | %d |\n", mdCell(c.Key), c.Count)
		}
	}

	heading(SecIntegrity)
	if iv := r.Integrity; iv != nil {
		p("| | |\n|---|---|\n| %s | %d |\n| %s | %d |\n| %s | %d |\n", t["files"], iv.Files, t["rows"], iv.Rows, t["findings"], len(iv.Findings))
		for _, f := range iv.Findings {
			p("| %s | %s: %s |\n", mdCell(f.Kind), mdCell(f.Path), mdCell(f.What))
		}
		p("| %s | %s |\n| %s | %d |\n| %s | %s |\n", t["oldest"], oldestText(t, r), t["retired"], iv.Retired, t["keyids"], mdCell(keyIDsText(t, iv.KeyIDs)))
		if len(r.Excluded) > 0 {
			p("\n**%s**\n\n| %s | %s | %s | %s |\n|---|---|---:|---|\n", t["excludedfiles"], t["path"], t["kind"], t["xrowscol"], t["cause"])
			for _, x := range r.Excluded {
				p("| %s | %s | %s | %s |\n", mdCell(x.Path), mdCell(x.Kind), rowsText(x.Rows), mdCell(x.Reason))
			}
		}
		p("\n%s:\n\n", t["heads"])
		for _, n := range sortedKeys(iv.ChainHeads) {
			p("- %s: `%s`\n", mdCell(n), iv.ChainHeads[n])
		}
	}

	heading(SecControls)
	p("%s\n\n| %s | %s | %s | %s | %s |\n|---|---|---|---|---|\n", t["controlsintro"], t["control"], t["checks"], t["sectionscol"], t["evidences"], t["limits"])
	for _, c := range r.Controls {
		var secs []string
		for _, s := range c.Sections {
			secs = append(secs, fmt.Sprintf("%d", SectionNumber(s)))
		}
		p("| **%s** %s: %s | %s | %s | %s | %s |\n", mdCell(c.ID), mdCell(c.Framework.In(lang)), mdCell(c.Title.In(lang)), mdCell(strings.Join(c.Checks, ", ")),
			strings.Join(secs, ", "), mdCell(c.Evidences.In(lang)), mdCell(c.Limits.In(lang)))
	}

	heading(SecSignoff)
	p("| %s | %s | %s |\n|---|---|---|\n| | | |\n", t["reviewer"], t["approver"], t["date"])
	heading(SecQueries)
	for _, q := range r.Queries {
		fence := codeFence(q.SQL)
		p("- %s:\n\n  %ssql\n  %s\n  %s\n", mdCell(q.Name), fence, strings.ReplaceAll(q.SQL, "\n", "\n  "), fence)
	}
	return nil
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

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": func(x float64) string { return fmt.Sprintf("%.2f", x) },
	"bar": barWidth,
	"heat": func(c byte) string {
		switch c {
		case '#':
			return "#2e7d32"
		case '.':
			return "#c8e6c9"
		case '!':
			return "#f9a825"
		case '~':
			return "#ef9a9a"
		case '-':
			return "#e0e0e0"
		}
		return "#c62828"
	},
	"bytes":     func(s string) []byte { return []byte(s) },
	"first":     firstEvidence,
	"gaptime":   func(t time.Time) string { return t.Format(gapTime) },
	"mintime":   func(t time.Time) string { return t.Format(minuteTime) },
	"cause":     gapCause,
	"mul":       func(a, b int) int { return a * b },
	"assertion": assertion,
	"rows":      rowsText,
	// The heatmap: a column per day, a row per hour, after the axes'
	// labels (hours on the left, days of the month on top).
	"hx":       func(d int) int { return heatLeft + d*10 },
	"hy":       func(h int) int { return heatTop + h*10 },
	"heatw":    func(days int) int { return heatLeft + days*10 },
	"daylabel": func(d int) bool { return d == 0 || (d+1)%5 == 0 },
	"inc":      func(i int) int { return i + 1 },
	"join":     func(s []string) string { return strings.Join(s, ", ") },
	"title":    sectionTitle,
	"status":   statusText,
	"value":    valueText,
	"reason":   func(f Finding, lang string) string { return f.ReasonIn(lang) },
	"ftitle":   func(f Finding, lang string) string { return f.Title(lang) },
	"in":       func(x Text, lang string) string { return x.In(lang) },
	"secnums": func(ids []string) string {
		var n []string
		for _, id := range ids {
			n = append(n, strconv.Itoa(SectionNumber(id)))
		}
		return strings.Join(n, ", ")
	},
	"approved": approvedText,
	"event":    eventText,
	"oldest":   oldestText,
	"keyids":   keyIDsText,
	"notext":   func(lang string) string { return findingTexts["no_zones"].In(lang) },
}).Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.T.title}} {{.R.Month}}</title>
<style>
body{font-family:system-ui,-apple-system,"Noto Sans KR",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;font-size:13px}
th{background:#f3f3f3}td.n{text-align:right}h2{border-bottom:2px solid #444;padding-bottom:.2em}
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap;font-size:12px}
.holds{color:#2e7d32;font-weight:bold}.violated{color:#c62828;font-weight:bold}.not_evaluated{color:#6d6d6d;font-weight:bold}
p.controls{font-size:12px;color:#555}
td.holds,td.violated,td.not_evaluated,td.n{white-space:nowrap}:lang(ko) td,:lang(ko) th{word-break:keep-all}
@page{margin:14mm;@bottom-right{content:counter(page)}@bottom-left{content:{{.Footer}};font-size:7pt;color:#555}}
@media print{body{margin:0}td,th{font-size:10px}section{break-before:page}section#findings{break-before:auto}table{page-break-inside:avoid}a{color:inherit;text-decoration:none}}
</style></head><body>
<h1>{{.T.title}} — {{.R.Month}}</h1>
<p>{{.T.period}}: {{.Period}}</p>
{{define "controls"}}{{with .SectionControls}}<p class="controls">{{$.T.controlsline}}: {{join .}}</p>{{end}}{{end}}
<section id="findings"><h2>{{title .T "findings"}}</h2>{{template "controls" (.With "findings")}}
<table><tr><th>{{.T.check}}</th><th>{{.T.status}}</th><th>{{.T.value}}</th><th>{{.T.section}}</th><th>{{.T.controls}}</th><th>{{.T.why}}</th></tr>
{{range .R.Findings}}<tr><td>{{ftitle . $.Lang}}</td><td class="{{.Status}}">{{status $.T .Status}}</td><td class="n">{{value $.T .}}</td><td><a href="#{{.Section}}">{{title $.T .Section}}</a></td><td>{{join .Controls}}</td><td>{{reason . $.Lang}}</td></tr>
{{end}}</table></section>
<section id="scope"><h2>{{title .T "scope"}}</h2>{{template "controls" (.With "scope")}}
<table><tr><th>{{.T.period}}</th><td>{{.Period}}</td></tr>
<tr><th>{{.T.nodes}}</th><td>{{range .R.Nodes}}{{.}} {{end}}</td></tr>
<tr><th>{{.T.namespaces}}</th><td class="n">{{.R.Namespaces}}</td></tr>
<tr><th>{{.T.versions}}</th><td>{{range .R.Versions}}{{.}} {{end}}</td></tr>
<tr><th>{{.T.confighashes}}</th><td>{{range .R.ConfigHashes}}{{.}} {{end}}</td></tr>
<tr><th>{{.T.flows}}</th><td class="n">{{.R.TotalFlows}}</td></tr>
<tr><th>{{.T.excluded}}</th><td>{{.Excluded}}</td></tr></table>
<p>{{.T.configurations}}</p>
<table><tr><th>{{.T.node}}</th><th>{{.T.version}}</th><th>{{.T.confighash}}</th><th>{{.T.firstseen}}</th><th>{{.T.lastseen}}</th></tr>
{{range .R.Coverage}}{{$n := .Node}}{{range .Configurations}}<tr><td>{{$n}}</td><td>{{.Version}}</td><td>{{.ConfigHash}}</td><td>{{mintime .First}}</td><td>{{mintime .Last}}</td></tr>{{end}}{{end}}</table>
<p>{{.T.timeline}}</p>
{{if .R.Timeline}}<table><tr><th>{{.T.time}}</th><th>{{.T.node}}</th><th>{{.T.event}}</th></tr>
{{range .R.Timeline}}<tr><td>{{mintime .Time}}</td><td>{{.Node}}</td><td>{{event $.T .}}</td></tr>{{end}}</table>{{else}}<p>{{.T.nochanges}}</p>{{end}}</section>
<section id="coverage"><h2>{{title .T "coverage"}}</h2>{{template "controls" (.With "coverage")}}
<table><tr><th>{{.T.node}}</th><th>{{.T.pct}}</th><th>{{.T.minutes}}</th><th>{{.T.lostmin}}</th><th>{{.T.downmin}}</th><th>{{.T.unexplainedmin}}</th><th>{{.T.hours}}</th><th>{{.T.collected}}</th><th>{{.T.notraffic}}</th><th>{{.T.withloss}}</th><th>{{.T.down}}</th><th>{{.T.losses}}</th><th>{{.T.first}}</th></tr>
{{range .R.Coverage}}<tr><td>{{.Node}}</td><td class="n">{{pct .CoveragePct}}</td><td class="n">{{.Minutes}}</td><td class="n">{{.MinutesLost}}</td><td class="n">{{.MinutesDown}}</td><td class="n">{{.MinutesUnexplained}}</td><td class="n">{{.Hours}}</td><td class="n">{{.Collected}}</td><td class="n">{{.NoTraffic}}</td><td class="n">{{.WithLoss}}</td><td class="n">{{.Down}}</td><td class="n">{{.Losses}}</td><td>{{first .}}</td></tr>{{end}}</table>
{{range .R.Coverage}}{{if .Gaps}}<p><b>{{.Node}} — {{$.T.gaps}}</b></p>
<table><tr><th>{{$.T.from}}</th><th>{{$.T.to}}</th><th>{{$.T.cause}}</th></tr>
{{range .Gaps}}<tr><td>{{gaptime .From}}</td><td>{{gaptime .To}}</td><td>{{cause $.T .}}</td></tr>{{end}}</table>{{end}}{{end}}
<p>{{.T.heatmap}}</p>
{{range .R.Coverage}}<div>{{.Node}}</div><svg xmlns="http://www.w3.org/2000/svg" width="{{heatw (len .Heatmap)}}" height="{{hy 24}}" role="img" aria-label="coverage {{.Node}}">
<text x="0" y="10" font-size="9">{{$.T.axishour}}\{{$.T.axisday}}</text>{{range $d, $day := .Heatmap}}{{if daylabel $d}}<text x="{{hx $d}}" y="10" font-size="9">{{inc $d}}</text>{{end}}{{end}}
{{range $h := $.HeatHours}}<text x="0" y="{{hy $h}}" dy="8" font-size="9">{{printf "%02d" $h}}</text>{{end}}
{{range $d, $day := .Heatmap}}{{range $h, $c := bytes $day}}<rect x="{{hx $d}}" y="{{hy $h}}" width="9" height="9" fill="{{heat $c}}"/>{{end}}{{end}}</svg>{{end}}</section>
<section id="traffic"><h2>{{title .T "traffic"}}</h2>{{template "controls" (.With "traffic")}}
{{with .R.Previous}}<p><b>{{$.T.mom}}</b></p><table><tr><th></th><th>{{$.T.thismonth}}</th><th>{{.Month}}</th><th>{{$.T.change}}</th></tr>
{{range $.MoM}}<tr><td>{{.What}}</td><td class="n">{{.This}}</td><td class="n">{{.Last}}</td><td class="n">{{.Change}}</td></tr>{{end}}</table>{{end}}
<table><tr><th>{{.T.verdict}}</th><th>{{.T.count}}</th></tr>{{range .R.Verdicts}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>
<p>{{.T.daily}}{{if .PrevLine}} ({{.T.prevline}}){{end}}</p>
<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{{mul (len .R.Daily) 14}}" role="img" aria-label="daily volume">
{{$max := .MaxDay}}{{range $i, $d := .R.Daily}}<text x="0" y="{{mul $i 14 | printf "%d"}}" dy="11" font-size="11">{{$d.Day}}</text><rect x="80" y="{{mul $i 14}}" width="{{bar $d.Total $max}}" height="11" fill="#1565c0"/><rect x="80" y="{{mul $i 14}}" width="{{bar $d.Dropped $max}}" height="11" fill="#c62828"/><text x="{{bar $d.Total $max | printf "%d"}}" dx="85" y="{{mul $i 14}}" dy="11" font-size="11">{{$d.Total}}</text>{{end}}{{if .PrevLine}}<polyline points="{{.PrevLine}}" fill="none" stroke="#555" stroke-width="1.5"/>{{end}}</svg></section>
<section id="denied"><h2>{{title .T "denied"}}</h2>{{template "controls" (.With "denied")}}
<p>{{.T.total}}: {{.R.DeniedTotal}}</p>
<p>{{.T.new}}: {{.R.DeniedNewPairs}} / {{.R.DeniedPairs}}</p>
<p>{{.T.gone}}: {{.R.DeniedGonePairs}}</p>
{{if .DeniedBars}}<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{{mul (len .DeniedBars) 14}}" role="img" aria-label="top denied">
{{range $i, $b := .DeniedBars}}<text x="0" y="{{mul $i 14}}" dy="11" font-size="11">{{$b.Label}}</text><rect x="420" y="{{mul $i 14}}" width="{{$b.Width}}" height="11" fill="#c62828"/><text x="{{$b.Width}}" dx="425" y="{{mul $i 14}}" dy="11" font-size="11">{{$b.Count}}</text>{{end}}</svg>{{end}}
<table><tr><th>{{.T.source}}</th><th>{{.T.destination}}</th><th>{{.T.port}}</th><th>{{.T.reason}}</th><th>{{.T.policy}}</th><th>{{.T.verdict}}</th><th>{{.T.new}}</th><th>{{.T.count}}</th></tr>
{{range .R.Denied}}<tr><td>{{.Source}}</td><td>{{.Destination}}</td><td>{{.Protocol}}/{{.Port}}</td><td>{{.Reason}}</td><td>{{.Policy}}</td><td>{{.Verdict}}</td><td>{{if .NewThisMonth}}{{$.T.yes}}{{end}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table></section>
<section id="privileged"><h2>{{title .T "privileged"}}</h2>{{template "controls" (.With "privileged")}}
<table><tr><th>{{.T.port}}</th><th>{{.T.count}}</th></tr>{{range .R.PrivilegedByPort}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>
<table><tr><th>{{.T.source}}</th><th>{{.T.destination}}</th><th>{{.T.port}}</th><th>{{.T.verdict}}</th><th>{{.T.count}}</th></tr>
{{range .R.Privileged}}<tr><td>{{.Source}}</td><td>{{.Destination}}</td><td>{{.Protocol}}/{{.Port}}</td><td>{{.Verdict}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>
<p>{{.T.approved}}: {{approved .T .R.PrivilegedSources}}</p>
{{if .R.PrivilegedSources}}<p><b>{{.T.unapproved}}: {{.R.PrivilegedUnapproved}}</b></p>
<table><tr><th>{{.T.source}}</th><th>{{.T.destination}}</th><th>{{.T.port}}</th><th>{{.T.verdict}}</th><th>{{.T.count}}</th></tr>
{{range .R.PrivilegedUnapprovedTop}}<tr><td>{{.Source}}</td><td>{{.Destination}}</td><td>{{.Protocol}}/{{.Port}}</td><td>{{.Verdict}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>{{end}}</section>
<section id="zones"><h2>{{title .T "zones"}}</h2>{{template "controls" (.With "zones")}}
{{if .R.Zones}}<table><tr><th>{{.T.zone}}</th><th>{{.T.inbound}}</th><th>{{.T.unauthorized}}</th><th>{{.T.reached}}</th><th>{{.T.worldegress}}</th><th>{{.T.assertion}}</th></tr>
{{range .R.Zones}}<tr><td>{{.Name}}</td><td class="n">{{.Inbound}}</td><td class="n">{{.Unauthorized}}</td><td class="n">{{.UnauthorizedReached}}</td><td class="n">{{.WorldEgress}}</td><td>{{assertion $.T .}}</td></tr>{{end}}</table>
{{range .R.Zones}}{{$z := .}}{{if .Violations}}<p>{{.Name}} — {{$.T.unauthorized}}</p><table>{{range .Violations}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>{{end}}{{if .WorldEgressTop}}<p>{{$z.Name}} — {{$.T.worldegress}}</p><table>{{range .WorldEgressTop}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>{{end}}{{end}}{{else}}<p>{{notext .Lang}}</p>{{end}}</section>
<section id="egress"><h2>{{title .T "egress"}}</h2>{{template "controls" (.With "egress")}}
<p>{{.T.world}}: {{.R.WorldEgressTotal}}</p>
{{range .Lists}}<h3>{{.Title}}</h3><table>{{range .Rows}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>{{end}}</section>
<section id="integrity"><h2>{{title .T "integrity"}}</h2>{{template "controls" (.With "integrity")}}
{{with .R.Integrity}}<table><tr><th>{{$.T.files}}</th><td class="n">{{.Files}}</td></tr><tr><th>{{$.T.rows}}</th><td class="n">{{.Rows}}</td></tr><tr><th>{{$.T.findings}}</th><td class="n">{{len .Findings}}</td></tr>
<tr><th>{{$.T.oldest}}</th><td>{{oldest $.T $.R}}</td></tr><tr><th>{{$.T.retired}}</th><td class="n">{{.Retired}}</td></tr><tr><th>{{$.T.keyids}}</th><td>{{keyids $.T .KeyIDs}}</td></tr></table>
{{range .Findings}}<p>{{.Kind}}: {{.Path}}: {{.What}}</p>{{end}}
{{if $.R.Excluded}}<p>{{$.T.excludedfiles}}</p><table><tr><th>{{$.T.path}}</th><th>{{$.T.kind}}</th><th>{{$.T.xrowscol}}</th><th>{{$.T.cause}}</th></tr>
{{range $.R.Excluded}}<tr><td>{{.Path}}</td><td>{{.Kind}}</td><td class="n">{{rows .Rows}}</td><td>{{.Reason}}</td></tr>{{end}}</table>{{end}}
<p>{{$.T.heads}}:</p><ul>{{range $n, $h := .ChainHeads}}<li>{{$n}}: <code>{{$h}}</code></li>{{end}}</ul>{{end}}</section>
<section id="controls"><h2>{{title .T "controls"}}</h2>
<p>{{.T.controlsintro}}</p>
<table><tr><th>{{.T.control}}</th><th>{{.T.checks}}</th><th>{{.T.sectionscol}}</th><th>{{.T.evidences}}</th><th>{{.T.limits}}</th></tr>
{{range .R.Controls}}<tr><td><b>{{.ID}}</b> {{in .Framework $.Lang}}: {{in .Title $.Lang}}</td><td>{{join .Checks}}</td><td>{{secnums .Sections}}</td><td>{{in .Evidences $.Lang}}</td><td>{{in .Limits $.Lang}}</td></tr>
{{end}}</table></section>
<section id="signoff"><h2>{{title .T "signoff"}}</h2>{{template "controls" (.With "signoff")}}<table><tr><th>{{.T.reviewer}}</th><th>{{.T.approver}}</th><th>{{.T.date}}</th></tr><tr><td style="height:3em;width:14em"></td><td style="width:14em"></td><td style="width:10em"></td></tr></table></section>
<section id="queries"><h2>{{title .T "queries"}}</h2>{{range .R.Queries}}<p>{{.Name}}</p><pre>{{.SQL}}</pre>{{end}}</section>
</body></html>
`))

// The heatmap's margins for its axis labels, in SVG units.
const heatLeft, heatTop = 30, 14

// htmlData is what the HTML template renders.
type htmlData struct {
	R         *Report
	T         map[string]string
	Lang      string
	MaxDay    int64
	Excluded  string
	Period    string
	Lists     []htmlList
	HeatHours []int
	MoM       []momRow
	// DeniedBars are the first denied groups as bars (at most 10).
	DeniedBars []bar
	ID         string // the section of a "controls" template call
	// PrevLine is the daily chart's line of last month (SVG points), or "".
	PrevLine string
	// Footer is what each printed page's footer says the report was
	// computed from (the manifest chain heads), as a CSS string.
	Footer template.CSS
}

type htmlList struct {
	Title string
	Rows  []Count
}

// SectionControls are the controls of the section of a "controls" call.
func (d htmlData) SectionControls() []string { return d.R.sectionControls(d.ID) }

// With is d for the section id.
func (d htmlData) With(id string) htmlData { d.ID = id; return d }

// RenderHTML writes a self-contained HTML page (inline CSS and SVG). Every
// value is escaped by html/template.
func RenderHTML(w io.Writer, r *Report, lang string) error {
	t := tr(lang)
	var max int64
	for _, d := range r.Daily {
		if d.Total > max {
			max = d.Total
		}
		if v, ok := r.Previous.sameDay(d.Day); ok && v > max {
			max = v
		}
	}
	return htmlTmpl.Execute(w, htmlData{
		R: r, T: t, Lang: lang, MaxDay: max, Excluded: excludedSummary(t, r), Period: periodText(r), HeatHours: []int{0, 6, 12, 18}, MoM: momRows(t, r), DeniedBars: deniedBars(r),
		Footer: cssString(footerText(t, r)), PrevLine: prevLine(r, max),
		Lists: []htmlList{{t["world"], r.WorldEgress}, {t["talkers"], r.TopTalkers}, {t["http"], r.HTTPErrors}, {t["dns"], r.DNSFailures}},
	})
}

// barWidth is the daily chart's bar for v, the largest day being max.
func barWidth(v, max int64) int {
	if max == 0 {
		return 0
	}
	return int(300 * v / max)
}

// prevLine is the daily chart's line of last month's flows on the same day
// of the month, as SVG polyline points over the bars (scaled as "bar"); ""
// without a previous month.
func prevLine(r *Report, max int64) string {
	if r.Previous == nil || max == 0 {
		return ""
	}
	var b strings.Builder
	for i, d := range r.Daily {
		if v, ok := r.Previous.sameDay(d.Day); ok {
			fmt.Fprintf(&b, "%d,%d ", 80+barWidth(v, max), i*14+5)
		}
	}
	return strings.TrimSpace(b.String())
}

// footerText names the manifest chain heads the report was computed from,
// for the printed pages' footer: each head's first 16 hex digits for up to
// three chains; beyond that, too many for a footer, the SHA-256 of the
// section's list ("name head" lines, sorted by name) and the number of
// chains, so that a printed page still pins the evidence.
func footerText(t map[string]string, r *Report) string {
	if r.Integrity == nil || len(r.Integrity.ChainHeads) == 0 {
		return r.Month
	}
	heads := r.Integrity.ChainHeads
	names := sortedKeys(heads)
	var b strings.Builder
	b.WriteString(r.Month + " · " + t["heads"] + ": ")
	if len(names) <= 3 {
		for i, n := range names {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(n + " " + shortHex(heads[n]))
		}
		return b.String()
	}
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s %s\n", n, heads[n])
	}
	fmt.Fprintf(&b, "%d, sha256 %x", len(names), h.Sum(nil)[:8])
	return b.String()
}

// cssString quotes s as a CSS string literal, every character that could
// end the string, the rule or the style element escaped (html/template
// refuses a value inside a nested @page rule; node names come from the
// archive).
func cssString(s string) template.CSS {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" -_./:;,·…", r) {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "\\%x ", r)
		}
	}
	b.WriteByte('"')
	return template.CSS(b.String())
}

func shortHex(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// csvCell neutralises spreadsheet formula prefixes.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// RenderCSV writes one CSV file per table into dir.
func RenderCSV(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, header []string, rows [][]string) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		w := csv.NewWriter(f)
		_ = w.Write(header)
		for _, row := range rows {
			for i := range row {
				row[i] = csvCell(row[i])
			}
			_ = w.Write(row)
		}
		w.Flush()
		if err := w.Error(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	var rows [][]string
	for _, f := range r.Findings {
		value := ""
		if f.Value != nil {
			value = strconv.FormatFloat(*f.Value, 'f', -1, 64)
		}
		rows = append(rows, []string{f.Check, f.Status, value, f.Unit, f.Section, strings.Join(f.Controls, " "), f.Reason})
	}
	if err := write("findings.csv", []string{"check", "status", "value", "unit", "section", "controls", "reason"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, v := range r.Verdicts {
		rows = append(rows, []string{v.Key, fmt.Sprint(v.Count)})
	}
	if err := write("verdicts.csv", []string{"verdict", "count"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, d := range r.Daily {
		rows = append(rows, []string{d.Day, fmt.Sprint(d.Total), fmt.Sprint(d.Dropped), fmt.Sprint(d.Audit)})
	}
	if err := write("daily.csv", []string{"day", "total", "dropped", "audit"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, c := range r.Coverage {
		rows = append(rows, []string{c.Node, fmt.Sprint(c.Hours), fmt.Sprint(c.Collected), fmt.Sprint(c.NoTraffic), fmt.Sprint(c.Partial), fmt.Sprint(c.WithLoss), fmt.Sprint(c.Down),
			fmt.Sprint(c.BeforeFirst), fmt.Sprint(c.AfterReport), fmt.Sprint(c.Minutes), fmt.Sprint(c.MinutesCollected), fmt.Sprint(c.MinutesLost), fmt.Sprint(c.MinutesDown),
			fmt.Sprintf("%.2f", c.CoveragePct), fmt.Sprint(c.Losses), fmt.Sprint(c.LostEvents), fmt.Sprint(c.DecodeErrors), firstEvidence(c)})
	}
	if err := write("coverage.csv", []string{"node", "hours", "hours_collected", "hours_no_traffic", "hours_partial", "hours_with_loss", "hours_collector_down",
		"hours_before_first_evidence", "hours_after_report", "minutes", "minutes_collected", "minutes_lost", "minutes_collector_down",
		"coverage_pct", "losses", "hubble_lost_events", "decode_errors", "first_evidence"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, c := range r.Coverage {
		for _, g := range c.Gaps {
			rows = append(rows, []string{c.Node, g.From.Format(time.RFC3339Nano), g.To.Format(time.RFC3339Nano), g.Reason, g.Amount,
				optInt(g.LostEvents), optInt(g.LostBytes), optInt(g.EstimatedEvents), g.EstimateBasis, g.Cause})
		}
	}
	if err := write("gaps.csv", []string{"node", "from", "to", "reason", "amount", "lost_events", "lost_bytes", "estimated_events", "estimate_basis", "cause"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, d := range r.Denied {
		rows = append(rows, []string{d.Source, d.Destination, d.Protocol, d.Port, d.Reason, d.Policy, d.Verdict, fmt.Sprint(d.NewThisMonth), fmt.Sprint(d.Count)})
	}
	if err := write("denied.csv", []string{"source", "destination", "protocol", "port", "drop_reason", "policy", "verdict", "new_this_month", "count"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, u := range r.Privileged {
		rows = append(rows, []string{u.Source, u.Destination, u.Protocol, u.Port, u.Verdict, fmt.Sprint(u.Count)})
	}
	if err := write("privileged.csv", []string{"source", "destination", "protocol", "port", "verdict", "count"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, z := range r.Zones {
		rows = append(rows, []string{z.Name, fmt.Sprint(z.InternalOnly), fmt.Sprint(z.Inbound), fmt.Sprint(z.Unauthorized), fmt.Sprint(z.UnauthorizedReached), fmt.Sprint(z.WorldEgress), fmt.Sprint(z.AssertionHolds)})
	}
	if err := write("zones.csv", []string{"zone", "internal_only", "inbound_flows", "unauthorized_flows", "unauthorized_reached_flows", "world_egress_flows", "internal_only_assertion_holds"}, rows); err != nil {
		return err
	}
	rows = nil
	for _, x := range r.Excluded {
		rows = append(rows, []string{x.Path, x.Table, x.Kind, rowsText(x.Rows), x.Reason})
	}
	if err := write("excluded.csv", []string{"path", "table", "kind", "rows", "reason"}, rows); err != nil {
		return err
	}
	for _, l := range []struct {
		name string
		rows []Count
	}{{"top_talkers.csv", r.TopTalkers}, {"world_egress.csv", r.WorldEgress}, {"http_errors.csv", r.HTTPErrors}, {"dns_failures.csv", r.DNSFailures}, {"privileged_by_port.csv", r.PrivilegedByPort}} {
		rows = nil
		for _, c := range l.rows {
			rows = append(rows, []string{c.Key, fmt.Sprint(c.Count)})
		}
		if err := write(l.name, []string{"key", "count"}, rows); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
