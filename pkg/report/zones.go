package report

import (
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// ZonesFile is the --zones YAML document:
//
//	zones:
//	  - name: payments
//	    namespaces: [payments]            # endpoints in these namespaces
//	    labels: ["k8s:zone=pci"]          # or carrying all of these labels
//	    internal_only: true               # asserts 0 flows to world
//	    allowed_sources:
//	      namespaces: [frontend]
//	      labels: ["k8s:app=gateway"]
type ZonesFile struct {
	Zones []Zone `json:"zones,omitempty"`
	// PrivilegedSources are the sources approved to use privileged paths
	// (the check privileged_sources); nil: none configured, the check is
	// not evaluated.
	PrivilegedSources *Selector `json:"privileged_sources,omitempty"`
}

// Zone is one sensitive zone. An endpoint is in the zone when its namespace
// is one of Namespaces, or when Labels is not empty and the endpoint carries
// every one of them.
type Zone struct {
	Name           string   `json:"name"`
	Namespaces     []string `json:"namespaces,omitempty"`
	Labels         []string `json:"labels,omitempty"`
	InternalOnly   bool     `json:"internal_only,omitempty"`
	AllowedSources Selector `json:"allowed_sources,omitempty"`
}

// Selector matches endpoints by namespace or by a set of labels (all
// required), like a Zone.
type Selector struct {
	Namespaces []string `json:"namespaces,omitempty"`
	Labels     []string `json:"labels,omitempty"`
}

// ParseZones parses and validates a zones document that defines zones.
func ParseZones(b []byte) ([]Zone, error) {
	f, err := ParseZonesFile(b)
	if err != nil {
		return nil, err
	}
	if len(f.Zones) == 0 {
		return nil, fmt.Errorf("report: zones: no zones defined")
	}
	return f.Zones, nil
}

// ParseZonesFile parses and validates a zones document: its zones, and the
// sources approved for privileged paths. One of them must be there.
func ParseZonesFile(b []byte) (ZonesFile, error) {
	var f ZonesFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return ZonesFile{}, fmt.Errorf("report: zones: %w", err)
	}
	if ps := f.PrivilegedSources; ps != nil {
		if len(ps.Namespaces) == 0 && len(ps.Labels) == 0 {
			return ZonesFile{}, fmt.Errorf("report: zones: privileged_sources: neither namespaces nor labels")
		}
		if slices.Contains(ps.Namespaces, "") || slices.Contains(ps.Labels, "") {
			return ZonesFile{}, fmt.Errorf("report: zones: privileged_sources: empty namespace or label")
		}
	}
	seen := map[string]bool{}
	for i, z := range f.Zones {
		switch {
		case z.Name == "":
			return ZonesFile{}, fmt.Errorf("report: zones[%d]: name is empty", i)
		case seen[z.Name]:
			return ZonesFile{}, fmt.Errorf("report: zones[%d]: duplicate name %q", i, z.Name)
		case len(z.Namespaces) == 0 && len(z.Labels) == 0:
			return ZonesFile{}, fmt.Errorf("report: zones[%d] %q: neither namespaces nor labels", i, z.Name)
		}
		seen[z.Name] = true
		for j, s := range slices.Concat(z.Namespaces, z.Labels, z.AllowedSources.Namespaces, z.AllowedSources.Labels) {
			if s == "" {
				return ZonesFile{}, fmt.Errorf("report: zones[%d] %q: empty namespace or label (entry %d)", i, z.Name, j)
			}
		}
	}
	if len(f.Zones) == 0 && f.PrivilegedSources == nil {
		return ZonesFile{}, fmt.Errorf("report: zones: neither zones nor privileged_sources defined")
	}
	return f, nil
}

func (s Selector) match(ns *string, labels []string) bool {
	if ns != nil && slices.Contains(s.Namespaces, *ns) {
		return true
	}
	if len(s.Labels) == 0 {
		return false
	}
	for _, l := range s.Labels {
		if !slices.Contains(labels, l) {
			return false
		}
	}
	return true
}

func (z *Zone) members() Selector { return Selector{Namespaces: z.Namespaces, Labels: z.Labels} }

// ZoneResult is the sensitive-zone section for one zone.
type ZoneResult struct {
	Name         string `json:"name"`
	InternalOnly bool   `json:"internal_only"`
	// Inbound is the request flows (is_reply not true) into the zone from
	// outside it; Unauthorized those of them from a source not allowed.
	Inbound      int64 `json:"inbound_flows"`
	Unauthorized int64 `json:"unauthorized_flows"`
	// UnauthorizedReached is those of them that were not stopped: a
	// verdict other than DROPPED and ERROR (AUDIT flows went through).
	UnauthorizedReached int64   `json:"unauthorized_reached_flows"`
	Violations          []Count `json:"unauthorized_top"` // source -> destination:port
	// WorldEgress is the flows from the zone to a world identity.
	WorldEgress    int64   `json:"world_egress_flows"`
	WorldEgressTop []Count `json:"world_egress_top"`
	// AssertionHolds is "0 flows from an internal-only zone to world":
	// true unless InternalOnly and WorldEgress > 0.
	AssertionHolds bool `json:"internal_only_assertion_holds"`
}

type zoneAgg struct {
	z                                 Zone
	inbound, unauthorized, worldFlows int64
	reached                           int64
	violations                        map[privKey]int64 // port and verdict of the unauthorized flows
	world                             map[egressKey]int64
}

func (za *zoneAgg) addRow(t *symbols, r *flowRow, src, dst, port uint32) {
	m := za.z.members()
	srcIn, dstIn := m.match(r.SourceNamespace, r.SourceLabels), m.match(r.DestNamespace, r.DestLabels)
	if dstIn && !srcIn && (r.IsReply == nil || !*r.IsReply) {
		za.inbound++
		if !za.z.AllowedSources.match(r.SourceNamespace, r.SourceLabels) {
			za.unauthorized++
			if reached(r.Verdict) {
				za.reached++
			}
			za.violations[privKey{src: src, dst: dst, port: port, hasPort: r.L4DestPort != nil, proto: t.ptr(r.L4Protocol), verdict: t.str(deref(r.Verdict, "VERDICT_UNKNOWN"))}]++
		}
	}
	if srcIn && worldDest(r) {
		za.worldFlows++
		za.world[egressKey{src: src, name: worldName(t, r)}]++
	}
}

func (za *zoneAgg) result(t *symbols, topN int) ZoneResult {
	res := ZoneResult{Name: za.z.Name, InternalOnly: za.z.InternalOnly, Inbound: za.inbound, Unauthorized: za.unauthorized, UnauthorizedReached: za.reached, WorldEgress: za.worldFlows}
	res.AssertionHolds = !za.z.InternalOnly || za.worldFlows == 0
	v := map[string]int64{}
	for k, c := range za.violations {
		key := fmt.Sprintf("%s -> %s %s/", t.eps[k.src], t.eps[k.dst], t.strs[k.proto])
		if k.hasPort {
			key += fmt.Sprint(k.port)
		}
		v[key+" "+t.strs[k.verdict]] += c
	}
	res.Violations = sortedCounts(v, topN)
	w := map[string]int64{}
	for k, c := range za.world {
		w[t.eps[k.src].String()+" -> "+t.strs[k.name]] += c
	}
	res.WorldEgressTop = sortedCounts(w, topN)
	return res
}

// selectorSQL is the DuckDB condition of s.match on one side of a flow; it is
// never NULL.
func selectorSQL(s Selector, side string) string {
	var parts []string
	if len(s.Namespaces) > 0 {
		parts = append(parts, fmt.Sprintf("coalesce(%s_namespace IN (%s), false)", side, sqlList(s.Namespaces)))
	}
	if len(s.Labels) > 0 {
		parts = append(parts, fmt.Sprintf("coalesce(list_has_all(%s_labels, [%s]), false)", side, sqlList(s.Labels)))
	}
	if len(parts) == 0 {
		return "false"
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// reached reports whether a flow was not stopped: its verdict is neither
// DROPPED nor ERROR (a flow without a verdict cannot be shown stopped).
func reached(v *string) bool { return v == nil || (*v != "DROPPED" && *v != "ERROR") }

// reachedSQL is the DuckDB condition of reached.
const reachedSQL = "coalesce(verdict NOT IN ('DROPPED', 'ERROR'), true)"

func sqlList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + sqlString(s) + "'"
	}
	return strings.Join(q, ", ")
}

// zoneQueries returns, per zone, the statement whose single row is
// (inbound_flows, unauthorized_flows, world_egress_flows,
// unauthorized_reached_flows).
func zoneQueries(zones []Zone, flows, where string) []Query {
	var out []Query
	for _, z := range zones {
		in, src, allowed := selectorSQL(z.members(), "destination"), selectorSQL(z.members(), "source"), selectorSQL(z.AllowedSources, "source")
		inbound := fmt.Sprintf("%s AND NOT %s AND NOT coalesce(is_reply, false)", in, src)
		out = append(out, Query{Name: "zone " + z.Name, SQL: fmt.Sprintf(
			"SELECT count(*) FILTER (WHERE %[1]s), count(*) FILTER (WHERE %[1]s AND NOT %[2]s), count(*) FILTER (WHERE %[3]s AND %[4]s), count(*) FILTER (WHERE %[1]s AND NOT %[2]s AND %[7]s) FROM %[5]s WHERE %[6]s",
			inbound, allowed, src, worldDestSQL, flows, where, reachedSQL)})
	}
	return out
}
