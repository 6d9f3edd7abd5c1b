package report

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// Options select the month and scope of a report.
type Options struct {
	Archive  string
	Month    time.Time      // any time in the month; only year and month count
	Location *time.Location // the month is a calendar month here (default UTC)
	Nodes    []string       // restrict to these node names (nil: all)
	TopN     int            // rows of the top-N tables (default 20)
	Now      time.Time      // generation time (tests)
}

// Count is one labelled number with the DuckDB SQL that reproduces it.
type Count struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// DayCount is the flows of one day by verdict.
type DayCount struct {
	Day       string           `json:"day"` // YYYY-MM-DD in the report's time zone
	Total     int64            `json:"total"`
	ByVerdict map[string]int64 `json:"by_verdict"`
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
	Month        string                `json:"month"`
	TimeZone     string                `json:"time_zone"`
	FromUTC      time.Time             `json:"from_utc"`
	ToUTC        time.Time             `json:"to_utc"`
	Generated    time.Time             `json:"generated"`
	Archive      string                `json:"archive"`
	Nodes        []string              `json:"nodes"`
	Namespaces   int                   `json:"namespaces"`
	Versions     []string              `json:"collector_versions"`
	ConfigHashes []string              `json:"config_hashes"`
	TotalFlows   int64                 `json:"total_flows"`
	Verdicts     []Count               `json:"verdicts"`
	Daily        []DayCount            `json:"daily"`
	Coverage     []NodeCoverage        `json:"coverage"`
	Denied       []Pair                `json:"denied_top"`
	DeniedTotal  int64                 `json:"denied_total"`
	TopTalkers   []Count               `json:"top_talkers"`
	HTTPErrors   []Count               `json:"http_errors"`
	DNSFailures  []Count               `json:"dns_failures"`
	WorldEgress  []Count               `json:"world_egress_top"`
	Integrity    *archive.VerifyReport `json:"integrity"`
	Queries      []Query               `json:"queries"`
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
	return t, nil
}

type pairKey struct{ src, dst, port, proto, reason, policy, verdict string }

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
		Generated: o.Now.UTC(), Archive: o.Archive,
	}
	sc, err := archive.OpenScanner(o.Archive)
	if err != nil {
		return nil, err
	}
	opts := archive.ScanOptions{From: from, To: to, Nodes: o.Nodes}
	verdicts := map[string]int64{}
	days := map[string]*DayCount{}
	nodes := map[string]bool{}
	nss := map[string]bool{}
	pairs := map[pairKey]int64{}
	talkers := map[string]int64{}
	httpErr := map[string]int64{}
	dnsFail := map[string]int64{}
	world := map[string]int64{}
	err = sc.ScanFlows(ctx, opts, func(rows []archive.FlowRow) error {
		for i := range rows {
			r := &rows[i]
			rep.TotalFlows++
			v := deref(r.Verdict, "VERDICT_UNKNOWN")
			verdicts[v]++
			day := time.UnixMicro(r.Time).In(o.Location).Format("2006-01-02")
			d := days[day]
			if d == nil {
				d = &DayCount{Day: day, ByVerdict: map[string]int64{}}
				days[day] = d
			}
			d.Total++
			d.ByVerdict[v]++
			if n := deref(r.NodeName, ""); n != "" && !nodes[n] {
				nodes[strings.Clone(n)] = true
			}
			if ns := deref(r.SourceNamespace, ""); ns != "" && !nss[ns] {
				nss[strings.Clone(ns)] = true
			}
			if ns := deref(r.DestNamespace, ""); ns != "" && !nss[ns] {
				nss[strings.Clone(ns)] = true
			}
			src, dst := endpoint(r.SourceNamespace, r.SourceWorkloads, r.SourcePod, r.SourceIdentity, r.SourceNames, r.IPSource), endpoint(r.DestNamespace, r.DestWorkloads, r.DestPod, r.DestIdentity, r.DestinationNames, r.IPDestination)
			if r.IsReply == nil || !*r.IsReply {
				talkers[src+" -> "+dst]++
			}
			if v == "DROPPED" || v == "AUDIT" {
				rep.DeniedTotal++
				k := pairKey{src: src, dst: dst, port: portOf(r.L4DestPort), proto: deref(r.L4Protocol, ""), reason: deref(r.DropReasonDesc, ""), policy: policyOf(r), verdict: v}
				pairs[k]++
			}
			if c := r.L7HTTPCode; c != nil && *c >= 400 {
				httpErr[fmt.Sprintf("%d %s %s", *c, deref(r.L7HTTPMethod, ""), dst)]++
			}
			if rc := r.L7DNSRcode; rc != nil && *rc != 0 {
				dnsFail[fmt.Sprintf("rcode=%d %s", *rc, deref(r.L7DNSQuery, ""))]++
			}
			if id := r.DestIdentity; id != nil && (*id == 2 || *id == 9 || *id == 10) {
				name := deref(r.IPDestination, "")
				if len(r.DestinationNames) > 0 {
					name = r.DestinationNames[0]
				}
				world[src+" -> "+name]++
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.Verdicts = sortedCounts(verdicts, 0)
	for _, d := range days {
		rep.Daily = append(rep.Daily, *d)
	}
	slices.SortFunc(rep.Daily, func(a, b DayCount) int { return strings.Compare(a.Day, b.Day) })
	for k, c := range pairs {
		rep.Denied = append(rep.Denied, Pair{Source: k.src, Destination: k.dst, Port: k.port, Protocol: k.proto, Reason: k.reason, Policy: k.policy, Verdict: k.verdict, Count: c})
	}
	slices.SortFunc(rep.Denied, func(a, b Pair) int {
		if a.Count != b.Count {
			return int(b.Count - a.Count)
		}
		return strings.Compare(a.Source+a.Destination+a.Port, b.Source+b.Destination+b.Port)
	})
	if len(rep.Denied) > o.TopN {
		rep.Denied = rep.Denied[:o.TopN]
	}
	rep.TopTalkers = sortedCounts(talkers, o.TopN)
	rep.HTTPErrors = sortedCounts(httpErr, o.TopN)
	rep.DNSFailures = sortedCounts(dnsFail, o.TopN)
	rep.WorldEgress = sortedCounts(world, o.TopN)
	rep.Namespaces = len(nss)

	if err := coverage(ctx, sc, opts, rep, nodes); err != nil {
		return nil, err
	}
	for n := range nodes {
		rep.Nodes = append(rep.Nodes, n)
	}
	slices.Sort(rep.Nodes)
	vr, err := archive.Verify(o.Archive, from, to, nil)
	if err != nil {
		return nil, err
	}
	rep.Integrity = vr
	rep.Queries = queries(o.Archive, from, to)
	return rep, nil
}

func coverage(ctx context.Context, sc *archive.Scanner, opts archive.ScanOptions, rep *Report, nodes map[string]bool) error {
	type hour struct {
		rows       bool
		seen, lost int64
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

func deref(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func endpoint(ns *string, wl []archive.Workload, pod *string, id *uint32, names []string, ip *string) string {
	switch {
	case ns != nil && len(wl) > 0:
		return *ns + "/" + wl[0].Name
	case ns != nil && pod != nil:
		return *ns + "/" + *pod
	case len(names) > 0:
		return names[0]
	case id != nil && (*id == 2 || *id == 9 || *id == 10):
		return "world:" + deref(ip, "")
	case id != nil:
		return fmt.Sprintf("identity:%d", *id)
	}
	return deref(ip, "unknown")
}

func portOf(p *uint32) string {
	if p == nil {
		return ""
	}
	return fmt.Sprint(*p)
}

func policyOf(r *archive.FlowRow) string {
	for _, l := range [][]archive.Policy{r.IngressDeniedBy, r.EgressDeniedBy} {
		if len(l) > 0 {
			return l[0].Namespace + "/" + l[0].Name
		}
	}
	return ""
}

func sortedCounts(m map[string]int64, n int) []Count {
	out := make([]Count, 0, len(m))
	for k, v := range m {
		out = append(out, Count{Key: k, Count: v})
	}
	slices.SortFunc(out, func(a, b Count) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// queries are the DuckDB statements that reproduce the report's numbers.
func queries(root string, from, to time.Time) []Query {
	flows := fmt.Sprintf("read_parquet('%s/flows/**/*.parquet', hive_partitioning=true)", root)
	stats := fmt.Sprintf("read_parquet('%s/stats/**/*.parquet', hive_partitioning=true)", root)
	// Epoch arithmetic on the microsecond column: cheaper than comparing
	// TIMESTAMP WITH TIME ZONE values (docs/format.md).
	where := fmt.Sprintf("epoch_us(time) >= %d AND epoch_us(time) < %d", from.UnixMicro(), to.UnixMicro())
	return []Query{
		{"total_flows", fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", flows, where)},
		{"verdicts", fmt.Sprintf("SELECT coalesce(verdict, 'VERDICT_UNKNOWN') AS verdict, count(*) FROM %s WHERE %s GROUP BY 1 ORDER BY 2 DESC, 1", flows, where)},
		{"denied_total", fmt.Sprintf("SELECT count(*) FROM %s WHERE %s AND verdict IN ('DROPPED', 'AUDIT')", flows, where)},
		{"coverage_flows_seen", fmt.Sprintf("SELECT node, sum(flows_seen), sum(flows_kept), sum(lost_events) FROM %s WHERE epoch_us(minute) >= %d AND epoch_us(minute) < %d GROUP BY node ORDER BY node", stats, from.UnixMicro(), to.UnixMicro())},
	}
}
