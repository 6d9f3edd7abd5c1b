package report

import (
	"context"
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
	TopN     int            // rows of the top-N tables (default 20)
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

// NodeCoverage is the collection coverage of one node over the month.
type NodeCoverage struct {
	Node         string   `json:"node"`
	Hours        int      `json:"hours"`
	Collected    int      `json:"hours_collected"`      // hours with a stats row and flows
	NoTraffic    int      `json:"hours_no_traffic"`     // hours with stats rows but no flow
	Down         int      `json:"hours_collector_down"` // hours without any stats row
	CoveragePct  float64  `json:"coverage_pct"`         // (collected + no traffic) / hours
	FlowsSeen    int64    `json:"flows_seen"`
	FlowsKept    int64    `json:"flows_kept"`
	FlowsDenied  int64    `json:"flows_denied_by_filter"`
	DecodeErrors int64    `json:"decode_errors"`
	LostEvents   int64    `json:"hubble_lost_events"`
	LostRotation int64    `json:"lost_rotation_bytes"`
	Gaps         []Gap    `json:"gaps"`
	Heatmap      []string `json:"heatmap"` // per day: one char per hour: '#' collected, '.' no traffic, ' ' down, '!' loss
}

// Gap is a run of hours the collector was down.
type Gap struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Cause string    `json:"cause"`
}

// Query is a number's provenance: the DuckDB SQL that reproduces it.
type Query struct {
	Name string `json:"name"`
	SQL  string `json:"sql"`
}

// Report is the whole monthly report; JSON field names are stable.
type Report struct {
	Month            string                `json:"month"`
	TimeZone         string                `json:"time_zone"`
	FromUTC          time.Time             `json:"from_utc"`
	ToUTC            time.Time             `json:"to_utc"`
	Generated        time.Time             `json:"generated"`
	Archive          string                `json:"archive"` // the roots, comma-separated
	Nodes            []string              `json:"nodes"`
	Namespaces       int                   `json:"namespaces"`
	Versions         []string              `json:"collector_versions"`
	ConfigHashes     []string              `json:"config_hashes"`
	TotalFlows       int64                 `json:"total_flows"`
	Verdicts         []Count               `json:"verdicts"`
	Daily            []DayCount            `json:"daily"`
	Coverage         []NodeCoverage        `json:"coverage"`
	Denied           []Pair                `json:"denied_top"`
	DeniedTotal      int64                 `json:"denied_total"`
	DeniedPairs      int                   `json:"denied_pairs"`     // distinct pairs before the top-N cut
	DeniedNewPairs   int                   `json:"denied_new_pairs"` // of them, not denied in the previous month
	Privileged       []Privileged          `json:"privileged_top"`
	PrivilegedByPort []Count               `json:"privileged_by_port"`
	PrivilegedPorts  []uint32              `json:"privileged_ports"`
	Zones            []ZoneResult          `json:"zones"`
	TopTalkers       []Count               `json:"top_talkers"`
	HTTPErrors       []Count               `json:"http_errors"`
	DNSFailures      []Count               `json:"dns_failures"`
	WorldEgress      []Count               `json:"world_egress_top"`
	WorldEgressTotal int64                 `json:"world_egress_total"`
	Integrity        *archive.VerifyReport `json:"integrity"`
	Queries          []Query               `json:"queries"`
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
	sym := newSymbols()
	agg := newAggregator(sym, o.Location, priv, o.Zones)
	agg.namespaceFilter = o.Namespaces
	prevFrom, _ := Bounds(from.In(o.Location).AddDate(0, -1, 0), o.Location)
	prev := &previousPairs{namespaces: o.Namespaces, sym: sym, seen: map[pairKey]bool{}}
	prevOpts := opts
	prevOpts.From, prevOpts.To = prevFrom, from
	// The previous month's denied groups need neither labels nor L7 nor the
	// node; this month's need the source labels only for zones.
	prevCols := allColumns.without("source_labels.list.element", "destination_labels.list.element", "node_name",
		"l7_dns_query", "l7_dns_rcode", "l7_http_code", "l7_http_method", "is_reply")
	if err := scanRows(ctx, sc, prevOpts, prevCols, prev.add); err != nil {
		return nil, err
	}
	agg.previous = prev.seen
	read := allColumns
	if len(o.Zones) == 0 {
		read = read.without("source_labels.list.element")
	}
	if err := scanRows(ctx, sc, opts, read, agg.add); err != nil {
		return nil, err
	}
	agg.finish(rep, o.TopN)
	nodes := agg.nodes
	if err := coverage(ctx, sc, opts, rep, nodes); err != nil {
		return nil, err
	}
	for n := range nodes {
		rep.Nodes = append(rep.Nodes, n)
	}
	slices.Sort(rep.Nodes)
	vr, err := archive.VerifyAll(o.Archives, from, to, nil)
	if err != nil {
		return nil, err
	}
	rep.Integrity = vr
	rep.Queries = queries(o, from, to, prevFrom, priv)
	return rep, nil
}

func coverage(ctx context.Context, sc *archive.Scanner, opts archive.ScanOptions, rep *Report, nodes map[string]bool) error {
	type hour struct {
		rows                                                         bool
		seen, lost                                                   int64
		lostEvents, rotation, truncated, tooLong, streamDown, decode uint64
	}
	per := map[string]map[int64]*hour{}
	covs := map[string]*NodeCoverage{}
	versions, hashes := map[string]bool{}, map[string]bool{}
	err := sc.ScanStats(ctx, opts, func(rows []archive.StatRow) error {
		for _, r := range rows {
			node := r.Node
			if per[node] == nil {
				per[node] = map[int64]*hour{}
				covs[node] = &NodeCoverage{Node: strings.Clone(node)}
			}
			h := r.Minute / 1e6 / 3600
			x := per[node][h]
			if x == nil {
				x = &hour{}
				per[node][h] = x
			}
			x.rows = true
			x.seen += int64(r.FlowsSeen)
			x.lost += int64(r.LostEvents + r.LostRotation + r.LostTruncated + r.LostTooLong + r.LostStreamDown + r.DecodeErrors)
			x.lostEvents += r.LostEvents
			x.rotation += r.LostRotation
			x.truncated += r.LostTruncated
			x.tooLong += r.LostTooLong
			x.streamDown += r.LostStreamDown
			x.decode += r.DecodeErrors
			c := covs[node]
			c.FlowsSeen += int64(r.FlowsSeen)
			c.FlowsKept += int64(r.FlowsKept)
			c.FlowsDenied += int64(r.FlowsDenied)
			c.DecodeErrors += int64(r.DecodeErrors)
			c.LostEvents += int64(r.LostEvents)
			c.LostRotation += int64(r.LostRotation)
			versions[strings.Clone(r.CollectorVersion)] = true
			hashes[strings.Clone(r.ConfigHash)] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	first, last := rep.FromUTC.Unix()/3600, rep.ToUTC.Unix()/3600
	for node, hours := range per {
		c := covs[node]
		var gapStart int64 = -1
		for h := first; h < last; h++ {
			x := hours[h]
			c.Hours++
			switch {
			case x == nil:
				c.Down++
				if gapStart < 0 {
					gapStart = h
				}
				continue
			case x.seen > 0:
				c.Collected++
			default:
				c.NoTraffic++
			}
			if gapStart >= 0 {
				c.Gaps = append(c.Gaps, Gap{From: time.Unix(gapStart*3600, 0).UTC(), To: time.Unix(h*3600, 0).UTC(), Cause: "no stats rows: collector not running or not archiving"})
				gapStart = -1
			}
			if x.lost > 0 {
				var causes []string
				for _, l := range []struct {
					n    uint64
					what string
				}{{x.lostEvents, "Hubble lost events"}, {x.rotation, "bytes rotated away before read"}, {x.truncated, "bytes truncated under the reader"},
					{x.tooLong, "over-long lines skipped"}, {x.streamDown, "events lost while the stream was down"}, {x.decode, "undecodable lines"}} {
					if l.n > 0 {
						causes = append(causes, fmt.Sprintf("%d %s", l.n, l.what))
					}
				}
				c.Gaps = append(c.Gaps, Gap{From: time.Unix(h*3600, 0).UTC(), To: time.Unix((h+1)*3600, 0).UTC(), Cause: "loss: " + strings.Join(causes, ", ")})
			}
		}
		if gapStart >= 0 {
			c.Gaps = append(c.Gaps, Gap{From: time.Unix(gapStart*3600, 0).UTC(), To: time.Unix(last*3600, 0).UTC(), Cause: "no stats rows: collector not running or not archiving"})
		}
		if c.Hours > 0 {
			c.CoveragePct = 100 * float64(c.Collected+c.NoTraffic) / float64(c.Hours)
		}
		for d := first; d < last; d += 24 {
			var b strings.Builder
			for h := d; h < d+24 && h < last; h++ {
				x := hours[h]
				switch {
				case x == nil:
					b.WriteByte(' ')
				case x.lost > 0:
					b.WriteByte('!')
				case x.seen > 0:
					b.WriteByte('#')
				default:
					b.WriteByte('.')
				}
			}
			c.Heatmap = append(c.Heatmap, b.String())
		}
		rep.Coverage = append(rep.Coverage, *c)
		nodes[node] = true
	}
	slices.SortFunc(rep.Coverage, func(a, b NodeCoverage) int { return strings.Compare(a.Node, b.Node) })
	for v := range versions {
		rep.Versions = append(rep.Versions, v)
	}
	for h := range hashes {
		rep.ConfigHashes = append(rep.ConfigHashes, h)
	}
	slices.Sort(rep.Versions)
	slices.Sort(rep.ConfigHashes)
	return nil
}

// readParquet is DuckDB's read_parquet over a table of every root: one glob
// for one root, a list of globs for several.
func readParquet(roots []string, table string) string {
	if len(roots) == 1 {
		return fmt.Sprintf("read_parquet('%s/%s/**/*.parquet', hive_partitioning=true)", sqlString(roots[0]), table)
	}
	globs := make([]string, len(roots))
	for i, r := range roots {
		globs[i] = fmt.Sprintf("'%s/%s/**/*.parquet'", sqlString(r), table)
	}
	return fmt.Sprintf("read_parquet([%s], hive_partitioning=true)", strings.Join(globs, ", "))
}

// queries are the DuckDB statements that reproduce the report's numbers.
// Each statement's result rows are, in order, the JSON values named in
// docs/report.md; test/compat/report runs these exact strings.
func queries(o Options, from, to, prevFrom time.Time, priv []uint32) []Query {
	loc, zones := o.Location, o.Zones
	flows, stats := readParquet(o.Archives, "flows"), readParquet(o.Archives, "stats")
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
		{"denied_new_pairs", fmt.Sprintf("SELECT count(*) FROM (SELECT DISTINCT %[1]s FROM %[2]s WHERE %[3]s AND verdict IN ('DROPPED', 'AUDIT') EXCEPT SELECT DISTINCT %[1]s FROM %[2]s WHERE %[4]s AND verdict IN ('DROPPED', 'AUDIT'))", deniedTuple, flows, where, prevWhere)},
		{"privileged_by_port", fmt.Sprintf("SELECT coalesce(CAST(l4_destination_port AS VARCHAR), '') AS port, count(*) FROM %s WHERE %s AND (l4_destination_port IN (%s) OR destination_identity = 7) GROUP BY 1 ORDER BY 2 DESC, 1", flows, where, portList(priv))},
		{"world_egress_total", fmt.Sprintf("SELECT count(*) FROM %s WHERE %s AND %s", flows, where, worldDestSQL)},
		{"denied_total", fmt.Sprintf("SELECT count(*) FROM %s WHERE %s AND verdict IN ('DROPPED', 'AUDIT')", flows, where)},
		{"daily", fmt.Sprintf("SELECT strftime(timezone('%s', time), '%%Y-%%m-%%d') AS day, count(*), count(*) FILTER (WHERE verdict = 'DROPPED'), count(*) FILTER (WHERE verdict = 'AUDIT') FROM %s WHERE %s GROUP BY 1 ORDER BY 1", sqlString(loc.String()), flows, where)},
		{"coverage", fmt.Sprintf("SELECT node, count(DISTINCT epoch_us(minute) // 3600000000) AS hours_with_stats, sum(flows_seen), sum(flows_kept), sum(flows_denied), sum(decode_errors), sum(lost_events), sum(lost_rotation_bytes) FROM %s WHERE epoch_us(minute) >= %d AND epoch_us(minute) < %d%s GROUP BY node ORDER BY node", stats, from.UnixMicro(), to.UnixMicro(), statsScope)},
	}, zoneQueries(zones, flows, where)...)
}

// sqlString escapes s for a single-quoted SQL string literal.
func sqlString(s string) string { return strings.ReplaceAll(s, "'", "''") }

// endpointSQL is the DuckDB expression of epKey.String for one side of a
// flow (prefix "source" or "destination").
func endpointSQL(prefix, names, ip string) string {
	return fmt.Sprintf(`CASE WHEN %[1]s_namespace IS NOT NULL AND len(%[1]s_workloads) > 0 THEN %[1]s_namespace || '/' || %[1]s_workloads[1].name `+
		`WHEN %[1]s_namespace IS NOT NULL AND %[1]s_pod_name IS NOT NULL THEN %[1]s_namespace || '/' || %[1]s_pod_name `+
		`WHEN len(%[2]s) > 0 THEN %[2]s[1] `+
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
