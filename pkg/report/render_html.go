package report

import (
	"crypto/sha256"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
)

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
