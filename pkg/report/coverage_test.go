package report

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
)

// covArchive writes, for each node, a flow and a stats row every minute of
// [from, to) (as a running daemon does), and the given losses.
func covArchive(t *testing.T, root string, spans map[string][2]time.Time, losses []flow.Loss) {
	t.Helper()
	w, err := archive.Open(archive.Config{Root: root}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &flow.Batch{}
	i := 0
	for node, span := range spans {
		for m := span[0]; m.Before(span[1]); m = m.Add(time.Minute) {
			i++
			if m.Minute()%30 == 0 { // the flows matter less than the stats here
				f := b.Next()
				f.Reset()
				f.Uuid, f.Time, f.NodeName, f.Verdict = strconv.Itoa(i), timestamppb.New(m.Add(30*time.Second)), node, flowpb.Verdict_FORWARDED
			}
			b.AddStat(node, m.Unix(), flow.Counts{Seen: 10, Kept: 1, Denied: 9})
			if len(b.Stats) >= 4096 {
				b.Checkpoint = flow.Checkpoint{Source: "test", Position: strconv.Itoa(i)}
				if err := w.Write(b); err != nil {
					t.Fatal(err)
				}
				b.Reset()
			}
		}
	}
	b.Losses = append(b.Losses, losses...)
	b.Checkpoint = flow.Checkpoint{Source: "test", Position: strconv.Itoa(i)}
	if err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

var feb = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

func nodeCoverage(t *testing.T, rep *Report, node string) NodeCoverage {
	t.Helper()
	for _, c := range rep.Coverage {
		if c.Node == node {
			return c
		}
	}
	t.Fatalf("no coverage for %s in %+v", node, rep.Coverage)
	return NodeCoverage{}
}

// TestRotationGapIsNotCollected: an hour in which a rotation gap lost flows
// is not collected in full, the gap is listed with its range, cause and
// amount (and an estimate from the rate around it), and the coverage
// percentage counts its minutes as lost.
func TestRotationGapIsNotCollected(t *testing.T) {
	root := t.TempDir()
	gapFrom, gapTo := feb.Add(5*24*time.Hour+10*time.Hour+10*time.Second), feb.Add(5*24*time.Hour+10*time.Hour+2*time.Minute+40*time.Second)
	covArchive(t, root, map[string][2]time.Time{"c/n1": {feb, feb.AddDate(0, 1, 0)}}, []flow.Loss{{
		Node: "c/n1", Time: gapTo.Add(time.Second), From: gapFrom, To: gapTo, Reason: flow.LossRotationGap,
		Amount: flow.AmountUnknown, Detail: "events.log (the live file at the checkpoint; rotated and deleted since)", Source: "file:/x",
	}})
	rep, err := Build(context.Background(), Options{Archives: []string{root}, Month: feb, Now: feb.AddDate(0, 2, 0)})
	if err != nil {
		t.Fatal(err)
	}
	c := nodeCoverage(t, rep, "c/n1")
	if c.WithLoss != 1 || c.Collected != 28*24-1 || c.MinutesLost != 3 || c.Minutes != 28*24*60 || c.MinutesCollected != c.Minutes-3 || c.Losses != 1 {
		t.Errorf("coverage %+v: want one hour with loss, 3 minutes lost", c)
	}
	if want := 100 * float64(28*24*60-3) / float64(28*24*60); c.CoveragePct != want {
		t.Errorf("coverage %.4f%%, want %.4f%%", c.CoveragePct, want)
	}
	if len(c.Gaps) != 1 {
		t.Fatalf("gaps %+v", c.Gaps)
	}
	g := c.Gaps[0]
	// 10 flows a minute around it: ~25 in its 2.5 minutes.
	if !g.From.Equal(gapFrom) || !g.To.Equal(gapTo) || g.Reason != flow.LossRotationGap || g.Amount != "unknown" ||
		g.EstimatedEvents == nil || *g.EstimatedEvents != 25 || g.EstimateBasis != "rate" || !strings.Contains(g.Cause, "amount unknown; estimate: ~25 flows") {
		t.Errorf("gap %+v", g)
	}
	day := c.Heatmap[5]
	if day[10] != heatLoss || strings.Count(day, string(heatCollected)) != 23 {
		t.Errorf("heatmap of Feb 6 %q: want hour 10 marked as loss", day)
	}
	for _, lang := range []string{"en", "ko"} {
		var md strings.Builder
		if err := RenderMarkdown(&md, rep, lang); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"en": "rotation gap: events.log rotated away before it was read (amount unknown; estimate: ~25 flows",
			"ko": "로테이션 공백: 읽기 전에 events.log가 로테이션되어 삭제됨 (유실량 알 수 없음; 추정: 공백 전후 노드 유입률 기준 약 25건"}[lang]
		if !strings.Contains(md.String(), want) || !strings.Contains(md.String(), gapFrom.Format(gapTime)) {
			t.Errorf("%s Markdown does not show the gap %q:\n%s", lang, want, md.String())
		}
	}
}

// TestEveryKnownNodeIsCovered: a node whose collector sent nothing in the
// month is listed, 100% down, with one gap over the month; a node the
// archive first saw mid-month is evaluable from its first evidence; hours
// after the report was generated are labelled, not counted as outages; a
// node named by --node that the archive never knew is 100% down.
func TestEveryKnownNodeIsCovered(t *testing.T) {
	root := t.TempDir()
	mid := feb.AddDate(0, 0, 10).Add(6 * time.Hour)
	covArchive(t, root, map[string][2]time.Time{
		"c/n1":      {feb.AddDate(0, -1, 0), feb.AddDate(0, 2, 0)},
		"c/silent":  {feb.AddDate(0, -1, 0), feb.AddDate(0, 0, -1)}, // nothing in February
		"c/late":    {mid, feb.AddDate(0, 2, 0)},
		"c/quitter": {feb.AddDate(0, -1, 0), feb.AddDate(0, 0, 3)},
	}, nil)
	now := time.Date(2026, 3, 1, 0, 5, 0, 0, time.UTC)
	month, err := ParseMonth("previous", time.UTC, now)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Build(context.Background(), Options{Archives: []string{root}, Month: month, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Coverage) != 4 {
		t.Fatalf("coverage lists %d nodes, want the 4 the archive knows: %+v", len(rep.Coverage), rep.Coverage)
	}
	if c := nodeCoverage(t, rep, "c/silent"); c.Down != 28*24 || c.CoveragePct != 0 || c.MinutesDown != 28*24*60 || len(c.Gaps) != 1 ||
		!c.Gaps[0].From.Equal(feb) || !c.Gaps[0].To.Equal(feb.AddDate(0, 1, 0)) || c.Gaps[0].Reason != reasonCollectorDown {
		t.Errorf("silent node %+v: want 100%% down, one gap over February", c)
	}
	if c := nodeCoverage(t, rep, "c/late"); c.BeforeFirst != 10*24+6 || c.Collected != 28*24-(10*24+6) || c.CoveragePct != 100 ||
		c.FirstEvidence == nil || !c.FirstEvidence.Equal(mid) || c.Heatmap[10][5] != heatNone || c.Heatmap[10][6] != heatCollected {
		t.Errorf("late node %+v: want the hours before %v labelled, 100%% after", c, mid)
	}
	if c := nodeCoverage(t, rep, "c/quitter"); c.Collected != 3*24 || c.Down != 25*24 {
		t.Errorf("quitting node %+v", c)
	}
	if !slices_contains(rep.Nodes, "c/silent") {
		t.Errorf("nodes %v: the silent node is missing", rep.Nodes)
	}

	// The current month: hours after the report are not outages.
	now = feb.AddDate(0, 0, 14).Add(12*time.Hour + 30*time.Minute)
	rep, err = Build(context.Background(), Options{Archives: []string{root}, Month: feb, Now: now, Nodes: []string{"c/n1", "c/never"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := nodeCoverage(t, rep, "c/n1"); c.AfterReport != 28*24-(14*24+13) || c.Collected != 14*24+13 || c.CoveragePct != 100 || c.Minutes != 14*24*60+12*60+30 {
		t.Errorf("current month %+v: want the hours after %v labelled", c, now)
	}
	if c := nodeCoverage(t, rep, "c/never"); c.CoveragePct != 0 || c.Down != 14*24+13 || c.AfterReport != 28*24-(14*24+13) {
		t.Errorf("a node the archive never knew %+v: want down until the report", c)
	}
	if len(rep.Coverage) != 2 {
		t.Errorf("--node: coverage %+v, want the two nodes asked for", rep.Coverage)
	}
}

func slices_contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
