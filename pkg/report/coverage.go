package report

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
)

// NodeCoverage is the collection coverage of one node over the month, at
// minute resolution. A minute of the month is *evaluable* unless it comes
// before the node's first evidence in the archive or after the report was
// generated; an evaluable minute is *collected* when the stats table has a
// row for it and no loss touches it, *lost* when a loss does (a gap's time
// range from the losses table, or a loss counter of its stats row), and
// *down* otherwise (the collector was not running). Hours are classified
// from their minutes.
type NodeCoverage struct {
	Node string `json:"node"`
	// FirstEvidence is the node's first evidence when it falls in the
	// month (its minutes before are not evaluable); nil when the archive
	// knew the node before the month, or never (a node named by --node).
	FirstEvidence *time.Time `json:"first_evidence,omitempty"`

	Hours       int `json:"hours"`
	Collected   int `json:"hours_collected"`             // every evaluable minute collected, flows seen
	NoTraffic   int `json:"hours_no_traffic"`            // every evaluable minute collected, no flow
	Partial     int `json:"hours_partial"`               // some evaluable minutes down, none lost
	WithLoss    int `json:"hours_with_loss"`             // some evaluable minute lost: not collected in full
	Down        int `json:"hours_collector_down"`        // no evaluable minute collected or lost
	BeforeFirst int `json:"hours_before_first_evidence"` // no evaluable minute: before the first evidence
	AfterReport int `json:"hours_after_report"`          // no evaluable minute: after the report was generated

	Minutes          int     `json:"minutes"` // evaluable minutes
	MinutesCollected int     `json:"minutes_collected"`
	MinutesLost      int     `json:"minutes_lost"`
	MinutesDown      int     `json:"minutes_collector_down"`
	CoveragePct      float64 `json:"coverage_pct"` // minutes_collected / minutes (0 when nothing is evaluable)

	FlowsSeen     int64 `json:"flows_seen"`
	FlowsKept     int64 `json:"flows_kept"`
	FlowsDenied   int64 `json:"flows_denied_by_filter"`
	DecodeErrors  int64 `json:"decode_errors"`
	LostEvents    int64 `json:"hubble_lost_events"`
	LostRotation  int64 `json:"lost_rotation_bytes"`
	LostTruncated int64 `json:"lost_truncated_bytes"`
	LostTooLong   int64 `json:"lost_too_long_lines"`

	// MinutesUnexplained are the evaluable minutes whose stats rows count
	// losses (lost events, rotated or truncated bytes, over-long lines,
	// stream-down events, decode errors) that no loss record's range
	// covers: losses nothing explains.
	MinutesUnexplained int `json:"minutes_loss_unexplained"`
	// Configurations are the collector version and configuration hash
	// pairs of the node's stats rows in the month, each with the first and
	// last minute it was seen, by first minute: more than one is a change.
	Configurations []ConfigSpan `json:"configurations"`

	// Losses counts the loss records (losses table) that reach into the
	// month; each is one of Gaps.
	Losses  int      `json:"losses"`
	Gaps    []Gap    `json:"gaps"`
	Heatmap []string `json:"heatmap"` // per day: one char per hour (heatmapLegend)
}

// ConfigSpan is one collector version and configuration hash of a node and
// the minutes of its first and last stats row in the month.
type ConfigSpan struct {
	Version    string    `json:"collector_version"`
	ConfigHash string    `json:"config_hash"`
	First      time.Time `json:"first"`
	Last       time.Time `json:"last"`
}

// The heatmap's characters, one per hour.
const (
	heatCollected = '#'
	heatNoTraffic = '.'
	heatPartial   = '~'
	heatLoss      = '!'
	heatDown      = ' '
	heatNone      = '-' // before the first evidence, or after the report
)

// Gap is a time range in which the evidence of a node is incomplete: a
// loss (a range from the losses table, or the loss counters of an hour's
// stats rows) or a run of minutes with no stats row (the collector was not
// running). From is the last flow before a loss and To the first after it,
// where known.
type Gap struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Reason is a flow.Loss* reason, "collector_down", or "loss_counters"
	// (an hour's stats counters with no loss record behind them: archives
	// written before the losses table).
	Reason string `json:"reason"`
	// Amount is "exact", "at_least" or "unknown" for a loss; empty for
	// collector_down.
	Amount          string `json:"amount,omitempty"`
	LostEvents      *int64 `json:"lost_events,omitempty"`
	LostBytes       *int64 `json:"lost_bytes,omitempty"`
	EstimatedEvents *int64 `json:"estimated_events,omitempty"`
	// EstimateBasis says what EstimatedEvents is an estimate from:
	// "line_size" (the bytes lost over the source's mean line size) or
	// "rate" (the node's flow rate in the minutes around the gap).
	EstimateBasis string    `json:"estimate_basis,omitempty"`
	Detected      time.Time `json:"detected,omitzero"`
	Detail        string    `json:"detail,omitempty"`
	// Cause is the gap in one English sentence (the renderers translate it
	// from the fields above).
	Cause string `json:"cause"`
}

// rateWindow is how many minutes before and after a gap give the rate that
// estimates its lost flows.
const rateWindow = 10

// bitset is a set of minute indexes.
type bitset []uint64

func newBitset(n int) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) has(i int) bool { return b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) setRange(lo, hi int) {
	for i := lo; i <= hi; i++ {
		b.set(i)
	}
}

// hourAgg is what the stats rows of one hour of one node hold.
type hourAgg struct {
	seen                                                         int64
	lostEvents, rotation, truncated, tooLong, streamDown, decode uint64
}

// nodeCov gathers one node's coverage.
type nodeCov struct {
	c         *NodeCoverage
	rows      bitset                // minutes with a stats row
	lost      bitset                // minutes a loss touches
	counters  bitset                // minutes whose stats rows count losses
	configs   map[[2]string]*[2]int // version, hash -> first and last minute
	near      bitset                // minutes around a gap, whose flows give its rate
	seenNear  map[int]int64
	hours     []hourAgg
	losses    []archive.LossRow
	firstStat int // first minute with a stats row (-1: none)
	minutes   int // of the month
	known     bool
	first     time.Time // start of the earliest day the archive has of the node
}

// coverage computes rep.Coverage and the collector versions and
// configuration hashes of the month from the stats and losses tables, for
// every node the archive knows (or o.Nodes, when given), and adds them to
// nodes.
func coverage(ctx context.Context, sc *archive.Scanner, opts archive.ScanOptions, rep *Report, nodes map[string]bool) error {
	from, to, now := rep.FromUTC, rep.ToUTC, rep.Generated
	minutes := int(to.Sub(from) / time.Minute)
	fromUs := from.UnixMicro()
	minuteOf := func(us int64) int { return int(floorDiv(us-fromUs, 60e6)) }
	per := map[string]*nodeCov{}
	get := func(node string) *nodeCov {
		n := per[node]
		if n == nil {
			n = &nodeCov{
				c:    &NodeCoverage{Node: strings.Clone(node)},
				rows: newBitset(minutes), lost: newBitset(minutes), near: newBitset(minutes), counters: newBitset(minutes),
				configs:  map[[2]string]*[2]int{},
				seenNear: map[int]int64{}, hours: make([]hourAgg, (minutes+59)/60), firstStat: -1, minutes: minutes,
			}
			per[n.c.Node] = n
		}
		return n
	}
	known, err := sc.Nodes()
	if err != nil {
		return err
	}
	for _, k := range known {
		// A node the archive first knew after the month did not exist in
		// it, unless it is asked for.
		if (len(opts.Nodes) == 0 && k.First.Before(to)) || slices.Contains(opts.Nodes, k.Name) {
			n := get(k.Name)
			n.known, n.first = true, k.First
		}
	}
	for _, name := range opts.Nodes {
		get(name)
	}

	// The gaps first: the stats of the minutes around them give their rate.
	err = sc.ScanLosses(ctx, opts, func(rows []archive.LossRow) error {
		for _, r := range rows {
			n := get(r.Node)
			r.Node, r.Detail, r.Source = n.c.Node, strings.Clone(r.Detail), strings.Clone(r.Source)
			n.losses = append(n.losses, r)
			lo, hi := r.Range(r.Detected)
			a, b := max(minuteOf(lo), 0), min(minuteOf(hi), minutes-1)
			if a <= b {
				n.lost.setRange(a, b)
			}
			n.near.setRange(max(a-rateWindow, 0), min(b+rateWindow, minutes-1))
		}
		return nil
	})
	if err != nil {
		return err
	}
	versions, hashes := map[string]bool{}, map[string]bool{}
	err = sc.ScanStats(ctx, opts, func(rows []archive.StatRow) error {
		for _, r := range rows {
			n := get(r.Node)
			m := minuteOf(r.Minute)
			if m < 0 || m >= minutes {
				continue
			}
			n.rows.set(m)
			if n.firstStat < 0 || m < n.firstStat {
				n.firstStat = m
			}
			h := &n.hours[m/60]
			h.seen += int64(r.FlowsSeen)
			h.lostEvents += r.LostEvents
			h.rotation += r.LostRotation
			h.truncated += r.LostTruncated
			h.tooLong += r.LostTooLong
			h.streamDown += r.LostStreamDown
			h.decode += r.DecodeErrors
			if r.DecodeErrors+r.LostEvents+r.LostRotation+r.LostTruncated+r.LostTooLong+r.LostStreamDown > 0 {
				n.lost.set(m)
				n.counters.set(m)
			}
			if span := n.configs[[2]string{r.CollectorVersion, r.ConfigHash}]; span != nil {
				span[0], span[1] = min(span[0], m), max(span[1], m)
			} else {
				n.configs[[2]string{strings.Clone(r.CollectorVersion), strings.Clone(r.ConfigHash)}] = &[2]int{m, m}
			}
			if n.near.has(m) {
				n.seenNear[m] += int64(r.FlowsSeen)
			}
			c := n.c
			c.FlowsSeen += int64(r.FlowsSeen)
			c.FlowsKept += int64(r.FlowsKept)
			c.FlowsDenied += int64(r.FlowsDenied)
			c.DecodeErrors += int64(r.DecodeErrors)
			c.LostEvents += int64(r.LostEvents)
			c.LostRotation += int64(r.LostRotation)
			c.LostTruncated += int64(r.LostTruncated)
			c.LostTooLong += int64(r.LostTooLong)
			if !versions[r.CollectorVersion] {
				versions[strings.Clone(r.CollectorVersion)] = true
			}
			if !hashes[r.ConfigHash] {
				hashes[strings.Clone(r.ConfigHash)] = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Minutes from here on are not evaluable: the report cannot speak of them.
	nowMinute := minutes
	if now.Before(to) {
		nowMinute = max(0, min(minutes, int(math.Ceil(float64(now.Sub(from))/float64(time.Minute)))))
	}
	for _, n := range per {
		n.finish(from, minutes, nowMinute)
		rep.Coverage = append(rep.Coverage, *n.c)
		nodes[n.c.Node] = true
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

// firstMinute is the node's first evaluable minute. A node the archive
// knew before the month, or not at all (named by --node only: down until
// it is known), is evaluable from the month's start; otherwise the month
// holds its first evidence: its first stats row or loss, else the start of
// its first manifest day.
func (n *nodeCov) firstMinute(from time.Time, minutes int) int {
	fromUs := from.UnixMicro()
	first := -1
	if n.firstStat >= 0 {
		first = n.firstStat
	}
	for _, l := range n.losses {
		lo, _ := l.Range(l.Detected)
		if m := max(int(floorDiv(lo-fromUs, 60e6)), 0); first < 0 || m < first {
			first = m
		}
	}
	switch {
	case n.known && n.first.Before(from):
		return 0
	case first >= 0:
	case n.known:
		first = min(int(n.first.Sub(from)/time.Minute), minutes)
	default:
		return 0
	}
	if first > 0 && first < minutes {
		t := from.Add(time.Duration(first) * time.Minute).UTC()
		n.c.FirstEvidence = &t
	}
	return first
}

// finish classifies the minutes and hours of the month and lists the gaps.
func (n *nodeCov) finish(from time.Time, minutes, nowMinute int) {
	c := n.c
	first := n.firstMinute(from, minutes)
	evaluable := func(m int) bool { return m >= first && m < nowMinute }
	for m := first; m < nowMinute; m++ {
		c.Minutes++
		switch {
		case n.lost.has(m):
			c.MinutesLost++
		case n.rows.has(m):
			c.MinutesCollected++
		default:
			c.MinutesDown++
		}
	}
	if c.Minutes > 0 {
		c.CoveragePct = 100 * float64(c.MinutesCollected) / float64(c.Minutes)
	}
	heat := make([]byte, 0, len(n.hours))
	for h := range n.hours {
		var ev, lost, rows int
		for m := h * 60; m < min(h*60+60, minutes); m++ {
			if !evaluable(m) {
				continue
			}
			ev++
			if n.lost.has(m) {
				lost++
			} else if n.rows.has(m) {
				rows++
			}
		}
		c.Hours++
		var ch byte
		switch {
		case ev == 0 && h*60 < first:
			c.BeforeFirst++
			ch = heatNone
		case ev == 0:
			c.AfterReport++
			ch = heatNone
		case lost > 0:
			c.WithLoss++
			ch = heatLoss
		case rows == 0:
			c.Down++
			ch = heatDown
		case rows < ev:
			c.Partial++
			ch = heatPartial
		case n.hours[h].seen > 0:
			c.Collected++
			ch = heatCollected
		default:
			c.NoTraffic++
			ch = heatNoTraffic
		}
		heat = append(heat, ch)
	}
	for d := 0; d < len(heat); d += 24 {
		c.Heatmap = append(c.Heatmap, string(heat[d:min(d+24, len(heat))]))
	}
	n.gaps(from, minutes, first, nowMinute)
	at := func(m int) time.Time { return from.Add(time.Duration(m) * time.Minute).UTC() }
	for k, span := range n.configs {
		c.Configurations = append(c.Configurations, ConfigSpan{Version: k[0], ConfigHash: k[1], First: at(span[0]), Last: at(span[1])})
	}
	slices.SortFunc(c.Configurations, func(a, b ConfigSpan) int {
		return cmp.Or(a.First.Compare(b.First), a.Last.Compare(b.Last), strings.Compare(a.Version, b.Version), strings.Compare(a.ConfigHash, b.ConfigHash))
	})
}

// gaps lists the node's gaps in time order: each loss record, the hours
// whose loss counters no loss record explains, and each run of down
// minutes.
func (n *nodeCov) gaps(from time.Time, minutes, first, nowMinute int) {
	c := n.c
	at := func(m int) time.Time { return from.Add(time.Duration(m) * time.Minute).UTC() }
	explained := newBitset(minutes) // minutes a loss record covers
	fromUs := from.UnixMicro()
	for i := range n.losses {
		l := &n.losses[i]
		lo, hi := l.Range(l.Detected)
		a, b := max(int(floorDiv(lo-fromUs, 60e6)), 0), min(int(floorDiv(hi-fromUs, 60e6)), minutes-1)
		if a <= b {
			explained.setRange(a, b)
		}
		c.Losses++
		g := Gap{
			From: time.UnixMicro(lo).UTC(), To: time.UnixMicro(hi).UTC(), Reason: l.Reason, Amount: l.Amount,
			Detected: time.UnixMicro(l.Detected).UTC(), Detail: l.Detail,
		}
		if l.LostEvents != nil {
			g.LostEvents = ptr(int64(*l.LostEvents))
		}
		if l.LostBytes != nil {
			g.LostBytes = ptr(int64(*l.LostBytes))
		}
		if l.Amount != flow.AmountExact.String() || l.LostEvents == nil {
			if l.EstimatedEvents != nil {
				g.EstimatedEvents, g.EstimateBasis = ptr(int64(*l.EstimatedEvents)), "line_size"
			}
			if est, ok := n.rateEstimate(a, b, lo, hi); ok && (g.EstimatedEvents == nil || (l.Amount != flow.AmountExact.String() && est > *g.EstimatedEvents)) {
				g.EstimatedEvents, g.EstimateBasis = ptr(est), "rate"
			}
		}
		g.Cause = gapCause(labels["en"], g)
		c.Gaps = append(c.Gaps, g)
	}
	for m := first; m < nowMinute; m++ {
		if n.counters.has(m) && !explained.has(m) {
			c.MinutesUnexplained++
		}
	}
	// Loss counters of the stats rows that no loss record explains (decode
	// errors have none; archives written before the losses table have
	// counters only): one gap per hour, as the counters are per minute.
	for h, x := range n.hours {
		lo, hi := h*60, min(h*60+60, minutes)
		var counted bool
		for m := lo; m < hi; m++ {
			if n.lost.has(m) && !explained.has(m) && n.rows.has(m) {
				counted = true
				break
			}
		}
		if !counted {
			continue
		}
		var parts []string
		for _, v := range []struct {
			n    uint64
			what string
		}{{x.lostEvents, "Hubble lost events"}, {x.rotation, "bytes rotated away before read"}, {x.truncated, "bytes truncated under the reader"},
			{x.tooLong, "over-long lines skipped"}, {x.streamDown, "events lost while the stream was down"}, {x.decode, "undecodable lines"}} {
			if v.n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", v.n, v.what))
			}
		}
		if len(parts) == 0 {
			continue
		}
		g := Gap{From: at(lo), To: at(hi), Reason: "loss_counters", Detail: strings.Join(parts, ", ")}
		g.Cause = gapCause(labels["en"], g)
		c.Gaps = append(c.Gaps, g)
	}
	// Runs of evaluable minutes with neither a stats row nor a loss.
	for m := first; m < nowMinute; {
		if n.rows.has(m) || n.lost.has(m) {
			m++
			continue
		}
		start := m
		for m < nowMinute && !n.rows.has(m) && !n.lost.has(m) {
			m++
		}
		g := Gap{From: at(start), To: at(m), Reason: reasonCollectorDown}
		g.Cause = gapCause(labels["en"], g)
		c.Gaps = append(c.Gaps, g)
	}
	slices.SortStableFunc(c.Gaps, func(a, b Gap) int { return a.From.Compare(b.From) })
	if c.Gaps == nil {
		c.Gaps = []Gap{}
	}
}

// reasonCollectorDown is the Gap reason of minutes without a stats row.
const reasonCollectorDown = "collector_down"

// rateEstimate estimates the flows lost in [lo, hi] (µs) from the node's
// flow rate in the collected minutes around it (up to rateWindow before
// minute a and after minute b).
func (n *nodeCov) rateEstimate(a, b int, lo, hi int64) (int64, bool) {
	var flows int64
	var used int
	for m := a - 1; m >= 0 && m >= a-rateWindow; m-- {
		if n.rows.has(m) && !n.lost.has(m) {
			flows += n.seenNear[m]
			used++
		}
	}
	for m := b + 1; m < n.minutes && m <= b+rateWindow; m++ {
		if n.rows.has(m) && !n.lost.has(m) {
			flows += n.seenNear[m]
			used++
		}
	}
	if used == 0 || hi <= lo {
		return 0, false
	}
	perUs := float64(flows) / float64(used) / 60e6
	return int64(math.Round(perUs * float64(hi-lo))), true
}

func ptr[T any](v T) *T { return &v }

// floorDiv is a/b rounded towards minus infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// gapCause renders a gap's cause in the language of t.
func gapCause(t map[string]string, g Gap) string {
	if g.Reason == reasonCollectorDown {
		return t["cause_down"]
	}
	if g.Reason == "loss_counters" {
		return t["cause_counters"] + ": " + g.Detail
	}
	what := t["reason_"+g.Reason]
	if what == "" {
		what = g.Reason
	}
	var amount string
	switch {
	case g.Amount == flow.AmountExact.String() && g.LostEvents != nil && *g.LostEvents > 0:
		amount = fmt.Sprintf(t["amount_events"], *g.LostEvents)
	case g.Amount == flow.AmountExact.String() && g.LostBytes != nil:
		amount = fmt.Sprintf(t["amount_bytes"], *g.LostBytes)
	case g.Amount == flow.AtLeast.String() && g.LostBytes != nil:
		amount = fmt.Sprintf(t["amount_at_least_bytes"], *g.LostBytes)
	default:
		amount = t["amount_unknown"]
	}
	if g.EstimatedEvents != nil {
		amount += "; " + fmt.Sprintf(t["estimate_"+g.EstimateBasis], *g.EstimatedEvents)
	}
	s := what + " (" + amount + ")"
	if g.Detail != "" {
		s += ": " + g.Detail
	}
	return s
}
