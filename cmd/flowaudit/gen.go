package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/spf13/cobra"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/flowaudit/flowaudit/pkg/gen"
)

func init() { subcommands = append(subcommands, newGenCmd) }

func newGenCmd() *cobra.Command {
	var (
		cfg        gen.Config
		start      string
		duration   time.Duration
		count      int64
		realtime   bool
		out        string
		maxSizeMB  int
		maxBackups int
		compress   bool
		record     string
		outages    []string
	)
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Generate realistic Hubble events as events.log lines",
		Long: `gen simulates a cluster (nodes, ~40 namespaces, a few hundred pods with real-looking
labels, workloads, identities, services) and writes its Hubble events as the
lines Cilium v1.18.4's exporter writes: L3/L4 flows with reply pairs, DNS and
HTTP, drops with policies, audit verdicts, egress to the internet, and now and
then lost_events and agent_event lines. The output is deterministic for a seed.

Time is simulated (fast as possible, from --start) unless --realtime paces the
output at --rate in wall-clock time with the current time in the events.
With --out the lines go through lumberjack with the exporter's rotation
settings, so the files rotate exactly as Hubble's do.`,
		Example: `  flowaudit gen --count 1000000 > events.log
  flowaudit gen --nodes 3 --rate 50 --duration 720h --start 2026-01-01T00:00:00Z --out /tmp/hubble/events.log --max-size-mb 10 --max-backups 0 --compress
  flowaudit gen --realtime --rate 20000 --duration 60s --out /var/run/cilium/hubble/events.log`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (duration > 0) == (count > 0) {
				return errors.New("give exactly one of --duration and --count")
			}
			if duration < 0 || count < 0 {
				return errors.New("--duration and --count must not be negative")
			}
			// Flags mean what they say: pkg/gen takes 0 for its defaults,
			// and lumberjack takes a max size of 0 for 100 MiB.
			if cfg.Nodes < 1 {
				return fmt.Errorf("--nodes %d: want at least 1", cfg.Nodes)
			}
			if !(cfg.Rate > 0) || math.IsInf(cfg.Rate, 0) {
				return fmt.Errorf("--rate %v: want a number of flows per second per node > 0", cfg.Rate)
			}
			for _, r := range []struct {
				name string
				v    *float64
			}{{"--drop-ratio", &cfg.DropRatio}, {"--audit-ratio", &cfg.AuditRatio}} {
				if !(*r.v >= 0 && *r.v <= 1) {
					return fmt.Errorf("%s %v: want a share in [0, 1]", r.name, *r.v)
				}
				if *r.v == 0 {
					*r.v = -1 // none, for pkg/gen
				}
			}
			if cfg.DropRatio+cfg.AuditRatio > 1 {
				return fmt.Errorf("--drop-ratio %v and --audit-ratio %v: they must add up to at most 1", cfg.DropRatio, cfg.AuditRatio)
			}
			if out == "" || out == "-" {
				for _, name := range []string{"max-size-mb", "max-backups", "compress"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("--%s: applies to --out files only", name)
					}
				}
			} else if maxSizeMB < 1 || maxBackups < 0 {
				return errors.New("--max-size-mb must be at least 1 and --max-backups not negative")
			}
			if start != "" {
				t, err := time.Parse(time.RFC3339Nano, start)
				if err != nil {
					return fmt.Errorf("--start: %w", err)
				}
				cfg.Start = t
			}
			if realtime {
				if start != "" {
					return errors.New("--start is for simulated time; --realtime uses the current time")
				}
				cfg.Start = time.Now()
			}
			for _, o := range outages {
				parsed, err := gen.ParseOutage(o)
				if err != nil {
					return fmt.Errorf("--outage: %w", err)
				}
				cfg.Outages = append(cfg.Outages, parsed)
			}
			g, err := gen.New(cfg)
			if err != nil {
				return err
			}
			var w io.Writer
			var closeFn func() error
			if out == "" || out == "-" {
				bw := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<20)
				w, closeFn = bw, bw.Flush
			} else {
				lj := &lumberjack.Logger{Filename: out, MaxSize: maxSizeMB, MaxBackups: maxBackups, Compress: compress}
				w, closeFn = lj, lj.Close
			}
			var rec *recorder
			if record != "" {
				if rec, err = newRecorder(record); err != nil {
					return err
				}
			}
			err = generate(cmd, g, w, rec, cfg, duration, count, realtime)
			if cerr := closeFn(); err == nil {
				err = cerr
			}
			if rec != nil {
				if cerr := rec.close(); err == nil {
					err = cerr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.Int64Var(&cfg.Seed, "seed", 1, "random seed (same seed, same output)")
	f.IntVar(&cfg.Nodes, "nodes", 3, "number of nodes")
	f.StringVar(&cfg.Cluster, "cluster", "prod-kr1", "cluster name (flows carry node_name cluster/node)")
	f.Float64Var(&cfg.Rate, "rate", 100, "flows per second per node")
	f.Float64Var(&cfg.DropRatio, "drop-ratio", 0.03, "share of DROPPED flows")
	f.Float64Var(&cfg.AuditRatio, "audit-ratio", 0.01, "share of AUDIT flows")
	f.IntVar(&cfg.LostEventEvery, "lost-events-every", 0, "a Hubble lost_events line every N events on average (0: every 5000; -1: none)")
	f.IntVar(&cfg.AgentEventEvery, "agent-events-every", 0, "an agent_event line every N events on average (0: every 2000; -1: none)")
	f.DurationVar(&duration, "duration", 0, "how much (simulated, or with --realtime wall-clock) time to generate")
	f.Int64Var(&count, "count", 0, "how many events to generate")
	f.StringVar(&start, "start", "", "simulated start time, RFC 3339 (default 2026-01-01T00:00:00Z)")
	f.BoolVar(&realtime, "realtime", false, "pace the output at --rate in wall-clock time, events stamped with the current time")
	f.StringVar(&out, "out", "", "write to this file through lumberjack (default: stdout)")
	f.IntVar(&maxSizeMB, "max-size-mb", 10, "with --out: rotate when the file would exceed this many MiB (hubble-export-file-max-size-mb)")
	f.IntVar(&maxBackups, "max-backups", 5, "with --out: rotated files to keep, 0 keeps all (hubble-export-file-max-backups)")
	f.BoolVar(&compress, "compress", false, "with --out: gzip rotated files (hubble-export-file-compress)")
	f.DurationVar(&cfg.ProbeEvery, "probe-every", 0, "add the kubelet's health probes: each node probes one of its pods every this often, so every minute holds flows at any --rate (0: none)")
	f.StringArrayVar(&outages, "outage", nil, "NODE,FROM,TO: leave out the node's events in [FROM, TO) (RFC 3339), as when its collector was down and the exporter's files rotated away unread; repeatable")
	f.StringVar(&record, "record", "", "also write a line per flow to this file: its uuid, time (ns since the epoch), node_name and the line's length in bytes, written once the flow's line is (for checking an archive against what was generated)")
	return cmd
}

// generate writes events until the duration or count is reached. Each line is
// one Write call, as the exporter's json.Encoder does, so rotation never splits
// a line.
func generate(cmd *cobra.Command, g *gen.Generator, w io.Writer, rec *recorder, cfg gen.Config, duration time.Duration, count int64, realtime bool) error {
	var line []byte
	var err error
	start := g.Now() // the configured start, or the generator's default
	end := start.Add(duration)
	wallStart := time.Now()
	ctx := cmd.Context()
	for n := int64(0); count == 0 || n < count; n++ {
		line, err = g.AppendLine(line[:0])
		if err != nil {
			return err
		}
		if duration > 0 && g.Now().After(end) {
			return nil
		}
		if realtime {
			// Sleep until the event's simulated offset has passed on the wall clock.
			if d := g.Now().Sub(start) - time.Since(wallStart); d > 2*time.Millisecond {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return nil
				}
			}
		}
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("gen: write: %w", err)
		}
		if f := g.LastFlow(); rec != nil && f != nil {
			if err := rec.add(f, len(line)); err != nil {
				return err
			}
		}
	}
	return nil
}

// recorder writes --record: a line per flow generated, "uuid time_ns node
// bytes" (bytes: the length of the flow's events.log line, its newline
// included, so a checker can compare a gap's lost bytes with the lines it
// swallowed).
type recorder struct {
	f   *os.File
	bw  *bufio.Writer
	buf []byte
}

func newRecorder(path string) (*recorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("gen: --record: %w", err)
	}
	return &recorder{f: f, bw: bufio.NewWriterSize(f, 256<<10)}, nil
}

func (r *recorder) add(f *flowpb.Flow, lineBytes int) error {
	t := f.GetTime()
	r.buf = append(r.buf[:0], f.GetUuid()...)
	r.buf = append(r.buf, ' ')
	r.buf = strconv.AppendInt(r.buf, t.GetSeconds()*1e9+int64(t.GetNanos()), 10)
	r.buf = append(r.buf, ' ')
	r.buf = append(r.buf, f.GetNodeName()...)
	r.buf = append(r.buf, ' ')
	r.buf = strconv.AppendInt(r.buf, int64(lineBytes), 10)
	r.buf = append(r.buf, '\n')
	if _, err := r.bw.Write(r.buf); err != nil {
		return fmt.Errorf("gen: --record: %w", err)
	}
	return nil
}

func (r *recorder) close() error {
	err := r.bw.Flush()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("gen: --record: %w", err)
	}
	return nil
}
