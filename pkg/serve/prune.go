package serve

import (
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// valuesIn is a column of one string a row that must hold one of values
// for a row to pass a whitelist filter.
type valuesIn struct {
	column string
	values []string
}

// rowGroupPruner returns, for each whitelist filter, what it requires of
// the columns whose footer statistics can rule a row group out: the
// namespaces of source_pod and destination_pod ("ns/prefix"; a name
// without a namespace is in "default", as pkg/filter parses it), and the
// verdicts. A row group is skipped when each filter requires something
// its statistics rule out; nil when one filter requires nothing of them
// (or there is no whitelist). The filter program stays the judge of every
// row read.
func rowGroupPruner(allow []*flowpb.FlowFilter) [][]valuesIn {
	var out [][]valuesIn
	for _, ff := range allow {
		var req []valuesIn
		if v := namespacesOf(ff.GetSourcePod()); v != nil {
			req = append(req, valuesIn{"source_namespace", v})
		}
		if v := namespacesOf(ff.GetDestinationPod()); v != nil {
			req = append(req, valuesIn{"destination_namespace", v})
		}
		if v := verdictsOf(ff.GetVerdict()); v != nil {
			req = append(req, valuesIn{"verdict", v})
		}
		if len(req) == 0 {
			return nil
		}
		out = append(out, req)
	}
	return out
}

// namespacesOf is the namespaces that pod patterns require, nil when one
// of them requires none ("/prefix").
func namespacesOf(patterns []string) []string {
	if len(patterns) == 0 {
		return nil
	}
	var out []string
	for _, p := range patterns {
		ns, _, found := strings.Cut(p, "/")
		switch {
		case !found && p != "":
			ns = "default"
		case ns == "":
			return nil
		}
		out = append(out, ns)
	}
	return out
}

// verdictsOf is the names of verdicts as the archive stores them, nil when
// one of them is VERDICT_UNKNOWN (a NULL verdict).
func verdictsOf(vs []flowpb.Verdict) []string {
	if len(vs) == 0 {
		return nil
	}
	var out []string
	for _, v := range vs {
		if v == flowpb.Verdict_VERDICT_UNKNOWN {
			return nil
		}
		out = append(out, v.String())
	}
	return out
}

// ruledOut reports whether the footer statistics of the row group r reads
// show that no row of it passes the whitelist.
func ruledOut(r *archive.RowReader[archive.FlowRow], pruner [][]valuesIn) bool {
	if pruner == nil {
		return false
	}
	for _, req := range pruner {
		out := false
		for _, v := range req {
			if r.CannotHold(v.column, v.values) {
				out = true
				break
			}
		}
		if !out {
			return false
		}
	}
	return true
}
