package report

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// DefaultPrivilegedPorts are the destination ports of section "privileged
// paths" unless Options.PrivilegedPorts says otherwise: SSH, RDP, the
// kube-apiserver and common databases (MySQL, PostgreSQL, Oracle, SQL Server,
// MongoDB, Redis). Flows to the kube-apiserver identity (7) count whatever
// their port.
var DefaultPrivilegedPorts = []uint32{22, 3389, 6443, 3306, 5432, 1521, 1433, 27017, 6379}

// identityKubeAPIServer is Cilium's reserved:kube-apiserver identity.
const identityKubeAPIServer = 7

// isWorld reports whether id is one of Cilium's world identities
// (reserved:world, world-ipv4, world-ipv6).
func isWorld(id uint32) bool { return id == 2 || id == 9 || id == 10 }

// worldLabels are the reserved labels of Cilium's world identities.
var worldLabels = []string{"reserved:world", "reserved:world-ipv4", "reserved:world-ipv6"}

// worldDest reports whether the flow goes to the internet: a world identity
// (2, 9, 10) or a reserved:world label on the destination.
func worldDest(r *flowRow) bool {
	if r.DestIdentity != nil && isWorld(*r.DestIdentity) {
		return true
	}
	for _, l := range r.DestLabels {
		if slices.Contains(worldLabels, l) {
			return true
		}
	}
	return false
}

// worldDestSQL is worldDest in DuckDB; never NULL.
const worldDestSQL = "(coalesce(destination_identity IN (2, 9, 10), false) OR coalesce(list_has_any(destination_labels, ['reserved:world', 'reserved:world-ipv4', 'reserved:world-ipv6']), false))"

// epKey identifies one endpoint of a flow by the fields the report groups on.
// Its strings point into the scanned row until symbols.ep stores it.
type epKey struct {
	ns, name, ip string
	id           uint32
	hasID        bool
}

// symbols numbers the strings and endpoints the aggregator's groups hold, so
// that a group's key is a few integers (a month's 750k denied pairs of 36
// bytes, not of 200 and their strings' copies), compared and hashed as
// integers, and each string is kept once however many groups hold it.
// Symbol 0 is "" (and NULL where the report does not tell them apart).
type symbols struct {
	strIDs map[string]uint32
	strs   []string
	epIDs  map[epKey]uint32
	eps    []epKey
}

func newSymbols() *symbols {
	return &symbols{strIDs: map[string]uint32{"": 0}, strs: []string{""}, epIDs: map[epKey]uint32{}}
}

// str returns the symbol of s (which may point into a scanned row).
func (t *symbols) str(s string) uint32 {
	if id, ok := t.strIDs[s]; ok {
		return id
	}
	s = strings.Clone(s)
	id := uint32(len(t.strs))
	t.strs = append(t.strs, s)
	t.strIDs[s] = id
	return id
}

// ptr is str of a field that may be NULL.
func (t *symbols) ptr(p *string) uint32 {
	if p == nil {
		return 0
	}
	return t.str(*p)
}

// ep returns the symbol of the endpoint k (whose strings may point into a
// scanned row).
func (t *symbols) ep(k epKey) uint32 {
	if id, ok := t.epIDs[k]; ok {
		return id
	}
	k.ns, k.name, k.ip = t.strs[t.str(k.ns)], t.strs[t.str(k.name)], t.strs[t.str(k.ip)]
	id := uint32(len(t.eps))
	t.eps = append(t.eps, k)
	t.epIDs[k] = id
	return id
}

// String renders the endpoint as the report shows it: namespace/workload
// (or pod), else the first DNS name, else world:IP, identity:N or the IP.
func (k epKey) String() string {
	switch {
	case k.ns != "" && k.name != "":
		return k.ns + "/" + k.name
	case k.name != "":
		return k.name
	case k.hasID && isWorld(k.id):
		return "world:" + k.ip
	case k.hasID:
		return "identity:" + strconv.FormatUint(uint64(k.id), 10)
	case k.ip != "":
		return k.ip
	}
	return "unknown"
}

func endpointKey(ns *string, wl []archive.Workload, pod *string, id *uint32, names []string, ip *string) epKey {
	var k epKey
	switch {
	case ns != nil && len(wl) > 0:
		k.ns, k.name = *ns, wl[0].Name
	case ns != nil && pod != nil:
		k.ns, k.name = *ns, *pod
	case len(names) > 0 && names[0] != "":
		// An empty first name shows nothing: the rules below name the
		// endpoint instead (endpointSQL does the same).
		k.name = names[0]
	default:
		// Only what String shows is part of the key, so that groups are
		// exactly the rendered endpoints (and the SQL's DISTINCT).
		if id != nil {
			k.id, k.hasID = *id, true
		}
		if ip != nil && (id == nil || isWorld(*id)) {
			k.ip = *ip
		}
	}
	return k
}

// The groups' keys: endpoints and strings are symbols.
type pairKey struct {
	src, dst                               uint32
	port                                   uint32
	hasPort                                bool
	proto, reason, polNs, polName, verdict uint32
}

type httpKey struct{ code, method, dst uint32 }

type dnsKey struct{ rcode, query uint32 }

type egressKey struct{ src, name uint32 }

type privKey struct {
	src, dst, port uint32
	hasPort        bool
	proto, verdict uint32
}

// aggregator folds flow rows into exact counts. Its maps are keyed by the
// groups the report shows, so memory grows with the number of distinct
// workloads, pairs and ports, never with the number of flows; a key's strings
// and endpoints are symbols, stored once when first seen, so adding a row of
// an existing group allocates nothing.
type aggregator struct {
	loc        *time.Location
	privileged map[uint32]bool
	sym        *symbols

	total, denied, worldTotal int64
	verdicts                  map[string]int64
	days                      map[int32]*dayAgg // yyyymmdd in loc
	nodes                     map[string]bool
	namespaces                map[string]bool
	pairs                     map[pairKey]int64
	talkers                   map[[2]uint32]int64
	httpErr                   map[httpKey]int64
	dnsFail                   map[dnsKey]int64
	world                     map[egressKey]int64
	priv                      map[privKey]int64
	// approved are the sources approved for privileged paths (nil: none
	// configured); unapproved counts the request flows on a privileged
	// path from any other source that were not stopped.
	approved    *Selector
	unapproved  int64
	unapprovedK map[privKey]int64
	zones       []*zoneAgg
	// namespaceFilter keeps only flows from or to these namespaces (nil: all).
	namespaceFilter []string
	// previous holds last month's denied groups (nil: not computed).
	previous map[pairKey]bool
}

type dayAgg struct{ total, dropped, audit, forwarded int64 }

// newAggregator returns an aggregator whose symbols are sym (shared with the
// previous month's pairs, whose keys are compared with this month's).
func newAggregator(sym *symbols, loc *time.Location, privileged []uint32, zones []Zone) *aggregator {
	a := &aggregator{
		loc: loc, privileged: map[uint32]bool{}, sym: sym,
		verdicts: map[string]int64{}, days: map[int32]*dayAgg{}, nodes: map[string]bool{}, namespaces: map[string]bool{},
		pairs: map[pairKey]int64{}, talkers: map[[2]uint32]int64{}, httpErr: map[httpKey]int64{}, dnsFail: map[dnsKey]int64{},
		world: map[egressKey]int64{}, priv: map[privKey]int64{}, unapprovedK: map[privKey]int64{},
	}
	for _, p := range privileged {
		a.privileged[p] = true
	}
	for _, z := range zones {
		a.zones = append(a.zones, &zoneAgg{z: z, violations: map[privKey]int64{}, world: map[egressKey]int64{}})
	}
	return a
}

func deref(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func addStr(m map[string]int64, k string) {
	if _, ok := m[k]; !ok {
		k = strings.Clone(k)
	}
	m[k]++
}

func markStr(m map[string]bool, k string) {
	if k != "" && !m[k] {
		m[strings.Clone(k)] = true
	}
}

// add counts one batch of rows. rows may be reused by the caller afterwards.
func (a *aggregator) add(rows []flowRow) {
	for i := range rows {
		a.addRow(&rows[i])
	}
}

// deniedKey is the group of a denied flow.
func deniedKey(t *symbols, r *flowRow, src, dst, port uint32, verdict string) pairKey {
	k := pairKey{src: src, dst: dst, port: port, hasPort: r.L4DestPort != nil, proto: t.ptr(r.L4Protocol), reason: t.ptr(r.DropReasonDesc), verdict: t.str(verdict)}
	for _, l := range [2][]archive.Policy{r.IngressDeniedBy, r.EgressDeniedBy} {
		if len(l) > 0 {
			k.polNs, k.polName = t.str(l[0].Namespace), t.str(l[0].Name)
			break
		}
	}
	return k
}

// endpoints returns the symbols of the flow's source and destination.
func endpoints(t *symbols, r *flowRow) (src, dst uint32) {
	return t.ep(endpointKey(r.SourceNamespace, r.SourceWorkloads, r.SourcePod, r.SourceIdentity, r.SourceNames, r.IPSource)),
		t.ep(endpointKey(r.DestNamespace, r.DestWorkloads, r.DestPod, r.DestIdentity, r.DestinationNames, r.IPDestination))
}

// inScope reports whether the row passes the --namespace filter: its source
// or destination namespace is one of namespaces (nil: every row).
func inScope(r *flowRow, namespaces []string) bool {
	if namespaces == nil {
		return true
	}
	return (r.SourceNamespace != nil && slices.Contains(namespaces, *r.SourceNamespace)) ||
		(r.DestNamespace != nil && slices.Contains(namespaces, *r.DestNamespace))
}

// previousPairs collects the denied groups of the previous month, to mark
// the pairs denied for the first time. Memory: one entry per group.
type previousPairs struct {
	namespaces []string
	sym        *symbols
	seen       map[pairKey]bool
	// total, denied and world are the previous month's flows, denied flows
	// and flows to the internet, for the month-over-month comparison; days
	// its flows per day of the month, in loc.
	total, denied, world int64
	days                 [31]int64
	loc                  *time.Location
}

// dailyTotals is the previous month's flows per day, one entry per day of
// that month, whose end (this month's start) is to.
func (p *previousPairs) dailyTotals(to time.Time) []int64 {
	return slices.Clone(p.days[:to.In(p.loc).AddDate(0, 0, -1).Day()])
}

func (p *previousPairs) add(rows []flowRow) {
	for i := range rows {
		r := &rows[i]
		if !inScope(r, p.namespaces) {
			continue
		}
		p.total++
		p.days[time.UnixMicro(r.Time).In(p.loc).Day()-1]++
		if worldDest(r) {
			p.world++
		}
		v := deref(r.Verdict, "")
		if v != "DROPPED" && v != "AUDIT" {
			continue
		}
		p.denied++
		var port uint32
		if r.L4DestPort != nil {
			port = *r.L4DestPort
		}
		src, dst := endpoints(p.sym, r)
		p.seen[deniedKey(p.sym, r, src, dst, port, v)] = true
	}
}

func (a *aggregator) addRow(r *flowRow) {
	if !inScope(r, a.namespaceFilter) {
		return
	}
	a.total++
	v := deref(r.Verdict, "VERDICT_UNKNOWN")
	addStr(a.verdicts, v)
	y, m, d := time.UnixMicro(r.Time).In(a.loc).Date()
	dk := int32(y*10000 + int(m)*100 + d)
	day := a.days[dk]
	if day == nil {
		day = &dayAgg{}
		a.days[dk] = day
	}
	day.total++
	switch v {
	case "DROPPED":
		day.dropped++
	case "AUDIT":
		day.audit++
	case "FORWARDED":
		day.forwarded++
	}
	markStr(a.nodes, deref(r.NodeName, ""))
	markStr(a.namespaces, deref(r.SourceNamespace, ""))
	markStr(a.namespaces, deref(r.DestNamespace, ""))

	t := a.sym
	src, dst := endpoints(t, r)
	if r.IsReply == nil || !*r.IsReply {
		a.talkers[[2]uint32{src, dst}]++
	}
	var port uint32
	if r.L4DestPort != nil {
		port = *r.L4DestPort
	}
	for _, za := range a.zones {
		za.addRow(t, r, src, dst, port)
	}
	if v == "DROPPED" || v == "AUDIT" {
		a.denied++
		a.pairs[deniedKey(t, r, src, dst, port, v)]++
	}
	if (r.L4DestPort != nil && a.privileged[port]) || (r.DestIdentity != nil && *r.DestIdentity == identityKubeAPIServer) {
		k := privKey{src: src, dst: dst, port: port, hasPort: r.L4DestPort != nil, proto: t.ptr(r.L4Protocol), verdict: t.str(v)}
		a.priv[k]++
		if a.approved != nil && (r.IsReply == nil || !*r.IsReply) && reached(r.Verdict) && !a.approved.match(r.SourceNamespace, r.SourceLabels) {
			a.unapproved++
			a.unapprovedK[k]++
		}
	}
	if c := r.L7HTTPCode; c != nil && *c >= 400 {
		a.httpErr[httpKey{code: *c, method: t.ptr(r.L7HTTPMethod), dst: dst}]++
	}
	if rc := r.L7DNSRcode; rc != nil && *rc != 0 {
		a.dnsFail[dnsKey{rcode: *rc, query: t.ptr(r.L7DNSQuery)}]++
	}
	if worldDest(r) {
		a.worldTotal++
		a.world[egressKey{src: src, name: worldName(t, r)}]++
	}
}

// worldName is the symbol of the name a flow to the world is shown by: its
// first DNS name, else its destination IP, else "unknown" (as an endpoint
// with neither), never an empty name.
func worldName(t *symbols, r *flowRow) uint32 {
	if len(r.DestinationNames) > 0 && r.DestinationNames[0] != "" {
		return t.str(r.DestinationNames[0])
	}
	if r.IPDestination != nil && *r.IPDestination != "" {
		return t.str(*r.IPDestination)
	}
	return t.str("unknown")
}

// finish writes the aggregates into rep, keeping topN rows of each top list.
func (a *aggregator) finish(rep *Report, topN int) {
	t := a.sym
	rep.TotalFlows, rep.DeniedTotal = a.total, a.denied
	rep.Verdicts = sortedCounts(a.verdicts, 0)
	keys := make([]int32, 0, len(a.days))
	for k := range a.days {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		d := a.days[k]
		rep.Daily = append(rep.Daily, DayCount{
			Day:   fmt.Sprintf("%04d-%02d-%02d", k/10000, k/100%100, k%100),
			Total: d.total, Dropped: d.dropped, Audit: d.audit, Forwarded: d.forwarded,
		})
	}
	// Endpoints are rendered once; the groups are ranked on their counts
	// first, so only the few that can enter a top list are rendered.
	ep := make([]string, len(t.eps))
	for i, e := range t.eps {
		ep[i] = e.String()
	}
	denied := ranking[Pair]{n: topN, cmp: func(x, y Pair) int {
		if c := cmp.Compare(y.Count, x.Count); c != 0 {
			return c
		}
		return strings.Compare(x.sortKey(), y.sortKey())
	}}
	for k, c := range a.pairs {
		isNew := a.previous != nil && !a.previous[k]
		if isNew {
			rep.DeniedNewPairs++
		}
		rep.DeniedPairs++
		if !denied.mayTake(c) {
			continue
		}
		p := Pair{Source: ep[k.src], Destination: ep[k.dst], Protocol: t.strs[k.proto], Reason: t.strs[k.reason], Verdict: t.strs[k.verdict], Count: c, NewThisMonth: isNew}
		if k.hasPort {
			p.Port = strconv.FormatUint(uint64(k.port), 10)
		}
		if k.polName != 0 {
			p.Policy = t.strs[k.polNs] + "/" + t.strs[k.polName]
		}
		denied.add(p)
	}
	rep.Denied = denied.sorted()
	for k := range a.previous {
		if _, ok := a.pairs[k]; !ok {
			rep.DeniedGonePairs++
		}
	}
	perPort := map[string]int64{}
	priv := ranking[Privileged]{n: topN, cmp: func(x, y Privileged) int {
		if c := cmp.Compare(y.Count, x.Count); c != 0 {
			return c
		}
		return strings.Compare(x.Source+"\x00"+x.Destination+"\x00"+x.Port+"\x00"+x.Verdict, y.Source+"\x00"+y.Destination+"\x00"+y.Port+"\x00"+y.Verdict)
	}}
	for k, c := range a.priv {
		port := ""
		if k.hasPort {
			port = strconv.FormatUint(uint64(k.port), 10)
		}
		perPort[port] += c
		if priv.mayTake(c) {
			priv.add(Privileged{Source: ep[k.src], Destination: ep[k.dst], Port: port, Protocol: t.strs[k.proto], Verdict: t.strs[k.verdict], Count: c})
		}
	}
	rep.Privileged = priv.sorted()
	unapproved := ranking[Privileged]{n: topN, cmp: priv.cmp}
	for k, c := range a.unapprovedK {
		port := ""
		if k.hasPort {
			port = strconv.FormatUint(uint64(k.port), 10)
		}
		if unapproved.mayTake(c) {
			unapproved.add(Privileged{Source: ep[k.src], Destination: ep[k.dst], Port: port, Protocol: t.strs[k.proto], Verdict: t.strs[k.verdict], Count: c})
		}
	}
	rep.PrivilegedUnapprovedTop = unapproved.sorted()
	rep.PrivilegedUnapproved = a.unapproved
	rep.PrivilegedByPort = sortedCounts(perPort, 0)

	talkers := make(map[string]int64, len(a.talkers))
	for k, c := range a.talkers {
		talkers[ep[k[0]]+" -> "+ep[k[1]]] += c
	}
	rep.TopTalkers = sortedCounts(talkers, topN)
	httpErr := map[string]int64{}
	for k, c := range a.httpErr {
		httpErr[fmt.Sprintf("%d %s %s", k.code, t.strs[k.method], ep[k.dst])] += c
	}
	rep.HTTPErrors = sortedCounts(httpErr, topN)
	dns := map[string]int64{}
	for k, c := range a.dnsFail {
		dns[fmt.Sprintf("rcode=%d %s", k.rcode, t.strs[k.query])] += c
	}
	rep.DNSFailures = sortedCounts(dns, topN)
	world := map[string]int64{}
	for k, c := range a.world {
		world[ep[k.src]+" -> "+t.strs[k.name]] += c
	}
	rep.WorldEgress = sortedCounts(world, topN)
	rep.WorldEgressTotal = a.worldTotal
	rep.Namespaces = len(a.namespaces)
	for _, za := range a.zones {
		rep.Zones = append(rep.Zones, za.result(t, topN))
	}
}

// ranking keeps the first n items in the order cmp (n <= 0: every item),
// which ranks a larger Count first.
type ranking[T interface{ count() int64 }] struct {
	n     int
	cmp   func(x, y T) int
	items []T
}

// mayTake reports whether an item of count c can be among the first n.
func (r *ranking[T]) mayTake(c int64) bool {
	return r.n <= 0 || len(r.items) < r.n || c >= r.items[len(r.items)-1].count()
}

func (r *ranking[T]) add(v T) {
	if r.n <= 0 {
		r.items = append(r.items, v)
		return
	}
	i, _ := slices.BinarySearchFunc(r.items, v, r.cmp)
	if i >= r.n {
		return
	}
	if len(r.items) < r.n {
		r.items = append(r.items, v)
	}
	copy(r.items[i+1:], r.items[i:len(r.items)-1])
	r.items[i] = v
}

// sorted returns the items in order.
func (r *ranking[T]) sorted() []T {
	if r.n <= 0 {
		slices.SortFunc(r.items, r.cmp)
	}
	return r.items
}

func (p Pair) count() int64       { return p.Count }
func (p Privileged) count() int64 { return p.Count }

func (p Pair) sortKey() string {
	return strings.Join([]string{p.Source, p.Destination, p.Protocol, p.Port, p.Reason, p.Policy, p.Verdict}, "\x00")
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

// ParsePorts parses a privileged-port list: port numbers separated by commas,
// blanks or newlines; '#' starts a comment to the end of the line (so a file's
// contents can be passed as they are).
func ParsePorts(s string) ([]uint32, error) {
	var out []uint32
	for ln, line := range strings.Split(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			p, err := strconv.ParseUint(f, 10, 16)
			if err != nil || p == 0 {
				return nil, fmt.Errorf("report: privileged ports line %d: %q is not a port (1-65535)", ln+1, f)
			}
			if !slices.Contains(out, uint32(p)) {
				out = append(out, uint32(p))
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("report: privileged ports: empty list")
	}
	return out, nil
}
