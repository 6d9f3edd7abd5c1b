package archive

import (
	"context"
	"errors"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"time"
)

// Overlap is a node whose flows two archive roots both hold for the same
// time: a file of each root whose [min_time, max_time] intersect. Readers
// that take the roots as one archive would count those flows twice.
type Overlap struct {
	Node         string
	RootA, RootB string // RootA comes first in the roots given
	// From and To bound the times both roots' files of the node cover.
	From, To time.Time
	// Files are a file of each root whose time ranges intersect: the first
	// such pair, or the first in which a flow of both was found.
	Files [2]Vouched
	// UUID is a flow uuid both files hold, found by reading them within
	// the intersection ("" when none was found).
	UUID string
}

// overlapPairsRead is how many intersecting pairs of files FindOverlaps
// reads, per overlap, looking for a flow in both.
const overlapPairsRead = 4

// FindOverlaps returns, for each node and each pair of roots, whether the
// roots' flows files of the node (files: VerifyReport.Intact, in root
// order) cover a common time. The manifests' time ranges decide; only then
// are the uuids of a few intersecting pairs of files read, within the
// intersection, to name a flow both roots hold. Memory: one file's uuids
// (as 64-bit hashes) at a time, never the month's.
func FindOverlaps(ctx context.Context, files []Vouched) []Overlap {
	type key struct{ node, root string }
	byNode := map[key][]Vouched{}
	rootsOf := map[string][]string{} // node -> its roots, in the order given
	for _, f := range files {
		if f.Table != "flows" || f.MinTime.After(f.MaxTime) {
			continue
		}
		k := key{f.Node, f.Root}
		if _, ok := byNode[k]; !ok {
			rootsOf[f.Node] = append(rootsOf[f.Node], f.Root)
		}
		byNode[k] = append(byNode[k], f)
	}
	var out []Overlap
	for _, node := range slices.Sorted(maps.Keys(rootsOf)) {
		roots := rootsOf[node]
		for i := range roots {
			for j := i + 1; j < len(roots); j++ {
				a, b := byNode[key{node, roots[i]}], byNode[key{node, roots[j]}]
				common := intersect(spans(a), spans(b))
				if len(common) == 0 {
					continue
				}
				ov := Overlap{Node: node, RootA: roots[i], RootB: roots[j], From: common[0].from, To: common[len(common)-1].to}
				tried := 0
			pairs:
				for _, fa := range a {
					for _, fb := range b {
						lo, hi := later(fa.MinTime, fb.MinTime), earlier(fa.MaxTime, fb.MaxTime)
						if lo.After(hi) {
							continue
						}
						if tried == 0 {
							ov.Files = [2]Vouched{fa, fb}
						}
						if tried++; tried > overlapPairsRead || ctx.Err() != nil {
							break pairs
						}
						if u := sharedUUID(fa, fb, lo, hi); u != "" {
							ov.Files, ov.UUID = [2]Vouched{fa, fb}, u
							break pairs
						}
					}
				}
				out = append(out, ov)
			}
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// span is a closed time range [from, to].
type span struct{ from, to time.Time }

// spans returns the union of the files' time ranges as disjoint spans, in
// time order.
func spans(files []Vouched) []span {
	s := make([]span, 0, len(files))
	for _, f := range files {
		s = append(s, span{f.MinTime, f.MaxTime})
	}
	slices.SortFunc(s, func(x, y span) int { return x.from.Compare(y.from) })
	out := s[:0]
	for _, x := range s {
		if n := len(out); n > 0 && !x.from.After(out[n-1].to) {
			out[n-1].to = later(out[n-1].to, x.to)
			continue
		}
		out = append(out, x)
	}
	return out
}

// intersect returns the common parts of two sets of disjoint spans in time
// order.
func intersect(a, b []span) []span {
	var out []span
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := later(a[i].from, b[j].from), earlier(a[i].to, b[j].to)
		if !lo.After(hi) {
			out = append(out, span{lo, hi})
		}
		if a[i].to.Before(b[j].to) {
			i++
		} else {
			j++
		}
	}
	return out
}

// uuidRow is the projection of FlowRow that FindOverlaps reads.
type uuidRow struct {
	Time int64   `parquet:"time,timestamp(microsecond:utc)"`
	UUID *string `parquet:"uuid,optional"`
}

// errStop ends a scan early.
var errStop = errors.New("stop")

// sharedUUID returns a flow uuid that both files hold among their rows in
// [lo, hi], or "" when there is none (or a file cannot be read: the
// overlap stands on the manifests alone). a's uuids are kept as 64-bit
// hashes; a hash that b matches is confirmed by reading a again.
func sharedUUID(a, b Vouched, lo, hi time.Time) string {
	w := window{from: lo.UnixMicro(), to: hi.UnixMicro() + 1}
	each := func(f Vouched, fn func(string) error) error {
		buf := make([]uuidRow, 4096)
		err := scanFileAt(f.Root, f.Path, buf, "time", w, func(rows []uuidRow) error {
			for _, r := range rows {
				if r.UUID != nil && w.has(r.Time) {
					if err := fn(*r.UUID); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if errors.Is(err, errStop) {
			return nil
		}
		return err
	}
	seed := maphash.MakeSeed()
	hashes := map[uint64]struct{}{}
	if each(a, func(u string) error { hashes[maphash.String(seed, u)] = struct{}{}; return nil }) != nil {
		return ""
	}
	var candidates []string
	if each(b, func(u string) error {
		if _, ok := hashes[maphash.String(seed, u)]; ok {
			candidates = append(candidates, strings.Clone(u))
			if len(candidates) == 16 {
				return errStop
			}
		}
		return nil
	}) != nil || len(candidates) == 0 {
		return ""
	}
	found := ""
	_ = each(a, func(u string) error {
		if slices.Contains(candidates, u) {
			found = strings.Clone(u)
			return errStop
		}
		return nil
	})
	return found
}
