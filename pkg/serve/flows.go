package serve

import (
	"container/heap"
	"context"
	"math"
	"slices"
	"strings"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
)

// lastNHeapMax is the largest last-N that is found with a heap of the N
// newest matching flows' positions (24 bytes each) in one backward pass;
// a larger N counts the window's matching flows first, then skips all but
// the last N, so that memory stays bounded whatever N is.
const lastNHeapMax = 1 << 20

// rowBatch is how many rows a row-group cursor decodes at a time.
const rowBatch = 256

// query is one GetFlows request, compiled.
type query struct {
	prog, access  *filter.Program
	since, until  int64 // ns, inclusive
	nodes         func(string) bool
	mask          *fieldmask.Mask
	masked        flowpb.Flow
	resp          observerpb.GetFlowsResponse
	respFlow      observerpb.GetFlowsResponse_Flow
	send          func(*observerpb.GetFlowsResponse) error
	sent          uint64
	skip          uint64 // matching flows to pass over before sending
	limit         uint64 // 0: none
	firstT, lastT int64  // of the flows sent (ns)

	// The columns a cursor reads first (those of the Flow fields the
	// filters read) and then for the rows that pass (those of the fields
	// the mask keeps and of the filters' fields whole); the time comes from
	// the time_ns column each cursor reads whole. parts are the messages
	// filterCols hold in part (archive.Part).
	filterCols, restCols archive.Columns
	parts                []archive.Part
	// pruner rules row groups out by their statistics (rowGroupPruner).
	pruner [][]valuesIn
	// groupsPruned counts the row groups it ruled out.
	groupsPruned int
	// What the metrics have of sent and groupsPruned.
	sentCounted   uint64
	prunedCounted int
	// Buffers of closed cursors, for the next ones.
	readers []*archive.RowReader[archive.FlowRow]
	batches []batchBufs
	times   []int64
}

type batchBufs struct {
	rows []archive.FlowRow
	keep []bool
}

// setColumns sets the columns cursors read, for the filters' fields.
func (q *query) setColumns() {
	r := q.reader()
	defer func() { q.readers = append(q.readers, r) }()
	fields := q.prog.Fields()
	if q.access != nil {
		fields = fields.Union(q.access.Fields())
	}
	times, err := r.Columns("time", "time_ns")
	if err != nil {
		panic(err) // FlowRow has them
	}
	q.filterCols, q.parts = r.FilterColumns(fields)
	q.filterCols = q.filterCols.Without(times)
	// The flow sent holds the mask's fields, and the filters' judgement of
	// the flow built for it (the truth) needs their fields whole.
	q.restCols = r.FlowColumns(q.mask.Fields().Union(fields)).Without(q.filterCols).Without(times)
}

func (q *query) match(f *flowpb.Flow) bool {
	return q.prog.MatchFlow(f) && (q.access == nil || q.access.MatchFlow(f))
}

// emit sends one flow, masked as the agent masks it.
func (q *query) emit(f *flowpb.Flow, t int64) error {
	if q.skip > 0 {
		q.skip--
		return nil
	}
	if q.mask.Active() {
		q.mask.Copy(&q.masked, f)
		f = &q.masked
	}
	// The span of what was sent is the archived time (t), which a mask
	// without "time" leaves out of the flow.
	if q.sent == 0 {
		q.firstT = t
	}
	q.lastT = t
	q.respFlow.Flow = f
	q.resp.Time, q.resp.NodeName = f.GetTime(), f.GetNodeName()
	q.resp.ResponseTypes = &q.respFlow
	q.sent++
	return q.send(&q.resp)
}

// account adds to the metrics what q sent and skipped since it last did.
func (s *Server) account(q *query) {
	s.m.flowsSent.Add(float64(q.sent - q.sentCounted))
	s.m.groupsSkipped.Add(float64(q.groupsPruned - q.prunedCounted))
	q.sentCounted, q.prunedCounted = q.sent, q.groupsPruned
}

func (q *query) full() bool { return q.limit > 0 && q.sent >= q.limit }

// GetFlows streams the archived flows that the request selects, with the
// agent's semantics (hubble-spec §6.2) over the archive instead of its ring
// buffer: since and until bound the window (both inclusive); first with
// number sends the window's oldest N, number without first its newest N
// (oldest first), no number all of them; follow then keeps sending the flows
// of files committed later. Flows come in time order (files merged by time).
func (s *Server) GetFlows(req *observerpb.GetFlowsRequest, srv observerpb.Observer_GetFlowsServer) error {
	ctx := srv.Context()
	if req.GetFirst() && req.GetFollow() {
		return status.Error(codes.InvalidArgument, "first cannot be specified with follow")
	}
	access, _, err := s.clientAccess(ctx)
	if err != nil {
		return err
	}
	prog, err := filter.Compile(req.GetWhitelist(), req.GetBlacklist())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	paths := req.GetFieldMask().GetPaths()
	if len(paths) == 0 {
		paths = req.GetExperimental().GetFieldMask().GetPaths() // the CLI's --experimental-field-mask (deprecated, still sent)
	}
	mask, err := fieldmask.Compile(paths)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "invalid fieldmask: %v", err)
	}
	q := &query{prog: prog, access: access, mask: mask, since: math.MinInt64, until: math.MaxInt64, send: srv.Send}
	defer s.account(q)
	q.setColumns()
	q.pruner = rowGroupPruner(req.GetWhitelist())
	if t := req.GetSince(); t != nil {
		if err := t.CheckValid(); err != nil {
			return status.Errorf(codes.InvalidArgument, "since: %v", err)
		}
		q.since = t.AsTime().UnixNano()
	}
	if t := req.GetUntil(); t != nil {
		if err := t.CheckValid(); err != nil {
			return status.Errorf(codes.InvalidArgument, "until: %v", err)
		}
		q.until = t.AsTime().UnixNano()
	}
	q.nodes, err = nodePruner(req.GetWhitelist())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "%v", err)
	}
	number := req.GetNumber()
	history := !(req.GetFollow() && number == 0 && req.GetSince() == nil)
	from, to := q.window()
	listFrom := from
	if !history {
		// Only what follow lists matters: the files of the last day.
		listFrom = followFrom(q)
	}
	files, err := s.scanner.Files("flows", listFrom, to)
	if err != nil {
		return status.Errorf(codes.Unavailable, "flowaudit serve: %v", err)
	}
	seen := make(map[string]bool, len(files))
	for _, fi := range files {
		seen[fi.Root+"\x00"+fi.Path] = true
	}
	files = slices.DeleteFunc(files, func(fi archive.FileInfo) bool { return !q.nodes(fi.Node) })
	start := time.Now()
	if history {
		groups, err := archive.FlowRowGroups(files, from, to)
		if err != nil {
			return status.Errorf(codes.Unavailable, "flowaudit serve: %v", err)
		}
		startKey := key{t: math.MinInt64}
		switch {
		case number == 0 || number == math.MaxUint64:
		case req.GetFirst():
			q.limit = number
		case number <= lastNHeapMax:
			if startKey, err = q.lastN(ctx, groups, number); err != nil {
				return err
			}
			q.limit = number
		default:
			n, err := q.count(ctx, groups)
			if err != nil {
				return err
			}
			if n > number {
				q.skip = n - number
			}
		}
		if err := q.forward(ctx, groups, startKey); err != nil {
			return err
		}
		if err := s.sendGaps(ctx, q, req); err != nil {
			return err
		}
	}
	s.account(q)
	s.log.Debug("GetFlows history sent", zap.Uint64("flows", q.sent), zap.Int("files", len(files)), zap.Int("row_groups_pruned", q.groupsPruned), zap.Duration("took", time.Since(start)))
	if !req.GetFollow() {
		return nil
	}
	q.limit, q.skip = 0, 0
	return s.follow(ctx, q, seen)
}

// sendGaps sends the holes in the evidence (gapEvents) of the span the
// request covers: its since and until, or where they are not given, the
// first and last flow sent. They come after the flows, as Hubble's lost
// events are not counted in number and carry their own time.
func (s *Server) sendGaps(ctx context.Context, q *query, req *observerpb.GetFlowsRequest) error {
	from, to := q.since, q.until
	if from == math.MinInt64 || (q.sent > 0 && req.GetNumber() > 0 && !req.GetFirst() && req.GetSince() == nil) {
		if q.sent == 0 {
			return nil
		}
		from = q.firstT
	}
	if to == math.MaxInt64 || (q.sent > 0 && req.GetNumber() > 0 && req.GetFirst()) {
		if q.sent == 0 {
			return nil
		}
		to = q.lastT
	}
	events, err := s.gapEvents(ctx, q, from, to+1)
	if err != nil {
		return status.Errorf(codes.Unavailable, "flowaudit serve: %v", err)
	}
	for _, ev := range events {
		if err := q.send(ev); err != nil {
			return err
		}
	}
	return nil
}

// window is the scan's [from, to) for the request's inclusive [since, until].
func (q *query) window() (from, to time.Time) {
	if q.since != math.MinInt64 {
		from = time.Unix(0, q.since)
	}
	if q.until != math.MaxInt64 {
		to = time.Unix(0, q.until).Add(time.Microsecond)
	}
	return from, to
}

// nodePruner returns whether a node's files can hold a flow the whitelist
// passes: each whitelist filter's node_name patterns, compiled alone and
// asked about a flow of that node (a filter without node_name passes every
// node). The filter program stays the judge of every flow.
func nodePruner(allow []*flowpb.FlowFilter) (func(string) bool, error) {
	var only []*flowpb.FlowFilter
	for _, ff := range allow {
		if len(ff.GetNodeName()) == 0 {
			return func(string) bool { return true }, nil
		}
		only = append(only, &flowpb.FlowFilter{NodeName: ff.GetNodeName()})
	}
	if len(only) == 0 {
		return func(string) bool { return true }, nil
	}
	p, err := filter.Compile(only, nil)
	if err != nil {
		return nil, err
	}
	return func(node string) bool { return p.MatchFlow(&flowpb.Flow{NodeName: node}) }, nil
}

// key orders flows: by time, then by the row group's place in the listing,
// then by row, so that a position found by one pass is found again by the
// next.
type key struct {
	t   int64
	ord int
	row int64
}

func (a key) less(b key) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	if a.ord != b.ord {
		return a.ord < b.ord
	}
	return a.row < b.row
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int           { return len(h) }
func (h cursorHeap) Less(i, j int) bool { return h[i].head.less(h[j].head) }
func (h cursorHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)        { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// groupStartNs is the earliest time (ns) a row group can hold.
func groupStartNs(g archive.FlowRowGroup) int64 {
	if g.MinTime <= math.MinInt64/1000 {
		return math.MinInt64
	}
	return g.MinTime * 1000
}

// groupEndNs is past the latest time (ns) a row group can hold.
func groupEndNs(g archive.FlowRowGroup) int64 {
	if g.MaxTime >= math.MaxInt64/1000-1 {
		return math.MaxInt64
	}
	return (g.MaxTime + 1) * 1000
}

// forward sends the matching flows from position from on, merging the row
// groups by time: a row group is opened when the merge reaches its first
// time, so the groups open at once are those whose times overlap (about
// one a node), whatever the window.
func (q *query) forward(ctx context.Context, groups []archive.FlowRowGroup, from key) error {
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmpInt64(groupStartNs(groups[a]), groupStartNs(groups[b]))
	})
	h := &cursorHeap{}
	defer func() {
		for _, c := range *h {
			c.close()
		}
	}()
	p := 0
	for !q.full() {
		for p < len(order) && (h.Len() == 0 || groupStartNs(groups[order[p]]) <= (*h)[0].head.t) {
			g := groups[order[p]]
			p++
			if groupEndNs(g) <= from.t {
				continue
			}
			c, err := openCursor(q, g, order[p-1])
			if err != nil {
				return err
			}
			lo, hi, err := c.span(from.t)
			if err == nil && lo < hi {
				err = c.seek(lo, hi)
			}
			if err != nil || lo >= hi {
				c.close()
				if err != nil {
					return err
				}
				continue
			}
			ok, err := c.advance(from)
			if err != nil {
				c.close()
				return err
			}
			if ok {
				heap.Push(h, c)
			} else {
				c.close()
			}
		}
		if h.Len() == 0 {
			return nil
		}
		c := (*h)[0]
		if err := q.emit(&c.f, c.head.t); err != nil {
			return err
		}
		ok, err := c.advance(from)
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
			c.close()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// keyHeap is a min-heap of positions.
type keyHeap []key

func (h keyHeap) Len() int           { return len(h) }
func (h keyHeap) Less(i, j int) bool { return h[i].less(h[j]) }
func (h keyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *keyHeap) Push(x any)        { *h = append(*h, x.(key)) }
func (h *keyHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	*h = old[:len(old)-1]
	return k
}

// lastN finds the position of the n-th newest matching flow of the window
// (the start when it holds fewer): row groups newest first, keeping the
// positions of the n newest matches, until a row group ends before the
// oldest of them.
func (q *query) lastN(ctx context.Context, groups []archive.FlowRowGroup, n uint64) (key, error) {
	order := make([]int, len(groups))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmpInt64(groupEndNs(groups[b]), groupEndNs(groups[a]))
	})
	h := &keyHeap{}
	for _, i := range order {
		if uint64(h.Len()) == n && groupEndNs(groups[i]) <= (*h)[0].t {
			break
		}
		c, err := openCursor(q, groups[i], i)
		if err != nil {
			return key{}, err
		}
		if err := q.lastNOf(c, h, n); err != nil {
			c.close()
			return key{}, err
		}
		c.close()
		if err := ctx.Err(); err != nil {
			return key{}, err
		}
	}
	if uint64(h.Len()) < n {
		return key{t: math.MinInt64}, nil
	}
	return (*h)[0], nil
}

// lastNOf adds to h the positions of c's newest matching flows, reading
// its rows of the window in chunks from the end, until a chunk's rows are
// all older than the n-th newest match found.
func (q *query) lastNOf(c *cursor, h *keyHeap, n uint64) error {
	lo, hi, err := c.span(math.MinInt64)
	if err != nil || lo >= hi {
		return err
	}
	// upTo[i-lo] is the latest time of the rows [lo, i]: what the rows not
	// read yet can hold, in order or not.
	upTo := make([]int64, hi-lo)
	latest := int64(math.MinInt64)
	for i := lo; i < hi; i++ {
		latest = max(latest, c.times[i])
		upTo[i-lo] = latest
	}
	for hi > lo {
		if uint64(h.Len()) == n && (key{t: upTo[hi-1-lo], ord: c.ord, row: hi - 1}).less((*h)[0]) {
			return nil
		}
		start := max(lo, hi-rowBatch)
		if err := c.seek(start, hi); err != nil {
			return err
		}
		for {
			ok, err := c.advance(key{t: math.MinInt64})
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			if uint64(h.Len()) < n {
				heap.Push(h, c.head)
			} else if (*h)[0].less(c.head) {
				(*h)[0] = c.head
				heap.Fix(h, 0)
			}
		}
		hi = start
	}
	return nil
}

// count counts the window's matching flows.
func (q *query) count(ctx context.Context, groups []archive.FlowRowGroup) (uint64, error) {
	var n uint64
	for i, g := range groups {
		c, err := openCursor(q, g, i)
		if err != nil {
			return 0, err
		}
		for {
			ok, err := c.advance(key{t: math.MinInt64})
			if err != nil {
				c.close()
				return 0, err
			}
			if !ok {
				break
			}
			n++
		}
		c.close()
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// follow sends the flows of the files committed after the request's
// listing, as they appear, until the client goes away (or a flow is past
// until). seen holds the files already listed; a compaction's output,
// whose rows are those of files already read, is not read again.
func (s *Server) follow(ctx context.Context, q *query, seen map[string]bool) error {
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		listFrom := followFrom(q)
		files, err := s.scanner.Files("flows", listFrom, time.Time{})
		if err != nil {
			s.log.Warn("follow: listing the archive", zap.Error(err))
			continue
		}
		var fresh []archive.FileInfo
		compactions := map[string]map[string][]string{}
		for _, fi := range files {
			id := fi.Root + "\x00" + fi.Path
			if seen[id] {
				continue
			}
			seen[id] = true
			if s.compactionOfSeen(fi, seen, compactions) {
				continue
			}
			if q.nodes(fi.Node) {
				fresh = append(fresh, fi)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		from, to := q.window()
		groups, err := archive.FlowRowGroups(fresh, from, to)
		if err != nil {
			return status.Errorf(codes.Unavailable, "flowaudit serve: %v", err)
		}
		err = q.forward(ctx, groups, key{t: math.MinInt64})
		s.account(q)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// What is seen of days no longer listed cannot be seen again.
		old := listFrom.Add(-24 * time.Hour).Format("2006-01-02")
		for id := range seen {
			if d := dateOfID(id); d != "" && d < old {
				delete(seen, id)
			}
		}
	}
}

// followFrom is where follow lists the archive from: a day's files stay new
// for a day (the daemon commits a flow under its own date, and the last
// files of a day come after midnight), and none before since.
func followFrom(q *query) time.Time {
	from := time.Now().UTC().Add(-24 * time.Hour).Truncate(24 * time.Hour)
	if t := time.Unix(0, q.since); q.since != math.MinInt64 && t.After(from) {
		from = t
	}
	return from
}

// compactionOfSeen reports whether fi is a compaction's output whose inputs
// were all seen.
func (s *Server) compactionOfSeen(fi archive.FileInfo, seen map[string]bool, cache map[string]map[string][]string) bool {
	ck := fi.Root + "\x00" + fi.Node + "\x00" + fi.Date
	m, ok := cache[ck]
	if !ok {
		var err error
		if m, err = archive.Compactions(fi.Root, fi.Node, fi.Date); err != nil {
			s.log.Warn("follow: reading a manifest", zap.Error(err))
		}
		cache[ck] = m
	}
	inputs, ok := m[fi.Path]
	if !ok {
		return false
	}
	for _, in := range inputs {
		if !seen[fi.Root+"\x00"+in] {
			return false
		}
	}
	return true
}

// dateOfID is the date partition of the file a follow id (root NUL path)
// names, read as the scanner reads it ("" outside any).
func dateOfID(id string) string {
	root, rel, _ := strings.Cut(id, "\x00")
	return archive.FileInfoAt(root, rel).Date
}
