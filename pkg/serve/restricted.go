package serve

import (
	"context"
	"slices"
	"strings"
	"time"

	observerpb "github.com/cilium/cilium/api/v1/observer"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// nsCountRow is what a restricted client's counts read of a flow.
type nsCountRow struct {
	TimeNs          int64   `parquet:"time_ns"`
	SourceNamespace *string `parquet:"source_namespace,optional,dict"`
	DestNamespace   *string `parquet:"destination_namespace,optional,dict"`
}

// fileCount is what a committed file holds of a set of namespaces: its
// flows from or to a pod of them, and their first and last time (ns).
type fileCount struct {
	rows     uint64
	min, max int64
}

// restricted reports whether a client's namespaces (clientAccess) leave
// out some of the archive's flows.
func restricted(allowed []string) bool {
	return allowed != nil && !slices.Contains(allowed, "*")
}

// summaryFor is the summary a client may see: the archive's for a client
// that sees every namespace; for one limited to namespaces, the flows from
// or to a pod of them, counted in the files the manifests vouch for (a
// committed file never changes, so each is counted once per set of
// namespaces and remembered).
func (s *Server) summaryFor(ctx context.Context, allowed []string) (*summary, error) {
	all, err := s.getSummary()
	if err != nil || !restricted(allowed) {
		return all, err
	}
	set := slices.Clone(allowed)
	slices.Sort(set)
	key := strings.Join(set, ",")
	s.mu.Lock()
	counts := s.nsCounts[key]
	if counts == nil {
		if s.nsCounts == nil {
			s.nsCounts = map[string]map[string]fileCount{}
		}
		counts = map[string]fileCount{}
		s.nsCounts[key] = counts
	}
	s.mu.Unlock()
	sum := &summary{at: all.at, nodes: map[string]*observerpb.Node{}}
	for name, n := range all.nodes {
		sum.nodes[name] = &observerpb.Node{Name: n.Name, Version: n.Version, State: n.State}
	}
	var oldest, newest int64
	live := map[string]bool{}
	for _, v := range all.files {
		id := v.Root + "\x00" + v.Path
		live[id] = true
		s.mu.Lock()
		fc, ok := counts[id]
		s.mu.Unlock()
		if !ok {
			if fc, err = countNamespaces(ctx, v.FileInfo, set); err != nil {
				return nil, err
			}
			s.mu.Lock()
			counts[id] = fc
			s.mu.Unlock()
		}
		if fc.rows == 0 {
			continue
		}
		sum.rows += fc.rows
		if n := sum.nodes[v.Node]; n != nil {
			n.NumFlows += fc.rows
		}
		if oldest == 0 || fc.min < oldest {
			oldest = fc.min
		}
		newest = max(newest, fc.max)
	}
	s.mu.Lock()
	for id := range counts {
		if !live[id] { // retention or compaction removed it
			delete(counts, id)
		}
	}
	s.mu.Unlock()
	if sum.rows > 0 {
		sum.oldest, sum.newest = timeNs(oldest), timeNs(newest)
	}
	for _, n := range sum.nodes {
		n.MaxFlows, n.SeenFlows = n.NumFlows, n.NumFlows
		n.UptimeNs = sum.span()
	}
	return sum, nil
}

// countNamespaces counts the flows of the file fi from or to a pod of the
// namespaces nss, reading the namespace and time columns only; a row group
// whose statistics hold none of them is not read.
func countNamespaces(ctx context.Context, fi archive.FileInfo, nss []string) (fileCount, error) {
	var fc fileCount
	c, err := archive.OpenFlowFile(fi)
	if err != nil {
		return fc, err
	}
	defer c.Close()
	r, err := archive.NewRowReader[nsCountRow]()
	if err != nil {
		return fc, err
	}
	defer r.Close()
	rows := make([]nsCountRow, 4096)
	for _, rg := range c.RowGroups() {
		r.Reset(rg)
		if r.CannotHold("source_namespace", nss) && r.CannotHold("destination_namespace", nss) {
			continue
		}
		for first, n := int64(0), rg.NumRows(); first < n; first += int64(len(rows)) {
			batch := rows[:min(int64(len(rows)), n-first)]
			r.Begin()
			if err := r.Read(r.AllColumns(), first, batch, nil); err != nil {
				return fc, &archive.ScanError{File: fi, Err: err}
			}
			for i := range batch {
				b := &batch[i]
				if b.SourceNamespace != nil && slices.Contains(nss, *b.SourceNamespace) || b.DestNamespace != nil && slices.Contains(nss, *b.DestNamespace) {
					if fc.rows == 0 || b.TimeNs < fc.min {
						fc.min = b.TimeNs
					}
					if fc.rows == 0 || b.TimeNs > fc.max {
						fc.max = b.TimeNs
					}
					fc.rows++
				}
			}
			if err := ctx.Err(); err != nil {
				return fc, err
			}
		}
	}
	return fc, nil
}

func timeNs(ns int64) time.Time { return time.Unix(0, ns).UTC() }
