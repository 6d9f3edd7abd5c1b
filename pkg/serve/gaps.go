package serve

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	relaypb "github.com/cilium/cilium/api/v1/relay"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
)

// maxGapMinutes bounds the span whose collection gaps are looked for (a
// bitmap of its minutes per node): a year.
const maxGapMinutes = 366 * 24 * 60

// gapEvents returns, for the nodes q can select, in time order, the holes in
// the evidence of [from, to) (ns): a lost_events response for every row of
// the losses table whose gap overlaps it (Hubble's own lost events with
// their source and count, other losses with the count known or estimated,
// as UNKNOWN_LOST_EVENT_SOURCE), and a node_status NODE_UNAVAILABLE
// response for every run of minutes, between a node's first and last
// minute of collection in the span, that the stats table has no row of (the
// collector was not running: docs/format.md).
func (s *Server) gapEvents(ctx context.Context, q *query, from, to int64) ([]*observerpb.GetFlowsResponse, error) {
	if from >= to {
		return nil, nil
	}
	o := archive.ScanOptions{From: time.Unix(0, from), To: time.Unix(0, to)}
	type timed struct {
		t    int64
		resp *observerpb.GetFlowsResponse
	}
	var out []timed
	err := s.scanner.ScanLosses(ctx, o, func(rows []archive.LossRow) error {
		for i := range rows {
			r := &rows[i]
			if !q.nodes(r.Node) {
				continue
			}
			lo, _ := r.Range(r.Detected)
			ev := &flowpb.LostEvent{}
			if r.Reason == flow.LossHubbleLostEvents {
				ev.Source = flowpb.LostEventSource(flowpb.LostEventSource_value[r.Detail])
			}
			switch {
			case r.LostEvents != nil:
				ev.NumEventsLost = *r.LostEvents
			case r.EstimatedEvents != nil:
				ev.NumEventsLost = *r.EstimatedEvents
			}
			t := max(lo*1000, from)
			out = append(out, timed{t, &observerpb.GetFlowsResponse{Time: timestamppb.New(time.Unix(0, t)), NodeName: r.Node, ResponseTypes: &observerpb.GetFlowsResponse_LostEvents{LostEvents: ev}}})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Minutes [first, last] of the span.
	first := from / int64(time.Minute)
	if from < 0 && from%int64(time.Minute) != 0 {
		first--
	}
	last := (to - 1) / int64(time.Minute)
	if last-first+1 <= maxGapMinutes {
		type seen struct {
			bits   []uint64
			lo, hi int64
		}
		nodes := map[string]*seen{}
		err = s.scanner.ScanStats(ctx, archive.ScanOptions{From: time.Unix(first*60, 0), To: time.Unix((last+1)*60, 0)}, func(rows []archive.StatRow) error {
			for i := range rows {
				r := &rows[i]
				if !q.nodes(r.Node) {
					continue
				}
				m := floorDivInt(r.Minute, 60_000_000)
				if m < first || m > last {
					continue
				}
				n := nodes[r.Node]
				if n == nil {
					n = &seen{bits: make([]uint64, (last-first)/64+1), lo: math.MaxInt64, hi: math.MinInt64}
					nodes[r.Node] = n
				}
				k := m - first
				n.bits[k/64] |= 1 << (k % 64)
				n.lo, n.hi = min(n.lo, k), max(n.hi, k)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for node, n := range nodes {
			for k := n.lo; k <= n.hi; k++ {
				if n.bits[k/64]&(1<<(k%64)) != 0 {
					continue
				}
				end := k
				for end+1 <= n.hi && n.bits[(end+1)/64]&(1<<((end+1)%64)) == 0 {
					end++
				}
				gapFrom, gapTo := time.Unix((first+k)*60, 0).UTC(), time.Unix((first+end+1)*60, 0).UTC()
				t := gapFrom.UnixNano()
				out = append(out, timed{t, &observerpb.GetFlowsResponse{Time: timestamppb.New(gapFrom), NodeName: node, ResponseTypes: &observerpb.GetFlowsResponse_NodeStatus{NodeStatus: &relaypb.NodeStatusEvent{
					StateChange: relaypb.NodeState_NODE_UNAVAILABLE,
					NodeNames:   []string{node},
					Message:     fmt.Sprintf("no collection on %s from %s to %s: the archive holds no flow of it from these minutes", node, gapFrom.Format(time.RFC3339), gapTo.Format(time.RFC3339)),
				}}}})
				k = end
			}
		}
	}
	slices.SortStableFunc(out, func(a, b timed) int { return cmpInt64(a.t, b.t) })
	resps := make([]*observerpb.GetFlowsResponse, len(out))
	for i, e := range out {
		resps[i] = e.resp
	}
	return resps, nil
}

func floorDivInt(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
