package flow

import (
	"slices"
	"strings"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
)

// Kind is the kind of one Hubble event (one events.log line or one GetFlows response).
type Kind uint8

// Event kinds, in the order of the ExportEvent oneof.
const (
	KindUnknown Kind = iota
	KindFlow
	KindNodeStatus
	KindLostEvents
	KindAgentEvent
	KindDebugEvent
)

var kindNames = [...]string{"unknown", "flow", "node_status", "lost_events", "agent_event", "debug_event"}

// String returns the ExportEvent JSON key of the kind ("flow", "lost_events", ...).
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Checkpoint is a source's position after the last event of a batch. The archive
// commits it together with the rows before it and hands it back on restart; only
// the source that produced it interprets Position.
type Checkpoint struct {
	// Source identifies the source ("file:/var/run/cilium/hubble/events.log").
	Source string `json:"source"`
	// Position is the source's own encoding of where to resume (JSON for file
	// sources). Empty means "from the beginning".
	Position string `json:"position,omitempty"`
	// LastFlow is the latest time (ns since the epoch) of the flows read
	// before the position, kept or denied, and Disorder the most a flow's
	// time was seen to lag behind the latest one before it (a source's
	// lines are only roughly in time order); both set by the pipeline, 0
	// when unknown. A gap found on resume starts at LastFlow - Disorder.
	LastFlow int64 `json:"last_flow_ns,omitempty"`
	Disorder int64 `json:"disorder_ns,omitempty"`
}

// IsZero reports whether the checkpoint carries no position.
func (c Checkpoint) IsZero() bool { return c.Position == "" }

// Loss reasons recorded in the stats and losses tables.
const (
	LossHubbleLostEvents = "hubble_lost_events" // a lost_events line from Hubble (Detail = its source)
	LossDecodeError      = "decode_error"       // a line that could not be decoded
	LossLineTooLong      = "line_too_long"      // a line over the reader's limit, skipped
	LossRotationGap      = "rotation_gap"       // a backup deleted or truncated before it was read
	LossTruncated        = "truncated"          // the live file shrank under the reader
	LossDamagedInput     = "damaged_input"      // an input file that could not be read to its end (Detail = file and position)
	LossStreamDown       = "stream_down"        // a gRPC stream was down
)

// Amount says how much of a Loss's Events and Bytes is known.
type Amount uint8

const (
	// AmountExact: Events and Bytes (where non-zero) are what was lost.
	AmountExact Amount = iota
	// AtLeast: at least Events events and Bytes bytes were lost, maybe more.
	AtLeast
	// AmountUnknown: the amount cannot be known (Events and Bytes are 0);
	// the time range still bounds what was lost.
	AmountUnknown
)

var amountNames = [...]string{"exact", "at_least", "unknown"}

// String returns "exact", "at_least" or "unknown".
func (a Amount) String() string {
	if int(a) < len(amountNames) {
		return amountNames[a]
	}
	return "unknown"
}

// Loss is one accounted gap: events that were read (or should have been) but
// cannot be archived. Every loss lands in the stats table, the losses table
// and a metric.
//
// From and To bound the event times of what was lost: From is the latest
// time of the flows read before the loss and To the time of the first one
// after it, each widened by the most the source's flow times were seen out
// of order (zero: not known; a reader then takes Time). A loss at one
// point (a Hubble lost_events line, an over-long line) has From and To
// around that point.
type Loss struct {
	Node   string    // node the loss belongs to (sanitised by the archive)
	Time   time.Time // when it was detected (wall clock), or the event time of a Hubble lost_events line
	From   time.Time // the last flow before the loss (zero: unknown)
	To     time.Time // the first flow after the loss (zero: unknown)
	Reason string    // one of the Loss* constants
	Detail string    // Hubble lost-event source, file name, error class
	Events uint64    // events lost, where known (see Amount)
	Bytes  uint64    // bytes lost, where known (see Amount)
	Amount Amount
	// Estimated is an estimate of the events lost when Amount is not
	// exact in events (from the bytes lost and the source's mean line
	// size); 0: none.
	Estimated uint64
	// Source is the ID of the source that detected the loss.
	Source string
	// Bounded says the source set From and To itself (To zero: unknown):
	// a source of several nodes knows which flows bound a node's gap, the
	// pipeline's flows around the loss may be another node's.
	Bounded bool
}

// Counts are the per-minute collection counters of one node.
type Counts struct {
	Seen         uint64 // flow events read and decoded
	Kept         uint64 // flows that passed the filter and were archived
	Denied       uint64 // flows dropped by the user's allow/deny filter
	DecodeErrors uint64 // lines that could not be decoded
	NonFlow      uint64 // agent/debug events (not archived as flows)
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Seen += o.Seen
	c.Kept += o.Kept
	c.Denied += o.Denied
	c.DecodeErrors += o.DecodeErrors
	c.NonFlow += o.NonFlow
}

// MinuteStat is the counters of one node for one minute (Minute is the Unix time
// of the minute's start, in seconds). A source that is up emits a MinuteStat for
// every minute, even with all counters zero: no row means the collector was down.
type MinuteStat struct {
	Node   string
	Minute int64
	Counts Counts
	Status string // "up", "catching_up", "stream_down"...
}

// Batch is the unit that crosses stage boundaries: the kept, masked flows of a
// run of events plus the accounting for every event read, and the source's
// checkpoint after the last one.
//
// Ownership: the producer fills a Batch and hands it on; the consumer owns it
// until it calls Reset (or returns it to the pool it came from). Flows are reused
// slots: a *flowpb.Flow in Flows is valid until the next Reset.
type Batch struct {
	Flows      []*flowpb.Flow
	Stats      []MinuteStat
	Losses     []Loss
	Checkpoint Checkpoint
	// Arena backs the strings decoded into Flows; reset with the batch.
	Arena Arena
	// Bytes is the size of the event lines the batch was decoded from, which
	// bounds the memory the batch holds (the daemon's queue is bounded by it).
	Bytes int64
	// Commit asks the archive to commit its open files with this batch: the
	// source's unread input is about to be deleted (see ingest.FileConfig).
	Commit bool

	// statIdx indexes Stats[:indexed] by node and minute (AddStat).
	statIdx map[statKey]int
	indexed int
}

// Next returns a cleared Flow slot appended to b.Flows, reusing an old slot
// (and its nested messages, which the caller must reset) when one is available.
func (b *Batch) Next() *flowpb.Flow {
	n := len(b.Flows)
	if n < cap(b.Flows) {
		b.Flows = b.Flows[:n+1]
		if f := b.Flows[n]; f != nil {
			return f
		}
	} else {
		b.Flows = append(b.Flows, nil)
	}
	f := &flowpb.Flow{}
	b.Flows[n] = f
	return f
}

// Unnext removes the last slot handed out by Next (the flow was dropped); the
// slot stays available for reuse.
func (b *Batch) Unnext() { b.Flows = b.Flows[:len(b.Flows)-1] }

// Len is the number of kept flows.
func (b *Batch) Len() int { return len(b.Flows) }

// AddStat adds counts for (node, minute), merging with an existing entry.
// The latest entries are looked at first (a node's flows come in runs);
// a batch of many nodes' flows (Relay, the import of a cluster's log) finds
// its entry through an index rather than a scan of every node's.
func (b *Batch) AddStat(node string, minute int64, c Counts) {
	n := len(b.Stats)
	for i := n - 1; i >= 0 && i >= n-statScan; i-- {
		if s := &b.Stats[i]; s.Minute == minute && s.Node == node {
			s.Counts.Add(c)
			return
		}
	}
	if n > statScan {
		if b.statIdx == nil || b.indexed > n { // Stats was truncated by hand
			b.statIdx, b.indexed = make(map[statKey]int, n), 0
		}
		for ; b.indexed < n; b.indexed++ {
			s := &b.Stats[b.indexed]
			b.statIdx[statKey{s.Node, s.Minute}] = b.indexed
		}
		if i, ok := b.statIdx[statKey{node, minute}]; ok {
			if s := &b.Stats[i]; s.Minute == minute && s.Node == node {
				s.Counts.Add(c)
				return
			}
		}
	}
	b.Stats = append(b.Stats, MinuteStat{Node: node, Minute: minute, Counts: c, Status: "up"})
}

// statScan is how many of a batch's latest stats AddStat compares before
// it looks the entry up in the index.
const statScan = 8

type statKey struct {
	node   string
	minute int64
}

// Reset empties the batch, keeping its slots for reuse.
func (b *Batch) Reset() {
	b.Flows = b.Flows[:0]
	b.Stats = b.Stats[:0]
	clear(b.statIdx)
	b.indexed = 0
	clear(b.Losses)
	b.Losses = b.Losses[:0]
	b.Checkpoint = Checkpoint{}
	b.Arena.Reset()
	b.Bytes = 0
	b.Commit = false
}

// FieldSet is a set of proto field paths into flowpb.Flow ("verdict",
// "source.pod_name", "l7.http.url"), as used by field masks. A filter program
// reports the fields it reads and a field mask the fields it keeps; the decoder
// decodes their union and skips the rest. The zero value is the empty set; All
// is every field.
type FieldSet struct {
	all   bool
	paths []string // sorted, normalised: no path is a prefix-parent of another
}

// AllFields is the set of every field.
func AllFields() FieldSet { return FieldSet{all: true} }

// Fields returns the set of the given paths, normalised.
func Fields(paths ...string) FieldSet {
	var s FieldSet
	for _, p := range paths {
		s = s.Union(FieldSet{paths: []string{p}})
	}
	return s
}

// IsAll reports whether the set holds every field.
func (s FieldSet) IsAll() bool { return s.all }

// IsEmpty reports whether the set holds no field.
func (s FieldSet) IsEmpty() bool { return !s.all && len(s.paths) == 0 }

// Paths returns the normalised paths (nil for All).
func (s FieldSet) Paths() []string { return slices.Clone(s.paths) }

// Union returns s ∪ o, normalised (a parent path absorbs its children).
func (s FieldSet) Union(o FieldSet) FieldSet {
	if s.all || o.all {
		return FieldSet{all: true}
	}
	all := append(slices.Clone(s.paths), o.paths...)
	slices.Sort(all)
	all = slices.Compact(all)
	out := all[:0]
	for _, p := range all {
		if len(out) > 0 && isParent(out[len(out)-1], p) {
			continue
		}
		out = append(out, p)
	}
	return FieldSet{paths: out}
}

// Has reports whether path is in the set, itself or through a parent.
func (s FieldSet) Has(path string) bool {
	if s.all {
		return true
	}
	for _, p := range s.paths {
		if p == path || isParent(p, path) {
			return true
		}
	}
	return false
}

// Covers reports whether every field of o is in s.
func (s FieldSet) Covers(o FieldSet) bool {
	if s.all {
		return true
	}
	if o.all {
		return false
	}
	for _, p := range o.paths {
		if !s.Has(p) {
			return false
		}
	}
	return true
}

// Touches reports whether path or any field below it is in the set (so the
// decoder must descend into path).
func (s FieldSet) Touches(path string) bool {
	if s.all {
		return true
	}
	for _, p := range s.paths {
		if p == path || isParent(p, path) || isParent(path, p) {
			return true
		}
	}
	return false
}

// String returns the paths joined by commas ("*" for All).
func (s FieldSet) String() string {
	if s.all {
		return "*"
	}
	return strings.Join(s.paths, ",")
}

func isParent(parent, child string) bool {
	return len(child) > len(parent) && child[len(parent)] == '.' && strings.HasPrefix(child, parent)
}
