package report

import (
	"fmt"
	"io"
	"strings"
	"unicode"
)

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
