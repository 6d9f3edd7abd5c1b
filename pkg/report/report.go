package report

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// Options select the month and scope of a report.
type Options struct {
	// Archives are the archive roots, read as one archive (the DaemonSet
	// writes one root per node; archive.ExpandRoots expands patterns).
	Archives []string
	Month    time.Time      // any time in the month; only year and month count
	Location *time.Location // the month is a calendar month here (default UTC)
	Nodes    []string       // restrict to these node names (nil: all)
	TopN     int            // rows of the top-N tables (0: 20; below 0 is refused)
	// PrivilegedPorts are the destination ports of the privileged-paths
	// section (nil: DefaultPrivilegedPorts).
	PrivilegedPorts []uint32
	// Zones are the sensitive zones (ParseZones); nil: no zone section.
	Zones []Zone
	// Namespaces keeps only flows from or to these namespaces (nil: all);
	// coverage (per node) is not filtered.
	Namespaces []string
	// Parallel is how many archive files are read at a time (0:
	// DefaultParallel). Each reader holds its own decoding buffers.
	Parallel int
	Now      time.Time // generation time (tests)

	// CoverageTarget is the coverage every node must reach, in percent
	// (0: none, the check coverage is not evaluated).
	CoverageTarget float64
	// RetentionMin is the minimum retention of the flows (zero: none, the
	// check retention is not evaluated).
	RetentionMin Retention
	// PrivilegedSources are the sources approved for privileged paths
	// (nil: none, the check privileged_sources is not evaluated).
	PrivilegedSources *Selector
	// PublicKey, when set, checks every manifest entry's signature (nil:
	// the check signatures is not evaluated).
	PublicKey ed25519.PublicKey
	// Controls is the control mapping (nil: BuiltinControls).
	Controls *ControlTable
}

// DefaultParallel reads a file per CPU, at most 4: decoding the columns is
// most of a report's time, and each reader adds its buffers to the memory.
func DefaultParallel() int { return min(runtime.GOMAXPROCS(0), 4) }

// Count is one labelled number with the DuckDB SQL that reproduces it.
type Count struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// DayCount is the flows of one day by verdict.
type DayCount struct {
	Day       string `json:"day"` // YYYY-MM-DD in the report's time zone
	Total     int64  `json:"total"`
	Forwarded int64  `json:"forwarded"`
	Dropped   int64  `json:"dropped"`
	Audit     int64  `json:"audit"`
}

// Privileged is one use of a privileged path: source -> destination on a
// privileged port (or to the kube-apiserver identity), by verdict.
type Privileged struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Port        string `json:"port"`
	Protocol    string `json:"protocol"`
	Verdict     string `json:"verdict"`
	Count       int64  `json:"count"`
}

// Pair is one denied source -> destination pair.
type Pair struct {
	Source      string `json:"source"`      // namespace/workload or identity
	Destination string `json:"destination"` // namespace/workload, FQDN or IP
	Port        string `json:"port"`
	Protocol    string `json:"protocol"`
	Reason      string `json:"drop_reason"`
	Policy      string `json:"policy"`
	Verdict     string `json:"verdict"`
	Count       int64  `json:"count"`
	// NewThisMonth: the group had no denied flow in the previous month.
	NewThisMonth bool `json:"new_this_month"`
}

// PreviousMonth is last month's headline numbers, counted in the same
// scope from the pass that marks denied groups new.
type PreviousMonth struct {
	Month       string `json:"month"`
	TotalFlows  int64  `json:"total_flows"`
	DeniedTotal int64  `json:"denied_total"`
	DeniedPairs int    `json:"denied_pairs"`
	// WorldEgressTotal is last month's flows to the internet.
	WorldEgressTotal int64 `json:"world_egress_total"`
	// Daily is last month's flows per day of the month (index 0: the 1st),
	// for the daily chart's line (query previous_daily).
	Daily []int64 `json:"daily"`
	// Coverage is last month's collection coverage per node, computed as
	// this month's is (query previous_coverage).
	Coverage []PreviousCoverage `json:"coverage"`
}

// PreviousCoverage is a node's collection coverage of the previous month.
type PreviousCoverage struct {
	Node             string  `json:"node"`
	Minutes          int     `json:"minutes"`
	MinutesCollected int     `json:"minutes_collected"`
	MinutesLost      int     `json:"minutes_lost"`
	MinutesDown      int     `json:"minutes_collector_down"`
	CoveragePct      float64 `json:"coverage_pct"`
}

// lowestCoverage is the lowest coverage of the nodes with evaluable
// minutes, as the coverage finding takes it, and the minutes no collector
// ran; ok is false when no node has an evaluable minute.
func lowestCoverage[T any](nodes []T, get func(T) (minutes, down int, pct float64)) (low float64, down int, ok bool) {
	for _, n := range nodes {
		m, d, pct := get(n)
		down += d
		if m == 0 {
			continue
		}
		if !ok || pct < low {
			low = pct
		}
		ok = true
	}
	return low, down, ok
}

// sameDay is last month's flows on the day of the month of day
// ("YYYY-MM-DD"); false when last month had no such day or pm is nil.
func (pm *PreviousMonth) sameDay(day string) (int64, bool) {
	if pm == nil || len(day) != 10 {
		return 0, false
	}
	d, err := strconv.Atoi(day[8:])
	if err != nil || d < 1 || d > len(pm.Daily) {
		return 0, false
	}
	return pm.Daily[d-1], true
}

// Query is a number's provenance: the DuckDB SQL that reproduces it.
type Query struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
}

// Report is the whole monthly report; JSON field names are stable.
type Report struct {
	Month     string    `json:"month"`
	TimeZone  string    `json:"time_zone"`
	FromUTC   time.Time `json:"from_utc"`
	ToUTC     time.Time `json:"to_utc"`
	Generated time.Time `json:"generated"`
	Archive   string    `json:"archive"` // the roots, comma-separated
	// Findings is the summary: one line per check (Checks), first in
	// every format.
	Findings []Finding `json:"findings"`
	// Sections and Controls are the control mapping: each section with the
	// controls it evidences, and the controls.
	Sections []Section `json:"sections"`
	Controls []Control `json:"controls"`
	// CoverageTarget (percent, 0: none) and RetentionMin ("": none) are
	// the targets the findings were evaluated against.
	CoverageTarget float64 `json:"coverage_target"`
	RetentionMin   string  `json:"retention_min"`
	// OldestFlow is the oldest flow time the manifests of the whole
	// archive vouch for (query retention_oldest); absent when none.
	OldestFlow   time.Time `json:"oldest_flow,omitzero"`
	Nodes        []string  `json:"nodes"`
	Namespaces   int       `json:"namespaces"`
	Versions     []string  `json:"collector_versions"`
	ConfigHashes []string  `json:"config_hashes"`
	// Timeline is the month's changes: collector stops, starts and
	// configuration changes, in time order.
	Timeline       []Event        `json:"timeline"`
	TotalFlows     int64          `json:"total_flows"`
	Verdicts       []Count        `json:"verdicts"`
	Daily          []DayCount     `json:"daily"`
	Coverage       []NodeCoverage `json:"coverage"`
	Denied         []Pair         `json:"denied_top"`
	DeniedTotal    int64          `json:"denied_total"`
	DeniedPairs    int            `json:"denied_pairs"`     // distinct pairs before the top-N cut
	DeniedNewPairs int            `json:"denied_new_pairs"` // of them, not denied in the previous month
	// DeniedGonePairs are last month's denied groups with no denied flow
	// this month.
	DeniedGonePairs int `json:"denied_gone_pairs"`
	// Previous is last month's headline numbers (query previous_totals).
	Previous   *PreviousMonth `json:"previous_month"`
	Privileged []Privileged   `json:"privileged_top"`
	// PrivilegedSources are the sources approved for privileged paths
	// (nil: none configured); PrivilegedUnapproved counts the request
	// flows on a privileged path from any other source that were not
	// stopped (query privileged_unapproved).
	PrivilegedSources       *Selector             `json:"privileged_sources,omitempty"`
	PrivilegedUnapproved    int64                 `json:"privileged_unapproved"`
	PrivilegedUnapprovedTop []Privileged          `json:"privileged_unapproved_top"`
	PrivilegedByPort        []Count               `json:"privileged_by_port"`
	PrivilegedPorts         []uint32              `json:"privileged_ports"`
	Zones                   []ZoneResult          `json:"zones"`
	TopTalkers              []Count               `json:"top_talkers"`
	HTTPErrors              []Count               `json:"http_errors"`
	DNSFailures             []Count               `json:"dns_failures"`
	WorldEgress             []Count               `json:"world_egress_top"`
	WorldEgressTotal        int64                 `json:"world_egress_total"`
	Excluded                []Excluded            `json:"excluded"` // the data files whose rows the numbers leave out
	Integrity               *archive.VerifyReport `json:"integrity"`
	Queries                 []Query               `json:"queries"`
}

// Bounds returns the month's [from, to) in UTC.
func Bounds(month time.Time, loc *time.Location) (time.Time, time.Time) {
	if loc == nil {
		loc = time.UTC
	}
	y, m, _ := month.In(loc).Date()
	from := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	return from.UTC(), from.AddDate(0, 1, 0).UTC()
}

// ParseMonth parses "YYYY-MM" or "previous" (the month before now in loc).
func ParseMonth(s string, loc *time.Location, now time.Time) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	if s == "previous" {
		y, m, _ := now.In(loc).Date()
		return time.Date(y, m, 1, 0, 0, 0, 0, loc).AddDate(0, -1, 0), nil
	}
	t, err := time.ParseInLocation("2006-01", s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("report: month %q: want YYYY-MM or previous", s)
	}
	// The archive stores time as int64 nanoseconds: a month reaching out of
	// that range can hold no flow, and its bounds cannot be compared with
	// the archive's times (nor written as JSON past year 9999).
	if from, to := Bounds(t, loc); from.Before(firstStorable) || to.Add(-1).After(lastStorable) {
		return time.Time{}, fmt.Errorf("report: month %s: outside the times the archive stores (int64 nanoseconds, %s to %s); want a month between 1677-10 and 2262-03",
			s, firstStorable.Format(time.RFC3339Nano), lastStorable.Format(time.RFC3339Nano))
	}
	return t, nil
}

// firstStorable and lastStorable bound the archive's times.
var firstStorable, lastStorable = time.Unix(0, math.MinInt64).UTC(), time.Unix(0, math.MaxInt64).UTC()

// Build scans the archive and computes the report. Memory is bounded by the
// number of distinct keys (nodes, days, workload pairs), not by the number of
// flows.
func Build(ctx context.Context, o Options) (*Report, error) {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.TopN < 0 {
		return nil, fmt.Errorf("report: top %d: want 1 or more", o.TopN)
	}
	if o.TopN == 0 {
		o.TopN = 20
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	from, to := Bounds(o.Month, o.Location)
	rep := &Report{
		Month: from.In(o.Location).Format("2006-01"), TimeZone: o.Location.String(), FromUTC: from, ToUTC: to,
		Generated: o.Now.UTC(), Archive: strings.Join(o.Archives, ", "),
	}
	sc, err := archive.OpenScanner(o.Archives...)
	if err != nil {
		return nil, err
	}
	prevFrom, _ := Bounds(from.In(o.Location).AddDate(0, -1, 0), o.Location)
	// Integrity first: only the files that match their manifest entries
	// are read, so that a file planted in a partition or a damaged one is a
	// finding, listed in Excluded, and never counted (selection).
	vr, err := archive.VerifyAll(o.Archives, from, to, o.PublicKey)
	if err != nil {
		return nil, err
	}
	hist, err := archive.VerifyRoots(o.Archives, archive.VerifyOptions{SizesOnly: true})
	if err != nil {
		return nil, err
	}
	sel := newSelection(o, from, to, prevFrom, vr, hist)
	if ovs := scopedOverlaps(archive.FindOverlaps(ctx, vr.Intact), o.Nodes); len(ovs) > 0 {
		return nil, &OverlapError{Overlaps: ovs}
	}
	// Files are read and decoded in parallel; the aggregation is
	// serialised and independent of row order.
	par := o.Parallel
	if par <= 0 {
		par = DefaultParallel()
	}
	opts := archive.ScanOptions{From: from, To: to, Nodes: o.Nodes, Parallel: par}
	priv := o.PrivilegedPorts
	if priv == nil {
		priv = DefaultPrivilegedPorts
	}
	rep.PrivilegedPorts = slices.Clone(priv)
	// The previous month's denied groups and internet egress need neither
	// the source labels nor L7 nor the node; this month's need the source
	// labels only for zones.
	prevCols := allWithout("source_labels", "node_name",
		"l7_dns_query", "l7_dns_rcode", "l7_http_code", "l7_http_method", "is_reply")
	read := allColumns
	if len(o.Zones) == 0 && (o.PrivilegedSources == nil || len(o.PrivilegedSources.Labels) == 0) {
		read = allWithout("source_labels")
	}
	// Both months' flows are scanned again when a file turns out
	// unreadable: a file of the partition both months share counts in
	// both or in neither, as in the printed SQL.
	var agg *aggregator
	err = sel.scan(ctx, func(files []archive.FileInfo) error {
		sym := newSymbols()
		prev := &previousPairs{namespaces: o.Namespaces, sym: sym, seen: map[pairKey]bool{}, loc: o.Location}
		prevOpts := opts
		prevOpts.From, prevOpts.To, prevOpts.Files = prevFrom, from, files
		if err := scanRows(ctx, sc, prevOpts, prevCols, prev.add); err != nil {
			return err
		}
		agg = newAggregator(sym, o.Location, priv, o.Zones)
		agg.namespaceFilter = o.Namespaces
		agg.previous = prev.seen
		agg.approved = o.PrivilegedSources
		rep.Previous = &PreviousMonth{Month: prevFrom.In(o.Location).Format("2006-01"), TotalFlows: prev.total, DeniedTotal: prev.denied,
			DeniedPairs: len(prev.seen), WorldEgressTotal: prev.world, Daily: prev.dailyTotals(from)}
		monthOpts := opts
		monthOpts.Files = files
		return scanRows(ctx, sc, monthOpts, read, agg.add)
	})
	if err != nil {
		return nil, err
	}
	agg.finish(rep, o.TopN)
	nodes := agg.nodes
	err = sel.scan(ctx, func(files []archive.FileInfo) error {
		statsOpts := opts
		statsOpts.Files = files
		return coverage(ctx, sc, statsOpts, rep, nodes)
	})
	if err != nil {
		return nil, err
	}
	// Last month's coverage, for the month over month: its stats and
	// losses, as this month's.
	err = sel.scan(ctx, func(files []archive.FileInfo) error {
		prev := &Report{FromUTC: prevFrom, ToUTC: from, Generated: rep.Generated}
		prevOpts := opts
		prevOpts.From, prevOpts.To, prevOpts.Files = prevFrom, from, files
		if err := coverage(ctx, sc, prevOpts, prev, map[string]bool{}); err != nil {
			return err
		}
		if rep.Previous == nil {
			return nil
		}
		rep.Previous.Coverage = rep.Previous.Coverage[:0]
		for _, c := range prev.Coverage {
			rep.Previous.Coverage = append(rep.Previous.Coverage, PreviousCoverage{Node: c.Node, Minutes: c.Minutes,
				MinutesCollected: c.MinutesCollected, MinutesLost: c.MinutesLost, MinutesDown: c.MinutesDown, CoveragePct: c.CoveragePct})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for n := range nodes {
		rep.Nodes = append(rep.Nodes, n)
	}
	slices.Sort(rep.Nodes)
	rep.Integrity = vr
	rep.Excluded = sel.excluded
	rep.Queries = queries(o, from, to, prevFrom, priv, sel.source("flows"), sel.source("stats"), sel.lossSource(), sel.oldestSource())
	ct := o.Controls
	if ct == nil {
		ct = &ControlTable{Controls: BuiltinControls}
	}
	rep.PrivilegedSources = o.PrivilegedSources
	rep.CoverageTarget, rep.RetentionMin = o.CoverageTarget, o.RetentionMin.String()
	rep.Findings = findings(rep, o, hist, ct)
	rep.Timeline = timeline(rep)
	rep.Sections = ct.sections()
	rep.Controls = ct.Controls
	rep.emptyListsNotNull()
	return rep, nil
}

// OverlapError refuses archive roots that hold the same node's flows for
// the same time: counted together, those flows would count twice.
type OverlapError struct{ Overlaps []archive.Overlap }

func (e *OverlapError) Error() string {
	var b strings.Builder
	b.WriteString("report: the archive roots overlap: ")
	for i, ov := range e.Overlaps {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Overlaps)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s and %s both hold flows of node %s from %s to %s", ov.RootA, ov.RootB, strconv.Quote(ov.Node),
			ov.From.UTC().Format(time.RFC3339Nano), ov.To.UTC().Format(time.RFC3339Nano))
		if ov.UUID != "" {
			fmt.Fprintf(&b, " (flow uuid %s is in %s and in %s)", strconv.Quote(ov.UUID), ov.Files[0].Root+"/"+ov.Files[0].Path, ov.Files[1].Root+"/"+ov.Files[1].Path)
		} else {
			fmt.Fprintf(&b, " (%s and %s cover the same time)", ov.Files[0].Root+"/"+ov.Files[0].Path, ov.Files[1].Root+"/"+ov.Files[1].Path)
		}
	}
	b.WriteString(". Read together, their flows and collection stats of that time would count twice: " +
		"report on each root separately, or import the backfill into a new root without the events.log files " +
		"whose flows the other root already holds")
	return b.String()
}

// scopedOverlaps keeps the overlaps of the nodes in scope (nil: all).
func scopedOverlaps(ovs []archive.Overlap, nodes []string) []archive.Overlap {
	if len(nodes) == 0 {
		return ovs
	}
	out := ovs[:0]
	for _, ov := range ovs {
		if slices.Contains(nodes, ov.Node) {
			out = append(out, ov)
		}
	}
	return out
}

// emptyListsNotNull makes every list of the report an empty one rather than
// nil, so that the JSON has [] where there is nothing, never null.
func (r *Report) emptyListsNotNull() {
	if pm := r.Previous; pm != nil {
		nonNil(&pm.Coverage)
		nonNil(&pm.Daily)
	}
	for _, l := range []*[]string{&r.Nodes, &r.Versions, &r.ConfigHashes} {
		nonNil(l)
	}
	for _, l := range []*[]Count{&r.Verdicts, &r.PrivilegedByPort, &r.TopTalkers, &r.HTTPErrors, &r.DNSFailures, &r.WorldEgress} {
		nonNil(l)
	}
	nonNil(&r.Daily)
	nonNil(&r.Coverage)
	for i := range r.Coverage {
		nonNil(&r.Coverage[i].Gaps)
		nonNil(&r.Coverage[i].Heatmap)
	}
	nonNil(&r.Denied)
	nonNil(&r.Privileged)
	nonNil(&r.PrivilegedUnapprovedTop)
	nonNil(&r.Findings)
	nonNil(&r.Timeline)
	nonNil(&r.Sections)
	nonNil(&r.Controls)
	for i := range r.Coverage {
		nonNil(&r.Coverage[i].Configurations)
	}
	nonNil(&r.PrivilegedPorts)
	nonNil(&r.Zones)
	for i := range r.Zones {
		nonNil(&r.Zones[i].Violations)
		nonNil(&r.Zones[i].WorldEgressTop)
	}
	nonNil(&r.Excluded)
	nonNil(&r.Queries)
	if r.Integrity != nil {
		nonNil(&r.Integrity.Findings)
	}
}

func nonNil[T any](l *[]T) {
	if *l == nil {
		*l = []T{}
	}
}

// queries are the DuckDB statements that reproduce the report's numbers.
// Each statement's result rows are, in order, the JSON values named in
// docs/report.md; test/compat/report runs these exact strings.
// flows, stats and losses are the read_parquet sources of the files the
// report counted (selection.source; losses is empty when no losses file
// reaches into the month).
func queries(o Options, from, to, prevFrom time.Time, priv []uint32, flows, stats, losses, allFlows string) []Query {
	loc, zones := o.Location, o.Zones
	// Epoch arithmetic on the microsecond column: cheaper than comparing
	// TIMESTAMP WITH TIME ZONE values (docs/format.md).
	scope, statsScope := "", ""
	if len(o.Nodes) > 0 {
		// The node names as Hubble wrote them (the partition directories hold
		// sanitised names).
		scope = fmt.Sprintf(" AND node_name IN (%s)", sqlList(o.Nodes))
		statsScope = fmt.Sprintf(" AND node IN (%s)", sqlList(o.Nodes))
	}
	if len(o.Namespaces) > 0 {
		scope += fmt.Sprintf(" AND (source_namespace IN (%[1]s) OR destination_namespace IN (%[1]s))", sqlList(o.Namespaces))
	}
	where := fmt.Sprintf("epoch_us(time) >= %d AND epoch_us(time) < %d%s", from.UnixMicro(), to.UnixMicro(), scope)
	prevWhere := fmt.Sprintf("epoch_us(time) >= %d AND epoch_us(time) < %d%s", prevFrom.UnixMicro(), from.UnixMicro(), scope)
	deniedTuple := fmt.Sprintf("%s, %s, l4_destination_port, l4_protocol, coalesce(drop_reason_desc, ''), coalesce(ingress_denied_by[1].namespace || '/' || ingress_denied_by[1].name, egress_denied_by[1].namespace || '/' || egress_denied_by[1].name), verdict",
		endpointSQL("source", "source_names", "ip_source"), endpointSQL("destination", "destination_names", "ip_destination"))
	return append([]Query{
		{"total_flows", fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", flows, where)},
		{"verdicts", fmt.Sprintf("SELECT coalesce(verdict, 'VERDICT_UNKNOWN') AS verdict, count(*) FROM %s WHERE %s GROUP BY 1 ORDER BY 2 DESC, 1", flows, where)},
		{"denied_pairs", fmt.Sprintf("SELECT count(*) FROM (SELECT DISTINCT %s FROM %s WHERE %s AND verdict IN ('DROPPED', 'AUDIT'))", deniedTuple, flows, where)},
		{"denied_gone_pairs", fmt.Sprintf("SELECT count(*) FROM (SELECT DISTINCT %[1]s FROM %[2]s WHERE %[4]s AND verdict IN ('DROPPED', 'AUDIT') EXCEPT SELECT DISTINCT %[1]s FROM %[2]s WHERE %[3]s AND verdict IN ('DROPPED', 'AUDIT'))", deniedTuple, flows, where, prevWhere)},
		{"previous_totals", fmt.Sprintf("SELECT count(*), count(*) FILTER (WHERE verdict IN ('DROPPED', 'AUDIT')), (SELECT count(*) FROM (SELECT DISTINCT %[1]s FROM %[2]s WHERE %[3]s AND verdict IN ('DROPPED', 'AUDIT'))), count(*) FILTER (WHERE %[4]s) FROM %[2]s WHERE %[3]s", deniedTuple, flows, prevWhere, worldDestSQL)},
		{"previous_daily", fmt.Sprintf("SELECT CAST(strftime(timezone('%s', time), '%%d') AS INTEGER) AS day, count(*) FROM %s WHERE %s GROUP BY 1 ORDER BY 1", sqlString(loc.String()), flows, prevWhere)},
		{"denied_new_pairs", fmt.Sprintf("SELECT count(*) FROM (SELECT DISTINCT %[1]s FROM %[2]s WHERE %[3]s AND verdict IN ('DROPPED', 'AUDIT') EXCEPT SELECT DISTINCT %[1]s FROM %[2]s WHERE %[4]s AND verdict IN ('DROPPED', 'AUDIT'))", deniedTuple, flows, where, prevWhere)},
		{"privileged_by_port", fmt.Sprintf("SELECT coalesce(CAST(l4_destination_port AS VARCHAR), '') AS port, count(*) FROM %s WHERE %s AND (l4_destination_port IN (%s) OR destination_identity = 7) GROUP BY 1 ORDER BY 2 DESC, 1", flows, where, portList(priv))},
		{"world_egress_total", fmt.Sprintf("SELECT count(*) FROM %s WHERE %s AND %s", flows, where, worldDestSQL)},
		{"denied_total", fmt.Sprintf("SELECT count(*) FROM %s WHERE %s AND verdict IN ('DROPPED', 'AUDIT')", flows, where)},
		{"daily", fmt.Sprintf("SELECT strftime(timezone('%s', time), '%%Y-%%m-%%d') AS day, count(*), count(*) FILTER (WHERE verdict = 'DROPPED'), count(*) FILTER (WHERE verdict = 'AUDIT') FROM %s WHERE %s GROUP BY 1 ORDER BY 1", sqlString(loc.String()), flows, where)},
		{"coverage", coverageSQL(o, from, to, stats, statsScope, losses)},
		{"previous_coverage", coverageSQL(o, prevFrom, from, stats, statsScope, losses)},
		{"losses_unexplained", unexplainedSQL(o, from, to, stats, statsScope, losses)},
		{"configurations", fmt.Sprintf("SELECT node, coalesce(collector_version, '') AS collector_version, coalesce(config_hash, '') AS config_hash, "+
			"epoch_us(min(minute)) AS first_us, epoch_us(max(minute)) AS last_us FROM %s WHERE epoch_us(minute) >= %d AND epoch_us(minute) < %d%s "+
			"GROUP BY 1, 2, 3 ORDER BY 1, 4, 5, 2, 3", stats, from.UnixMicro(), to.UnixMicro(), statsScope)},
		// Every flow the archive holds, not the month's: what retention kept.
		{"retention_oldest", fmt.Sprintf("SELECT epoch_us(min(time)) FROM %s", allFlows)},
	}, append(privilegedQueries(o, priv, flows, where), zoneQueries(zones, flows, where)...)...)
}

// privilegedQueries is the query privileged_unapproved when approved
// sources are configured: the request flows on a privileged path from
// other sources that were not stopped.
func privilegedQueries(o Options, priv []uint32, flows, where string) []Query {
	if o.PrivilegedSources == nil {
		return nil
	}
	return []Query{{"privileged_unapproved", fmt.Sprintf("SELECT count(*) FROM %s WHERE %s AND (l4_destination_port IN (%s) OR destination_identity = 7) "+
		"AND NOT coalesce(is_reply, false) AND %s AND NOT %s", flows, where, portList(priv), reachedSQL, selectorSQL(*o.PrivilegedSources, "source"))}}
}

// unexplainedSQL counts the minutes before the report's generation whose
// stats rows count losses that no loss record's range covers.
func unexplainedSQL(o Options, from, to time.Time, stats, statsScope, losses string) string {
	lo, hi := from.UnixMicro()/60e6, to.UnixMicro()/60e6
	now := min(hi, (o.Now.UnixMicro()+60e6-1)/60e6)
	s := fmt.Sprintf("SELECT DISTINCT node, epoch_us(minute) // 60000000 AS m FROM %s WHERE epoch_us(minute) >= %d AND epoch_us(minute) < %d%s "+
		"AND decode_errors + lost_events + lost_rotation_bytes + lost_truncated_bytes + lost_too_long_lines + lost_stream_down_events > 0",
		stats, from.UnixMicro(), to.UnixMicro(), statsScope)
	if losses == "" {
		return fmt.Sprintf("SELECT count(*) FROM (%s) WHERE m < %d", s, now)
	}
	ranges := fmt.Sprintf("SELECT node, coalesce(epoch_us(from_time), epoch_us(detected)) // 60000000 AS a, "+
		"greatest(coalesce(epoch_us(to_time), epoch_us(detected)), coalesce(epoch_us(from_time), epoch_us(detected))) // 60000000 AS b "+
		"FROM %s WHERE true%s", losses, statsScope)
	return fmt.Sprintf("WITH c AS (%s), r AS (%s) SELECT count(*) FROM c WHERE m < %d AND NOT EXISTS (SELECT 1 FROM r WHERE r.node = c.node AND c.m BETWEEN greatest(r.a, %d) AND least(r.b, %d))",
		s, ranges, now, lo, hi-1)
}

// coverageSQL is the coverage query: per node, the minutes collected (a
// stats row and no loss) and lost (a loss record's range, or a stats row's
// loss counters) before the report's generation, and the month's sums. It
// reads the losses table when losses (its source) is not empty: DuckDB
// refuses a glob that matches nothing.
func coverageSQL(o Options, from, to time.Time, stats, statsScope, losses string) string {
	lo, hi := from.UnixMicro()/60e6, to.UnixMicro()/60e6
	now := min(hi, (o.Now.UnixMicro()+60e6-1)/60e6)
	s := fmt.Sprintf("SELECT node, epoch_us(minute) // 60000000 AS m, sum(flows_seen) AS seen, sum(flows_kept) AS kept, sum(flows_denied) AS denied, "+
		"sum(decode_errors) AS decode, sum(lost_events) AS lost_events, sum(lost_rotation_bytes) AS rotation, "+
		"sum(decode_errors + lost_events + lost_rotation_bytes + lost_truncated_bytes + lost_too_long_lines + lost_stream_down_events) AS counters "+
		"FROM %s WHERE epoch_us(minute) >= %d AND epoch_us(minute) < %d%s GROUP BY 1, 2", stats, from.UnixMicro(), to.UnixMicro(), statsScope)
	lost := "SELECT node, m FROM s WHERE counters > 0"
	if losses != "" {
		ranges := fmt.Sprintf("SELECT node, coalesce(epoch_us(from_time), epoch_us(detected)) // 60000000 AS a, "+
			"greatest(coalesce(epoch_us(to_time), epoch_us(detected)), coalesce(epoch_us(from_time), epoch_us(detected))) // 60000000 AS b "+
			"FROM %s WHERE true%s", losses, statsScope)
		lost = fmt.Sprintf("SELECT node, unnest(range(greatest(a, %d), least(b, %d) + 1)) AS m FROM (%s) WHERE b >= %d AND a < %d UNION %s",
			lo, hi-1, ranges, lo, hi, lost)
	}
	return fmt.Sprintf("WITH s AS (%s), lost AS (SELECT DISTINCT node, m FROM (%s)), n AS (SELECT node FROM s UNION SELECT node FROM lost) "+
		"SELECT n.node, "+
		"(SELECT count(*) FROM s WHERE s.node = n.node AND s.m < %[3]d AND NOT EXISTS (SELECT 1 FROM lost WHERE lost.node = s.node AND lost.m = s.m)) AS minutes_collected, "+
		"(SELECT count(*) FROM lost WHERE lost.node = n.node AND lost.m < %[3]d) AS minutes_lost, "+
		"(SELECT coalesce(sum(seen), 0) FROM s WHERE s.node = n.node), (SELECT coalesce(sum(kept), 0) FROM s WHERE s.node = n.node), "+
		"(SELECT coalesce(sum(denied), 0) FROM s WHERE s.node = n.node), (SELECT coalesce(sum(decode), 0) FROM s WHERE s.node = n.node), "+
		"(SELECT coalesce(sum(lost_events), 0) FROM s WHERE s.node = n.node), (SELECT coalesce(sum(rotation), 0) FROM s WHERE s.node = n.node) "+
		"FROM n ORDER BY n.node", s, lost, now)
}

// sqlString escapes s for a single-quoted SQL string literal.
func sqlString(s string) string { return strings.ReplaceAll(s, "'", "''") }

// endpointSQL is the DuckDB expression of epKey.String for one side of a
// flow (prefix "source" or "destination").
func endpointSQL(prefix, names, ip string) string {
	return fmt.Sprintf(`CASE WHEN %[1]s_namespace IS NOT NULL AND len(%[1]s_workloads) > 0 THEN %[1]s_namespace || '/' || %[1]s_workloads[1].name `+
		`WHEN %[1]s_namespace IS NOT NULL AND %[1]s_pod_name IS NOT NULL THEN %[1]s_namespace || '/' || %[1]s_pod_name `+
		`WHEN len(%[2]s) > 0 AND %[2]s[1] <> '' THEN %[2]s[1] `+
		`WHEN %[1]s_identity IN (2, 9, 10) THEN 'world:' || coalesce(%[3]s, '') `+
		`WHEN %[1]s_identity IS NOT NULL THEN 'identity:' || %[1]s_identity `+
		`ELSE coalesce(%[3]s, 'unknown') END`, prefix, names, ip)
}

func portList(ps []uint32) string {
	if len(ps) == 0 {
		return "NULL"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = strconv.FormatUint(uint64(p), 10)
	}
	return strings.Join(parts, ", ")
}
