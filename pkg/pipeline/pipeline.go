package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
	"github.com/flowaudit/flowaudit/pkg/hubblepb"
	"github.com/flowaudit/flowaudit/pkg/ingest"
)

// Spec is the user's filter and mask configuration for one source, in Cilium's
// own syntax.
type Spec struct {
	Allowlist string   // hubble-export-allowlist syntax
	Denylist  string   // hubble-export-denylist syntax
	FieldMask []string // hubble-export-fieldmask paths
}

// Compiled is a Spec compiled into the objects the hot path uses. It is
// immutable; a reload swaps the whole value.
type Compiled struct {
	Spec    Spec
	Program *filter.Program
	// Mask is the user's mask; ArchiveMask is what the archive keeps: the
	// same mask, which Compile requires to keep time and node_name.
	Mask        *fieldmask.Mask
	ArchiveMask *fieldmask.Mask
	Plan        *hubblejson.Plan
	PBPlan      *hubblepb.Plan
	// prune: a kept flow may hold fields ArchiveMask does not keep, because
	// the filter reads fields outside it (the plan decodes them too), so the
	// hot path must clear them. Without it the plan decodes the mask's
	// fields only, and pruning would find nothing to clear.
	prune bool
	// Hash identifies the configuration in the archive (stats rows, file metadata).
	Hash string
}

// alwaysKept are the fields the archive needs for every row: a mask must keep them.
var alwaysKept = []string{"time", "node_name"}

// Compile parses and compiles a Spec. Errors name the setting and the value.
//
// A field mask must keep time and node_name: the archive places every row
// by them, and a mask cannot be widened after the fact, since Cilium's
// exporter applies the same hubble-export-fieldmask to the lines it writes
// (a mask without time gives lines without it, which the archive's plan
// then counts as decode errors). `flowaudit filter`, which reproduces the
// exporter, takes any mask Cilium takes: it does not compile through here.
func Compile(s Spec) (*Compiled, error) {
	allow, err := filter.ParseFilters(s.Allowlist)
	if err != nil {
		return nil, fmt.Errorf("allowlist: %w", err)
	}
	deny, err := filter.ParseFilters(s.Denylist)
	if err != nil {
		return nil, fmt.Errorf("denylist: %w", err)
	}
	prog, err := filter.Compile(allow, deny)
	if err != nil {
		return nil, err
	}
	mask, err := fieldmask.Compile(s.FieldMask)
	if err != nil {
		return nil, fmt.Errorf("fieldmask: %w", err)
	}
	if mask.Active() {
		var missing []string
		for _, f := range alwaysKept {
			if !mask.Fields().Covers(flow.Fields(f)) {
				missing = append(missing, f)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("fieldmask %q: keeps no %s: the archive places every flow by its time and node_name, and Cilium's exporter writes only the fields its mask keeps; add %s to the mask",
				strings.Join(s.FieldMask, ","), strings.Join(missing, " or "), strings.Join(missing, ","))
		}
	}
	// The pipeline reads time and node_name of every flow, also of those the
	// filter drops (stats): the archive plan adds them to the filter's
	// fields. Without a filter every flow is kept: the plan then decodes the
	// kept fields in one pass (with the two fields among them), instead of a
	// pass for these two and another for the rest.
	filterFields := prog.Fields()
	plan := hubblejson.NewArchivePlan(filterFields, mask.Fields())
	if !filterFields.IsEmpty() {
		filterFields = filterFields.Union(flow.Fields(alwaysKept...))
	}
	keep := mask.Fields()
	h := sha256.New()
	fmt.Fprintf(h, "allow=%s\x00deny=%s\x00mask=%s", s.Allowlist, s.Denylist, strings.Join(s.FieldMask, ","))
	return &Compiled{
		Spec:        s,
		Program:     prog,
		Mask:        mask,
		ArchiveMask: mask,
		Plan:        plan,
		PBPlan:      hubblepb.NewPlan(filterFields, keep),
		prune:       mask.Active() && !keep.Covers(filterFields),
		Hash:        hex.EncodeToString(h.Sum(nil))[:16],
	}, nil
}

// Sink receives full batches; the archive Writer implements it. After Write
// returns the batch is reset and reused.
type Sink interface {
	Write(b *flow.Batch) error
}

// Config tunes one pipeline.
type Config struct {
	// Node is the node name used for heartbeat stats before any flow was seen
	// (the daemon's node, "cluster/node" like Hubble's flow node_name).
	Node string
	// Status is written into the stats rows ("up" for the daemon, "imported").
	Status string
	// Heartbeat, when > 0, makes the pipeline emit an all-zero stats row for the
	// current minute at this interval even when no event arrives, so that "no
	// traffic" differs from "collector down". Zero for imports.
	Heartbeat time.Duration
	// Inline makes the source's goroutine write each batch to the sink itself,
	// before emit returns: no queue and no second goroutine, so QueueBatches
	// and QueueBytes are unused. A source that can pause without loss (a
	// file: what the exporter wrote waits on disk) stops reading while the
	// sink commits. Handing every batch to a sink goroutine instead wakes a
	// thread per batch, which costs more CPU per line than it saves
	// (BenchmarkFollowBursts; the daemon and import tables of
	// bench/README.md). The queue's overlap of decoding and writing pays in
	// wall time only where the sink does much per line (an every-field
	// import, so import keeps it), or for a source that cannot pause, or a
	// sink whose commits stall longer than reading may.
	Inline bool
	// QueueBatches bounds the batches in flight between the source and the sink.
	QueueBatches int
	// QueueBytes bounds the event bytes in flight between the source and the
	// sink (default 16 MiB): when the sink falls behind, the source's emit
	// blocks, so the source stops reading. A single batch larger than the
	// bound still passes, alone.
	QueueBytes int64
	// Now is the clock (tests).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Status == "" {
		c.Status = "up"
	}
	if c.QueueBatches <= 0 {
		c.QueueBatches = 4
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 16 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Pipeline moves one source's events into a sink.
type Pipeline struct {
	cfg      Config
	src      ingest.Source
	sink     Sink
	log      *zap.Logger
	m        sourceMetrics
	compiled atomic.Pointer[Compiled]

	// state of the source goroutine: a decoder per line format, made for
	// the configuration decFor
	decs     [2]decoder
	decFor   *Compiled
	lastNode string
	lastMin  int64
	// absolute maps a plain node name to the "cluster/node" name its flows
	// carry: events.log's lost/agent/debug events use the plain name.
	absolute map[string]string
	// nodes interns the node names seen: the flows of a cluster-wide log
	// (an import, Relay) change node from one line to the next, and each
	// change took a copy of the name out of the batch arena.
	nodes  map[string]string
	errLog throttle
	// latest is the latest time (ns) of the flows decoded (kept or denied)
	// and disorder the most a flow's time lagged behind the latest before
	// it: a gap found now holds flows from latest-disorder on. lines and
	// lineBytes are the lines read and their bytes, whose mean turns a
	// gap's bytes into an estimate of its lines; open indexes the losses of
	// the batch being filled that wait for the first flow after them
	// (their To).
	latest, disorder int64
	lines            uint64
	lineBytes        uint64
	open             []int
	// upNodes are the nodes the source last vouched for (LineBatch.Nodes).
	upNodes []string

	// progress, read by the daemon's readiness check
	lastFlowNs  atomic.Int64 // time of the last flow the sink accepted
	lastWriteNs atomic.Int64 // wall time when the sink accepted that flow's batch
}

// Progress returns the time of the last flow the sink accepted and the wall
// time when it accepted the batch holding it (zero times: none yet).
func (p *Pipeline) Progress() (lastFlow, lastWrite time.Time) {
	if n := p.lastFlowNs.Load(); n != 0 {
		lastFlow = time.Unix(0, n)
	}
	if n := p.lastWriteNs.Load(); n != 0 {
		lastWrite = time.Unix(0, n)
	}
	return lastFlow, lastWrite
}

// New returns a pipeline from src to sink with the given compiled configuration.
func New(cfg Config, src ingest.Source, c *Compiled, sink Sink, log *zap.Logger, m *Metrics) *Pipeline {
	cfg.setDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	p := &Pipeline{cfg: cfg, src: src, sink: sink, log: log.Named("pipeline"), m: m.forSource(src.ID()), lastNode: cfg.Node}
	p.compiled.Store(c)
	return p
}

// Swap replaces the filter and mask; it takes effect at the next line batch
// boundary, so no event is handled twice or by a mixture of both.
func (p *Pipeline) Swap(c *Compiled) { p.compiled.Store(c) }

// Compiled returns the configuration in effect.
func (p *Pipeline) Compiled() *Compiled { return p.compiled.Load() }

// Run reads the source from checkpoint `from` until ctx is done or the source
// ends, and returns after every batch read has been handed to the sink. The
// sink's error stops the pipeline and is returned. Errors do not name the
// source: the caller does (the daemon's "source <id>: ..."), and the
// source's own errors name it where it matters.
func (p *Pipeline) Run(ctx context.Context, from flow.Checkpoint) error {
	srcCtx, cancelSrc := context.WithCancel(ctx)
	defer cancelSrc()
	p.latest, p.disorder = from.LastFlow, from.Disorder

	w := &sinkWriter{p: p, cancel: cancelSrc}
	var h handoff
	if p.cfg.Inline {
		h = &inlineHandoff{w: w}
	} else {
		h = newQueueHandoff(w, p.cfg.QueueBatches, p.cfg.QueueBytes)
	}
	var cur *flow.Batch

	// Heartbeats are written from the emit callback, the only goroutine that
	// touches the batch: a tick waits in the ticker's channel for the next
	// emit (a quiet source emits empty batches: ingest.FileConfig.IdleEvery).
	var hb <-chan time.Time
	if p.cfg.Heartbeat > 0 {
		t := time.NewTicker(p.cfg.Heartbeat)
		defer t.Stop()
		hb = t.C
	}

	emit := func(lb *ingest.LineBatch) error {
		if cur == nil {
			if cur = h.take(srcCtx); cur == nil {
				return srcCtx.Err()
			}
		}
		p.process(lb, cur)
		select {
		case t := <-hb:
			// A tick that waited past the next one comes with its own
			// time: the row is for the minute of the latest tick due.
			if late := time.Since(t); late >= p.cfg.Heartbeat {
				t = t.Add(late / p.cfg.Heartbeat * p.cfg.Heartbeat)
			}
			p.heartbeat(cur, t.Unix())
		default:
		}
		h.send(srcCtx, cur)
		cur = nil
		if p.cfg.Inline && w.err != nil {
			return srcCtx.Err() // canceled by write
		}
		return nil
	}
	srcErr := p.src.Run(srcCtx, from, emit)
	h.stop()
	if w.err != nil {
		return fmt.Errorf("pipeline: %w", w.err)
	}
	if srcErr != nil && !errors.Is(srcErr, context.Canceled) {
		return fmt.Errorf("pipeline: %w", srcErr)
	}
	return nil
}

// heartbeat records an all-zero stats row for the minute of the tick at
// sec, and for the current minute if it is past that one: for the nodes
// the source last said it is up for, else the last flow's node.
func (p *Pipeline) heartbeat(b *flow.Batch, sec int64) {
	min, now := minuteOf(sec), minuteOf(p.cfg.Now().Unix())
	nodes := p.upNodes
	if len(nodes) == 0 {
		nodes = append(p.upNodes[:0:0], p.lastNode)
	}
	for _, n := range nodes {
		b.AddStat(n, min, flow.Counts{})
		if now > min {
			b.AddStat(n, now, flow.Counts{})
		}
	}
	p.setStatus(b)
}

// decoder decodes one batch format on a plan (hubblejson.Decoder for
// events.log lines, hubblepb.Decoder for GetFlowsResponse messages).
type decoder interface {
	SetArena(*flow.Arena)
	Decode(raw []byte, f *flowpb.Flow) (flow.Kind, error)
	Finish(f *flowpb.Flow) error
	NonFlow() proto.Message
	EnvelopeNodeName() string
	EnvelopeTime() (time.Time, bool)
}

// newDecoder returns a decoder of the format on c's plan.
func (c *Compiled) newDecoder(f ingest.Format) decoder {
	if f == ingest.FormatProto {
		return hubblepb.NewDecoder(c.PBPlan)
	}
	return hubblejson.NewDecoder(c.Plan)
}

func (p *Pipeline) setStatus(b *flow.Batch) {
	for i := range b.Stats {
		b.Stats[i].Status = p.cfg.Status
	}
}

// maxNodes bounds the node names interned (a cluster's nodes; a hostile
// input of ever new names only costs a copy per change beyond it).
const maxNodes = 1 << 14

// switchNode makes node, the node of the flow just decoded, the last node:
// a copy of it that outlives the batch arena (the flow's string lives
// there), the same copy every time. A "cluster/node" name also becomes the
// one its plain name stands for.
func (p *Pipeline) switchNode(node string) string {
	n, ok := p.nodes[node]
	if !ok {
		n = strings.Clone(node)
		if p.nodes == nil || len(p.nodes) >= maxNodes {
			p.nodes, p.absolute = map[string]string{}, nil
		}
		p.nodes[n] = n
	}
	if _, plain, ok := strings.Cut(n, "/"); ok {
		if p.absolute == nil {
			p.absolute = map[string]string{}
		}
		p.absolute[plain] = n
	}
	p.lastNode = n
	return n
}

// process decodes, filters and masks one line batch into b. It runs on the
// source's goroutine; it allocates nothing per event in steady state.
func (p *Pipeline) process(lb *ingest.LineBatch, b *flow.Batch) {
	c := p.compiled.Load()
	if p.decFor != c {
		p.decs, p.decFor = [2]decoder{}, c
	}
	dec := p.decs[lb.Format]
	if dec == nil {
		dec = c.newDecoder(lb.Format)
		p.decs[lb.Format] = dec
	}
	dec.SetArena(&b.Arena)
	if len(lb.Nodes) > 0 {
		p.upNodes = append(p.upNodes[:0], lb.Nodes...)
	}
	prog, mask := c.Program, c.ArchiveMask
	if !c.prune {
		mask = nil
	}

	var seen, kept, denied, decodeErrs, nonFlow uint64
	nextLoss := 0 // lb.Losses before it are in b
	for i, line := range lb.Lines {
		for nextLoss < len(lb.Losses) && lb.LossIndex(nextLoss) <= i {
			p.addLoss(b, lb.Losses[nextLoss])
			nextLoss++
		}
		b.Bytes += int64(len(line))
		p.lineBytes += uint64(len(line)) + 1
		slot := b.Next()
		kind, err := dec.Decode(line, slot)
		if err == nil && kind == flow.KindFlow {
			err = p.place(slot)
		}
		if err == nil && kind == flow.KindFlow {
			ts := slot.GetTime()
			if t := ts.GetSeconds()*1e9 + int64(ts.GetNanos()); t >= p.latest {
				p.latest = t
			} else if d := p.latest - t; d > p.disorder {
				p.disorder = d
			}
			if len(p.open) > 0 {
				p.closeLosses(b, ts.GetSeconds()*1e9+int64(ts.GetNanos()))
			}
			node, min := slot.GetNodeName(), minuteOf(ts.GetSeconds())
			if node == "" {
				node = p.cfg.Node // place: the source's node
			}
			if node != p.lastNode {
				node = p.switchNode(node)
			}
			p.lastMin = min
			seen++
			if prog.MatchFlow(slot) {
				if err = dec.Finish(slot); err == nil {
					if slot.NodeName == "" {
						// A flow without its node is the source's node's.
						slot.NodeName = p.cfg.Node
					}
					mask.Prune(slot)
					kept++
					b.AddStat(node, min, flow.Counts{Seen: 1, Kept: 1})
					continue
				}
				seen-- // counted below as a decode error
			} else {
				denied++
				b.Unnext()
				b.AddStat(node, min, flow.Counts{Seen: 1, Denied: 1})
				continue
			}
		}
		b.Unnext()
		if err != nil {
			decodeErrs++
			b.AddStat(p.lastNode, p.minuteOrNow(), flow.Counts{DecodeErrors: 1})
			if p.errLog.allow(p.cfg.Now()) {
				where := ""
				if i < len(lb.Where) {
					where = lb.Where[i].String()
				}
				p.log.Warn("cannot decode event line; skipped and counted",
					zap.String("source", p.src.ID()), zap.String("where", where), zap.Error(err),
					zap.Uint64("suppressed", p.errLog.takeSuppressed()))
			}
			continue
		}
		switch kind {
		case flow.KindLostEvents:
			nonFlow++
			p.recordLost(b, dec)
		default:
			nonFlow++
			b.AddStat(p.nodeOf(dec.EnvelopeNodeName()), p.minuteOrNow(), flow.Counts{NonFlow: 1})
		}
	}
	for ; nextLoss < len(lb.Losses); nextLoss++ {
		p.addLoss(b, lb.Losses[nextLoss])
	}
	// A gap with no flow after it in the batch keeps To unknown: the batch
	// (and the checkpoint past the gap) is committed before the next one
	// is read.
	p.open = p.open[:0]
	p.lines += uint64(len(lb.Lines))
	b.Checkpoint = lb.Checkpoint
	if b.Checkpoint.Source != "" {
		b.Checkpoint.LastFlow, b.Checkpoint.Disorder = p.latest, p.disorder
	}
	b.Commit = b.Commit || lb.Commit
	p.setStatus(b)
	p.m.flows.Add(float64(seen))
	p.m.nonFlow.Add(float64(nonFlow))
	p.m.kept.Add(float64(kept))
	p.m.denied.Add(float64(denied))
	p.m.decodeErrors.Add(float64(decodeErrs))
	if decodeErrs > 0 {
		p.m.lost.WithLabelValues(flow.LossDecodeError).Add(float64(decodeErrs))
	}
}

// place checks that the archive can place the flow just decoded: a time
// it stores (the JSON archive plan checks it too, naming the offset), and
// a node: a flow without node_name is the source's node's, where the
// source has one.
func (p *Pipeline) place(f *flowpb.Flow) error {
	t := f.GetTime()
	if t == nil {
		return errNoTime
	}
	if !hubblejson.Storable(t.GetSeconds(), t.GetNanos()) {
		return fmt.Errorf("flow time %s is outside the times the archive stores (int64 nanoseconds)", t.AsTime().Format(time.RFC3339Nano))
	}
	if f.GetNodeName() == "" && p.cfg.Node == "" {
		return errNoNode
	}
	return nil
}

var (
	errNoTime = errors.New("flow without time: the archive cannot place it")
	errNoNode = errors.New("flow without node_name, from a source with no node of its own: the archive cannot place it")
)

// nodeOf returns the node a non-flow event belongs to: the "cluster/node"
// name of the flows from the same node when known, the event's own name
// otherwise, and the last flow's node when the event names none.
func (p *Pipeline) nodeOf(envelope string) string {
	if envelope == "" {
		return p.lastNode
	}
	if abs, ok := p.absolute[envelope]; ok {
		return abs
	}
	if p.cfg.Node != "" {
		if _, plain, ok := strings.Cut(p.cfg.Node, "/"); ok && plain == envelope {
			return p.cfg.Node
		}
	}
	return envelope
}

func (p *Pipeline) minuteOrNow() int64 {
	if p.lastMin != 0 {
		return p.lastMin
	}
	return p.cfg.Now().Unix() / 60 * 60
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// minuteOf is the start of the minute of a time in seconds (floored: a
// time before 1970 belongs to the minute before it, not to 1970's first).
func minuteOf(sec int64) int64 {
	m := sec / 60 * 60
	if m > sec {
		m -= 60
	}
	return m
}
