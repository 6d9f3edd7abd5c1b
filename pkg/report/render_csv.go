package report

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

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
