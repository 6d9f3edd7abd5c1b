package daemon

import (
	"context"
	"fmt"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/archive"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/gen"
	"github.com/flowaudit/flowaudit/pkg/ingest"
)

// newInput builds the ingest source of a configured source; a file source
// asks for a commit every commitEvery rotations.
func newInput(sc SourceConfig, cfg Config, commitEvery int, log *zap.Logger, m *ingest.Metrics) (ingest.Source, error) {
	switch {
	case sc.File != "":
		return ingest.NewFileSource(ingest.FileConfig{Path: sc.File, Follow: true, CommitEvery: commitEvery, IdleEvery: fileIdleEvery}, log, m)
	case sc.Synthetic != nil:
		return &syntheticInput{id: "synthetic:" + sc.Label(), cfg: *sc.Synthetic, cluster: cfg.Cluster}, nil
	case sc.Address != "":
		gc := ingest.GRPCConfig{Address: sc.Address, Node: sc.RelayNode, IdleEvery: fileIdleEvery, Archived: archivedFlows(cfg.Archive.Dir)}
		if t := sc.TLS; t != nil {
			gc.TLS = ingest.TLSConfig{CA: t.CA, Cert: t.Cert, Key: t.Key, ServerName: t.ServerName}
		}
		if sc.PushDown {
			var err error
			if gc.Whitelist, gc.Blacklist, gc.FieldMask, err = pushDown(sc.Spec()); err != nil {
				return nil, fmt.Errorf("%s: %w", sc.Label(), err)
			}
		}
		return ingest.NewGRPCSource(gc, log, m)
	default:
		return nil, fmt.Errorf("%s: not supported", sc.Label())
	}
}

// archivedFlows lists the flows the archive at root holds from since on:
// what a resumed gRPC source must not hand over again.
func archivedFlows(root string) func(ctx context.Context, since time.Time, fn func(node, uuid string, timeNs int64)) error {
	type row struct {
		Time   int64   `parquet:"time,timestamp(microsecond:utc)"`
		TimeNs int64   `parquet:"time_ns"`
		UUID   *string `parquet:"uuid,optional"`
		Node   *string `parquet:"node_name,optional,dict"`
	}
	return func(ctx context.Context, since time.Time, fn func(node, uuid string, timeNs int64)) error {
		if !archive.IsArchive(root) {
			return nil
		}
		sc, err := archive.OpenScanner(root)
		if err != nil {
			return err
		}
		err = archive.ScanFlowsAs(ctx, sc, archive.ScanOptions{From: since}, func(r *row) int64 { return r.Time }, func(rows []row) error {
			for i := range rows {
				if r := &rows[i]; r.UUID != nil && r.Node != nil {
					fn(*r.Node, *r.UUID, r.TimeNs)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		// With the row log, the newest flows are in the log until their
		// files are cut: a resume that missed them would archive them again.
		from := since.UnixNano()
		return archive.LogFlows(root, from, func(f *flowpb.Flow) {
			if t := f.GetTime(); t != nil && f.GetUuid() != "" && f.GetNodeName() != "" {
				if ns := t.GetSeconds()*1e9 + int64(t.GetNanos()); ns >= from {
					fn(f.GetNodeName(), f.GetUuid(), ns)
				}
			}
		})
	}
}

// fileIdleEvery is how often a quiet file source hands the pipeline an
// empty batch: the heartbeat stats row (archive.statsInterval) and the
// archive's commit by age (archive.maxFileAge) happen when a batch passes,
// so without it a node with no traffic would archive nothing, not even that
// it was up, and its last flows would wait for the next one to be committed.
const fileIdleEvery = time.Second

// commitEvery is how many rotations of an exporter's file the archive may
// go without a commit: after a crash the source re-reads everything since
// the last commit, and lumberjack deletes a backup at every rotation once it
// keeps max-backups of them. Half of them leaves the other half for the
// restart. Cilium's default (5 backups) when the settings are not known
// (a --source flag without --cilium-config-dir); none when lumberjack keeps
// every backup.
func commitEvery(r Rotation, known bool) int {
	backups := r.MaxBackups
	if !known {
		backups = ciliumDefaultMaxBackups
	}
	if backups == 0 {
		return 0
	}
	return max(1, backups/2)
}

// ciliumDefaultMaxBackups is hubble-export-file-max-backups' default.
const ciliumDefaultMaxBackups = 5

// syntheticInput generates realistic events in real time: the input of a
// daemon with no cluster (demos, load tests). Its checkpoints carry no
// position: a restart generates new events.
type syntheticInput struct {
	id      string
	cfg     SyntheticConfig
	cluster string
}

func (s *syntheticInput) ID() string { return s.id }

func (s *syntheticInput) Run(ctx context.Context, _ flow.Checkpoint, emit func(*ingest.LineBatch) error) error {
	seed := s.cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	start := time.Now()
	g, err := gen.New(gen.Config{Seed: seed, Start: start, Rate: s.cfg.Rate, Nodes: 1, Cluster: s.cluster})
	if err != nil {
		return fmt.Errorf("synthetic: %w", err)
	}
	var buf []byte
	var ends []int
	lb := &ingest.LineBatch{Checkpoint: flow.Checkpoint{Source: s.id}}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		buf, ends, lb.Lines = buf[:0], ends[:0], lb.Lines[:0]
		until := start.Add(time.Since(start))
		for g.Now().Before(until) && len(ends) < 4096 {
			if buf, err = g.AppendLine(buf); err != nil {
				return fmt.Errorf("synthetic: %w", err)
			}
			ends = append(ends, len(buf))
		}
		prev := 0
		for _, e := range ends {
			lb.Lines = append(lb.Lines, buf[prev:e-1]) // without the newline
			prev = e
		}
		if len(lb.Lines) == 0 {
			continue
		}
		if err := emit(lb); err != nil {
			return err
		}
	}
}
