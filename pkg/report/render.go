package report

import (
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
		"count": "Count", "daily": "Daily volume", "day": "Day", "total": "Total", "denied": "Denied traffic (DROPPED and AUDIT)",
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
	},
	"ko": {
		"title": "네트워크 트래픽 증적 보고서", "period": "기간", "scope": "범위", "nodes": "노드",
		"namespaces": "네임스페이스", "versions": "수집기 버전", "confighashes": "설정 해시",
		"coverage": "수집 커버리지", "node": "노드", "hours": "시간", "collected": "수집됨",
		"notraffic": "트래픽 없음", "down": "수집기 중단", "pct": "커버리지 %", "gaps": "공백",
		"lost": "Hubble 유실 이벤트", "decode": "디코딩 오류", "verdicts": "판정별 합계", "verdict": "판정",
		"count": "건수", "daily": "일별 건수", "day": "일자", "total": "합계", "denied": "차단된 트래픽 (DROPPED, AUDIT)",
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
	p("# %s — %s\n\n", t["title"], r.Month)
	p("| | |\n|---|---|\n| %s | %s – %s (%s; UTC %s – %s) |\n", t["period"], r.FromUTC.In(loc(r)).Format("2006-01-02 15:04"), r.ToUTC.In(loc(r)).Format("2006-01-02 15:04"), mdCell(r.TimeZone), r.FromUTC.Format("2006-01-02T15:04Z"), r.ToUTC.Format("2006-01-02T15:04Z"))
	p("| %s | %s |\n| %s | %d |\n| %s | %s |\n| %s | %s |\n| %s | %d |\n| %s | %s |\n\n", t["nodes"], mdCell(strings.Join(r.Nodes, ", ")), t["namespaces"], r.Namespaces,
		t["versions"], mdCell(strings.Join(r.Versions, ", ")), t["confighashes"], mdCell(strings.Join(r.ConfigHashes, ", ")), t["flows"], r.TotalFlows,
		t["excluded"], mdCell(excludedSummary(t, r)))
	p("## 1. %s\n\n| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
		t["coverage"], t["node"], t["pct"], t["minutes"], t["lostmin"], t["downmin"], t["hours"], t["collected"], t["notraffic"], t["withloss"], t["down"], t["losses"], t["first"])
	for _, c := range r.Coverage {
		p("| %s | %.2f | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s |\n", mdCell(c.Node), c.CoveragePct, c.Minutes, c.MinutesLost, c.MinutesDown,
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
	p("\n## 2. %s\n\n| %s | %s |\n|---|---:|\n", t["verdicts"], t["verdict"], t["count"])
	for _, v := range r.Verdicts {
		p("| %s | %d |\n", mdCell(v.Key), v.Count)
	}
	p("\n## 3. %s\n\n| %s | %s | DROPPED | AUDIT |\n|---|---:|---:|---:|\n", t["daily"], t["day"], t["total"])
	for _, d := range r.Daily {
		p("| %s | %d | %d | %d |\n", d.Day, d.Total, d.Dropped, d.Audit)
	}
	p("\n## 4. %s (%d)\n\n%s: %d / %d\n\n| %s | %s | %s | %s | %s | %s | %s | %s |\n|---|---|---|---|---|---|---|---:|\n", t["denied"], r.DeniedTotal, t["new"], r.DeniedNewPairs, r.DeniedPairs,
		t["source"], t["destination"], t["port"], t["reason"], t["policy"], t["verdict"], t["new"], t["count"])
	for _, d := range r.Denied {
		isNew := ""
		if d.NewThisMonth {
			isNew = t["yes"]
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %d |\n", mdCell(d.Source), mdCell(d.Destination), mdCell(d.Protocol+"/"+d.Port), mdCell(d.Reason), mdCell(d.Policy), mdCell(d.Verdict), isNew, d.Count)
	}
	p("\n## 5. %s\n\n| %s | %s |\n|---|---:|\n", t["privileged"], t["port"], t["count"])
	for _, c := range r.PrivilegedByPort {
		p("| %s | %d |\n", mdCell(c.Key), c.Count)
	}
	p("\n| %s | %s | %s | %s | %s |\n|---|---|---|---|---:|\n", t["source"], t["destination"], t["port"], t["verdict"], t["count"])
	for _, u := range r.Privileged {
		p("| %s | %s | %s | %s | %d |\n", mdCell(u.Source), mdCell(u.Destination), mdCell(u.Protocol+"/"+u.Port), mdCell(u.Verdict), u.Count)
	}
	if len(r.Zones) > 0 {
		p("\n## 6. %s\n\n| %s | %s | %s | %s | %s |\n|---|---:|---:|---:|---|\n", t["zones"], t["zone"], t["inbound"], t["unauthorized"], t["worldegress"], t["assertion"])
		for _, z := range r.Zones {
			p("| %s | %d | %d | %d | %s |\n", mdCell(z.Name), z.Inbound, z.Unauthorized, z.WorldEgress, assertion(t, z))
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
	for _, sec := range []struct {
		title string
		rows  []Count
	}{{t["world"], r.WorldEgress}, {t["talkers"], r.TopTalkers}, {t["http"], r.HTTPErrors}, {t["dns"], r.DNSFailures}} {
		p("\n## %s\n\n| | %s |\n|---|---:|\n", sec.title, t["count"])
		for _, c := range sec.rows {
			p("| %s | %d |\n", mdCell(c.Key), c.Count)
		}
	}
	if iv := r.Integrity; iv != nil {
		p("\n## %s\n\n| | |\n|---|---|\n| %s | %d |\n| %s | %d |\n| %s | %d |\n", t["integrity"], t["files"], iv.Files, t["rows"], iv.Rows, t["findings"], len(iv.Findings))
		for _, f := range iv.Findings {
			p("| %s | %s: %s |\n", mdCell(f.Kind), mdCell(f.Path), mdCell(f.What))
		}
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
	p("\n## %s\n\n| %s | %s | %s |\n|---|---|---|\n| | | |\n", t["signoff"], t["reviewer"], t["approver"], t["date"])
	p("\n## %s\n\n", t["sql"])
	for _, q := range r.Queries {
		fence := codeFence(q.SQL)
		p("- %s:\n\n  %ssql\n  %s\n  %s\n", mdCell(q.Name), fence, strings.ReplaceAll(q.SQL, "\n", "\n  "), fence)
	}
	return nil
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
	"bar": func(v, max int64) int {
		if max == 0 {
			return 0
		}
		return int(300 * v / max)
	},
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
	"cause":     gapCause,
	"mul":       func(a, b int) int { return a * b },
	"assertion": assertion,
	"rows":      rowsText,
}).Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.T.title}} {{.R.Month}}</title>
<style>
body{font-family:system-ui,-apple-system,"Noto Sans KR",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;font-size:13px}
th{background:#f3f3f3}td.n{text-align:right}h2{border-bottom:2px solid #444;padding-bottom:.2em}
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap;font-size:12px}
@media print{body{margin:0}h2{page-break-before:auto}table{page-break-inside:avoid}}
</style></head><body>
<h1>{{.T.title}} — {{.R.Month}}</h1>
<table><tr><th>{{.T.period}}</th><td>{{.R.FromUTC}} – {{.R.ToUTC}} (UTC; {{.R.TimeZone}})</td></tr>
<tr><th>{{.T.nodes}}</th><td>{{range .R.Nodes}}{{.}} {{end}}</td></tr>
<tr><th>{{.T.namespaces}}</th><td class="n">{{.R.Namespaces}}</td></tr>
<tr><th>{{.T.versions}}</th><td>{{range .R.Versions}}{{.}} {{end}}</td></tr>
<tr><th>{{.T.confighashes}}</th><td>{{range .R.ConfigHashes}}{{.}} {{end}}</td></tr>
<tr><th>{{.T.flows}}</th><td class="n">{{.R.TotalFlows}}</td></tr>
<tr><th>{{.T.excluded}}</th><td>{{.Excluded}}</td></tr></table>
<h2>1. {{.T.coverage}}</h2>
<table><tr><th>{{.T.node}}</th><th>{{.T.pct}}</th><th>{{.T.minutes}}</th><th>{{.T.lostmin}}</th><th>{{.T.downmin}}</th><th>{{.T.hours}}</th><th>{{.T.collected}}</th><th>{{.T.notraffic}}</th><th>{{.T.withloss}}</th><th>{{.T.down}}</th><th>{{.T.losses}}</th><th>{{.T.first}}</th></tr>
{{range .R.Coverage}}<tr><td>{{.Node}}</td><td class="n">{{pct .CoveragePct}}</td><td class="n">{{.Minutes}}</td><td class="n">{{.MinutesLost}}</td><td class="n">{{.MinutesDown}}</td><td class="n">{{.Hours}}</td><td class="n">{{.Collected}}</td><td class="n">{{.NoTraffic}}</td><td class="n">{{.WithLoss}}</td><td class="n">{{.Down}}</td><td class="n">{{.Losses}}</td><td>{{first .}}</td></tr>{{end}}</table>
{{range .R.Coverage}}{{if .Gaps}}<p><b>{{.Node}} — {{$.T.gaps}}</b></p>
<table><tr><th>{{$.T.from}}</th><th>{{$.T.to}}</th><th>{{$.T.cause}}</th></tr>
{{range .Gaps}}<tr><td>{{gaptime .From}}</td><td>{{gaptime .To}}</td><td>{{cause $.T .}}</td></tr>{{end}}</table>{{end}}{{end}}
<p>{{.T.heatmap}}</p>
{{range .R.Coverage}}<div>{{.Node}}</div><svg xmlns="http://www.w3.org/2000/svg" width="{{mul (len .Heatmap) 10}}" height="240" role="img" aria-label="coverage {{.Node}}">
{{range $d, $day := .Heatmap}}{{range $h, $c := bytes $day}}<rect x="{{mul $d 10}}" y="{{mul $h 10}}" width="9" height="9" fill="{{heat $c}}"/>{{end}}{{end}}</svg>{{end}}
<h2>2. {{.T.verdicts}}</h2>
<table><tr><th>{{.T.verdict}}</th><th>{{.T.count}}</th></tr>{{range .R.Verdicts}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>
<h2>3. {{.T.daily}}</h2>
<svg xmlns="http://www.w3.org/2000/svg" width="760" height="{{mul (len .R.Daily) 14}}" role="img" aria-label="daily volume">
{{$max := .MaxDay}}{{range $i, $d := .R.Daily}}<text x="0" y="{{mul $i 14 | printf "%d"}}" dy="11" font-size="11">{{$d.Day}}</text><rect x="80" y="{{mul $i 14}}" width="{{bar $d.Total $max}}" height="11" fill="#1565c0"/><rect x="80" y="{{mul $i 14}}" width="{{bar $d.Dropped $max}}" height="11" fill="#c62828"/><text x="{{bar $d.Total $max | printf "%d"}}" dx="85" y="{{mul $i 14}}" dy="11" font-size="11">{{$d.Total}}</text>{{end}}</svg>
<h2>4. {{.T.denied}} ({{.R.DeniedTotal}})</h2>
<p>{{.T.new}}: {{.R.DeniedNewPairs}} / {{.R.DeniedPairs}}</p>
<table><tr><th>{{.T.source}}</th><th>{{.T.destination}}</th><th>{{.T.port}}</th><th>{{.T.reason}}</th><th>{{.T.policy}}</th><th>{{.T.verdict}}</th><th>{{.T.new}}</th><th>{{.T.count}}</th></tr>
{{range .R.Denied}}<tr><td>{{.Source}}</td><td>{{.Destination}}</td><td>{{.Protocol}}/{{.Port}}</td><td>{{.Reason}}</td><td>{{.Policy}}</td><td>{{.Verdict}}</td><td>{{if .NewThisMonth}}{{$.T.yes}}{{end}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>
<h2>5. {{.T.privileged}}</h2>
<table><tr><th>{{.T.port}}</th><th>{{.T.count}}</th></tr>{{range .R.PrivilegedByPort}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>
<table><tr><th>{{.T.source}}</th><th>{{.T.destination}}</th><th>{{.T.port}}</th><th>{{.T.verdict}}</th><th>{{.T.count}}</th></tr>
{{range .R.Privileged}}<tr><td>{{.Source}}</td><td>{{.Destination}}</td><td>{{.Protocol}}/{{.Port}}</td><td>{{.Verdict}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>
{{if .R.Zones}}<h2>6. {{.T.zones}}</h2>
<table><tr><th>{{.T.zone}}</th><th>{{.T.inbound}}</th><th>{{.T.unauthorized}}</th><th>{{.T.worldegress}}</th><th>{{.T.assertion}}</th></tr>
{{range .R.Zones}}<tr><td>{{.Name}}</td><td class="n">{{.Inbound}}</td><td class="n">{{.Unauthorized}}</td><td class="n">{{.WorldEgress}}</td><td>{{assertion $.T .}}</td></tr>{{end}}</table>
{{range .R.Zones}}{{$z := .}}{{if .Violations}}<p>{{.Name}} — {{$.T.unauthorized}}</p><table>{{range .Violations}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>{{end}}{{if .WorldEgressTop}}<p>{{$z.Name}} — {{$.T.worldegress}}</p><table>{{range .WorldEgressTop}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>{{end}}{{end}}{{end}}
{{range .Lists}}<h2>{{.Title}}</h2><table>{{range .Rows}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>{{end}}
{{with .R.Integrity}}<h2>{{$.T.integrity}}</h2>
<table><tr><th>{{$.T.files}}</th><td class="n">{{.Files}}</td></tr><tr><th>{{$.T.rows}}</th><td class="n">{{.Rows}}</td></tr><tr><th>{{$.T.findings}}</th><td class="n">{{len .Findings}}</td></tr></table>
{{range .Findings}}<p>{{.Kind}}: {{.Path}}: {{.What}}</p>{{end}}
{{if $.R.Excluded}}<p>{{$.T.excludedfiles}}</p><table><tr><th>{{$.T.path}}</th><th>{{$.T.kind}}</th><th>{{$.T.xrowscol}}</th><th>{{$.T.cause}}</th></tr>
{{range $.R.Excluded}}<tr><td>{{.Path}}</td><td>{{.Kind}}</td><td class="n">{{rows .Rows}}</td><td>{{.Reason}}</td></tr>{{end}}</table>{{end}}
<p>{{$.T.heads}}:</p><ul>{{range $n, $h := .ChainHeads}}<li>{{$n}}: <code>{{$h}}</code></li>{{end}}</ul>{{end}}
<h2>{{.T.signoff}}</h2><table><tr><th>{{.T.reviewer}}</th><th>{{.T.approver}}</th><th>{{.T.date}}</th></tr><tr><td style="height:3em;width:14em"></td><td style="width:14em"></td><td style="width:10em"></td></tr></table>
<h2>{{.T.sql}}</h2>{{range .R.Queries}}<p>{{.Name}}</p><pre>{{.SQL}}</pre>{{end}}
</body></html>
`))

// RenderHTML writes a self-contained HTML page (inline CSS and SVG). Every
// value is escaped by html/template.
func RenderHTML(w io.Writer, r *Report, lang string) error {
	t := tr(lang)
	var max int64
	for _, d := range r.Daily {
		if d.Total > max {
			max = d.Total
		}
	}
	type list struct {
		Title string
		Rows  []Count
	}
	return htmlTmpl.Execute(w, map[string]any{
		"R": r, "T": t, "Lang": lang, "MaxDay": max, "Excluded": excludedSummary(t, r),
		"Lists": []list{{t["world"], r.WorldEgress}, {t["talkers"], r.TopTalkers}, {t["http"], r.HTTPErrors}, {t["dns"], r.DNSFailures}},
	})
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
		rows = append(rows, []string{z.Name, fmt.Sprint(z.InternalOnly), fmt.Sprint(z.Inbound), fmt.Sprint(z.Unauthorized), fmt.Sprint(z.WorldEgress), fmt.Sprint(z.AssertionHolds)})
	}
	if err := write("zones.csv", []string{"zone", "internal_only", "inbound_flows", "unauthorized_flows", "world_egress_flows", "internal_only_assertion_holds"}, rows); err != nil {
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
