package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/flowaudit/flowaudit/internal/daemon"
)

func init() { subcommands = append(subcommands, newRunCmd) }

// runFlags are the flags of `flowaudit run`; each overrides one config key.
type runFlags struct {
	config, ciliumDir                        string
	printConfig                              bool
	sources                                  []string
	allowlist, denylist, mask                string
	syntheticRate                            float64
	archive, listen, debugListen, node       string
	cluster, logLevel, logFormat             string
	signingKey, publicKey                    string
	maxFileRows                              int
	maxFileBytes, queueBytes                 daemon.Size
	maxFileAge, statsInterval                daemon.Duration
	maxLag, drain, verifyInterval, retention daemon.Duration
	maintenanceInterval                      daemon.Duration
	compaction                               bool
	rowLog                                   bool
	tls                                      daemon.TLSConfig
	relayNode                                string
	pushDown                                 bool
	uploadTo, uploadLockMode                 string
	uploadLockRetain                         daemon.Duration
}

const runLong = `run is the DaemonSet daemon. Each source is followed in its own pipeline:
events are decoded, filtered with Hubble's allow/deny filters, masked, and
written to the archive, whose commits carry each source's checkpoint, so a
restart (even after SIGKILL) resumes exactly where the archive stopped. A
commit fsyncs the archive's row log (--row-log, on by default) and the
Parquet files are cut by --max-file-age/-rows/-bytes: one flows and one
stats file per partition every 5 minutes up to ~50k flows/s (with
--row-log=false every commit is a file). The archive commits when a file
is cut, and a file source also every max(1, max-backups/2) rotations of the
exporter's file, and after every read that finished a file when the
exporter rotates so fast that the next read could otherwise come too late,
so that what a restart re-reads is still on disk (max-backups from
--cilium-config-dir or sources[].maxBackups; otherwise Cilium's default, 5;
fewer backups on disk than that count instead).

Configuration: --config FILE (YAML; see deploy/daemonset/base/config.yaml
for every key), then FLOWAUDIT_* environment variables (the flag's name
upper-cased, "-" as "_": FLOWAUDIT_ARCHIVE, FLOWAUDIT_NODE, ...), then flags. The node name
defaults to $NODE_NAME, then the hostname; the cluster to $CLUSTER_NAME.
--print-config prints the effective configuration. Every problem in it is
reported at once, before anything starts.

Sources (--source, repeatable; they replace the config file's sources):
  file:PATH    Hubble's exporter file (static exporter or a flowLogs entry),
               followed through lumberjack's rotation, backups (.gz too)
               caught up on start; waited for while it does not exist, and
               while its directory does not either with a warning, not
               ready and flowaudit_source_up 0 (a directory is refused)
  unix:///var/run/cilium/hubble.sock
               the node's agent over Hubble's gRPC API (GetFlows, follow):
               for nodes where the exporter is off
  grpc://HOST:4244
               an agent's TCP listener (TLS: --tls-ca, and --tls-cert and
               --tls-key for mTLS; --tls-server-name, as Cilium names it:
               <node>.<cluster>.hubble-grpc.cilium.io)
  relay://HOST:PORT
               Hubble Relay: the whole cluster, each node in its own
               partitions, or one node with --relay-node (TLS as above
               when --tls-ca is given)
  synthetic    the built-in generator in real time at --synthetic-rate
  --cilium-config-dir DIR reads a mounted cilium-config ConfigMap instead:
  hubble-export-file-path with hubble-export-allowlist/-denylist/-fieldmask,
  and every entry of hubble-flowlogs-config-path, with their own filters.
A gRPC source resumes from the latest flow of each node it archived (less
an overlap, its flows deduplicated by uuid), reconnects with backoff, and
records as a stream_down loss what the server no longer had when it came
back (an agent restarted, its ring overrun); Hubble's lost_events are
recorded as they come. --push-down also sends the filters and mask to the
server (fewer bytes on the wire, the same archive; a change of them then
needs a restart).

A stats row is written at least every --stats-interval while the daemon
runs, so the report can tell "no traffic" from "collector down".

Signals: SIGHUP (or a change of the config file, of the --cilium-config-dir
keys or of the flowlogs file they name, checked every 5s and acted on when
two checks agree) reloads
the filters and masks: each source switches at a batch boundary, so no flow
is lost or handled twice; a bad configuration is rejected and the running
one kept. SIGTERM or SIGINT stops reading, drains, commits the open files and
exits 0 within --drain-timeout; a second signal exits at once (the archive's
commit protocol keeps it consistent either way).

Archive errors (disk full, I/O): the daemon stops reading, reopens the
archive with backoff and resumes from the last committed checkpoint.

An archive another process holds (the daemon this one replaces in an
upgrade): the daemon waits for it as a standby, reading nothing, and
resumes from that process's last commit once it has released the archive
(on its SIGTERM, or its death).

HTTP on --listen: /metrics (Prometheus; docs/metrics.md), /healthz, /readyz
(/readyz?standby: a standby counts as ready). --debug-listen serves Go's
profiler (net/http/pprof) on a loopback address: e.g.
go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=60

Memory: the Go GC runs at 50% heap growth unless GOGC is set, and a
container's memory limit (cgroup memory.max) becomes the runtime's soft
limit, 7/8 of it, unless GOMEMLIMIT is set.`

func newRunCmd() *cobra.Command {
	var o runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the collector daemon: follow Hubble's exporter files or gRPC API and archive the flows",
		Long:  runLong,
		Example: `  flowaudit run --config /etc/flowaudit/config.yaml
  flowaudit run --source file:/var/run/cilium/hubble/events.log --archive /var/lib/flowaudit --listen 127.0.0.1:9967
  flowaudit run --cilium-config-dir /etc/cilium-config --archive /var/lib/flowaudit
  flowaudit run --source unix:///var/run/cilium/hubble.sock --archive /var/lib/flowaudit
  flowaudit run --source relay://hubble-relay.kube-system.svc:80 --archive /archive/cluster
  flowaudit run --source synthetic --synthetic-rate 2000 --archive /tmp/archive --node demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd, &o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "YAML configuration file (flags and FLOWAUDIT_* override it)")
	f.BoolVar(&o.printConfig, "print-config", false, "print the effective configuration and exit")
	f.StringVar(&o.ciliumDir, "cilium-config-dir", "", "a mounted cilium-config ConfigMap: its hubble-export-* keys and flowlogs file become sources")
	f.StringArrayVar(&o.sources, "source", nil, "source to follow: file:PATH, unix:///PATH, grpc://HOST:PORT, relay://HOST:PORT or synthetic (repeatable)")
	f.StringVar(&o.tls.CA, "tls-ca", "", "CA (PEM) of the --source grpc:// or relay:// server")
	f.StringVar(&o.tls.Cert, "tls-cert", "", "client certificate (PEM) for mTLS to the --source gRPC server")
	f.StringVar(&o.tls.Key, "tls-key", "", "the client certificate's key (PEM)")
	f.StringVar(&o.tls.ServerName, "tls-server-name", "", "the gRPC server's name in its certificate (default: the address's host)")
	f.StringVar(&o.uploadTo, "upload-to", "", "ship closed files and manifests to s3://BUCKET[/PREFIX] (archive.upload.to; AWS credentials and AWS_ENDPOINT_URL as for flowaudit ship)")
	f.StringVar(&o.uploadLockMode, "upload-object-lock-mode", "", "S3 Object Lock on shipped objects: COMPLIANCE or GOVERNANCE (archive.upload.objectLock.mode)")
	f.Var(&o.uploadLockRetain, "upload-object-lock-retain", "how long Object Lock retains a shipped object, e.g. 400d (archive.upload.objectLock.retain)")
	f.StringVar(&o.relayNode, "relay-node", "", "with --source relay://: archive only this node's flows (cluster/node)")
	f.BoolVar(&o.pushDown, "push-down", false, "with a gRPC --source: also send the allowlist, denylist and field mask to the server, which then sends less (what is archived does not change)")
	f.StringVar(&o.allowlist, "allowlist", "", "hubble-export-allowlist for the --source sources: keep only matching flows")
	f.StringVar(&o.denylist, "denylist", "", "hubble-export-denylist for the --source sources: drop matching flows")
	f.StringVar(&o.mask, "fieldmask", "", "hubble-export-fieldmask for the --source sources (must keep time and node_name: the archive places every flow by them)")
	f.Float64Var(&o.syntheticRate, "synthetic-rate", 1000, "flows per second of a synthetic source")
	f.StringVar(&o.archive, "archive", "", "archive root directory (archive.dir)")
	f.StringVar(&o.listen, "listen", ":9967", "HTTP address of /metrics, /healthz and /readyz (empty: none; not 9965, which Hubble's metrics server uses on the host network)")
	f.StringVar(&o.debugListen, "debug-listen", "", "loopback address of Go's profiler, /debug/pprof/ (debugListen; empty: off), e.g. 127.0.0.1:6060")
	f.StringVar(&o.node, "node", "", "this node's name (default $NODE_NAME, then the hostname)")
	f.StringVar(&o.cluster, "cluster", "", `cluster name: nodes are "cluster/node" as in Hubble's flows (default $CLUSTER_NAME)`)
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "json", "json or console")
	f.StringVar(&o.signingKey, "signing-key-file", "", "ed25519 private key that signs every manifest entry (archive.signingKeyFile)")
	f.StringVar(&o.publicKey, "verify-public-key-file", "", "ed25519 public key the periodic verification checks signatures with (default: the signing key's)")
	f.IntVar(&o.maxFileRows, "max-file-rows", 0, "cut archive files at this many rows (archive.maxFileRows; default 16777216)")
	// The help shows the real defaults; a flag only overrides the config
	// file when it is given.
	def := daemon.Default()
	o.maxFileBytes, o.maxFileAge, o.statsInterval = def.Archive.MaxFileBytes, def.Archive.MaxFileAge, def.Archive.StatsInterval
	o.queueBytes, o.maxLag, o.drain, o.verifyInterval = def.Queue.MaxBytes, def.Readiness.MaxLag, def.Shutdown.DrainTimeout, def.Verify.Interval
	o.maintenanceInterval = def.Archive.MaintenanceInterval
	f.Var(&o.maxFileBytes, "max-file-bytes", "cut archive files at about this size, e.g. 1Gi (archive.maxFileBytes)")
	f.Var(&o.maxFileAge, "max-file-age", "cut archive files at least this often, e.g. 5m (archive.maxFileAge): the most a row waits before readers see it")
	f.Var(&o.statsInterval, "stats-interval", "write a stats row at least this often, e.g. 1m (archive.statsInterval)")
	f.Var(&o.queueBytes, "queue-max-bytes", "a queue between each source and the archive writer, bounded to this many event bytes, e.g. 16Mi; 0: none, each source writes its own batches (queue.maxBytes)")
	f.Var(&o.maxLag, "readiness-max-lag", "not ready while archived flows are older than this, e.g. 5m (readiness.maxLag)")
	f.Var(&o.drain, "drain-timeout", "how long SIGTERM may take to drain and commit, e.g. 20s (shutdown.drainTimeout)")
	f.Var(&o.retention, "retention", "delete archive days older than this, both tables, e.g. 400d; 0: keep forever (archive.retention.flows and .stats)")
	f.Var(&o.verifyInterval, "verify-interval", "verify the last two closed days this often; 0: never (verify.interval)")
	f.BoolVar(&o.rowLog, "row-log", def.Archive.RowLog, "commit by fsyncing a local row log and cut files only by --max-file-age/-rows/-bytes, so a node closes a few files an hour at any rate (archive.rowLog); --row-log=false: every commit is a file, merged by compaction (lower --max-file-rows and --max-file-bytes with it, e.g. 1048576 and 128Mi)")
	f.BoolVar(&o.compaction, "compaction", def.Archive.Compaction, "merge the small files of closed days, every --maintenance-interval, each merge recorded in the manifest chain (archive.compaction)")
	f.Var(&o.maintenanceInterval, "maintenance-interval", "run retention and then compaction this often, e.g. 1h (archive.maintenanceInterval)")
	return cmd
}

// noConfigError is a failure before there is an effective configuration to
// show (an environment variable or the file could not be read):
// --print-config then prints nothing but the error.
type noConfigError struct{ error }

func (e noConfigError) Unwrap() error { return e.error }

// loadRunConfig builds the effective configuration: defaults, the file, the
// environment, the flags, then the Cilium ConfigMap's sources; and validates it.
func loadRunConfig(cmd *cobra.Command, o *runFlags) (daemon.Config, map[string]daemon.Rotation, error) {
	flags := cmd.Flags()
	var envErrs []error
	flags.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || fl.Name == "config" && o.config != "" {
			return
		}
		env := "FLOWAUDIT_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := flags.Set(fl.Name, v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: %w", env, v, err))
			}
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return daemon.Config{}, nil, noConfigError{err}
	}
	cfg := daemon.Default()
	if o.config != "" {
		var err error
		if cfg, err = daemon.Load(o.config); err != nil {
			return cfg, nil, noConfigError{err}
		}
	}
	changed := flags.Changed
	if changed("archive") {
		cfg.Archive.Dir = o.archive
	}
	if changed("listen") {
		cfg.Listen = o.listen
	}
	if changed("debug-listen") {
		cfg.DebugListen = o.debugListen
	}
	if changed("node") {
		cfg.Node = o.node
	}
	if changed("cluster") {
		cfg.Cluster = o.cluster
	}
	if changed("log-level") {
		cfg.Log.Level = o.logLevel
	}
	if changed("log-format") {
		cfg.Log.Format = o.logFormat
	}
	if changed("cilium-config-dir") {
		cfg.CiliumConfigDir = o.ciliumDir
	}
	if changed("signing-key-file") {
		cfg.Archive.SigningKeyFile = o.signingKey
	}
	if changed("verify-public-key-file") {
		cfg.Verify.PublicKeyFile = o.publicKey
	}
	if changed("max-file-rows") {
		cfg.Archive.MaxFileRows = o.maxFileRows
	}
	if changed("max-file-bytes") {
		cfg.Archive.MaxFileBytes = o.maxFileBytes
	}
	if changed("max-file-age") {
		cfg.Archive.MaxFileAge = o.maxFileAge
	}
	if changed("stats-interval") {
		cfg.Archive.StatsInterval = o.statsInterval
	}
	if changed("queue-max-bytes") {
		cfg.Queue.MaxBytes = o.queueBytes
	}
	if changed("readiness-max-lag") {
		cfg.Readiness.MaxLag = o.maxLag
	}
	if changed("drain-timeout") {
		cfg.Shutdown.DrainTimeout = o.drain
	}
	if changed("verify-interval") {
		cfg.Verify.Interval = o.verifyInterval
	}
	if changed("retention") {
		cfg.Archive.Retention = daemon.RetentionConfig{Flows: o.retention, Stats: o.retention}
	}
	if changed("upload-to") {
		cfg.Archive.Upload.To = o.uploadTo
	}
	if changed("upload-object-lock-mode") {
		cfg.Archive.Upload.ObjectLock.Mode = o.uploadLockMode
	}
	if changed("upload-object-lock-retain") {
		cfg.Archive.Upload.ObjectLock.Retain = o.uploadLockRetain
	}
	if changed("compaction") {
		cfg.Archive.Compaction = o.compaction
	}
	if changed("row-log") {
		cfg.Archive.RowLog = o.rowLog
	}
	if changed("maintenance-interval") {
		cfg.Archive.MaintenanceInterval = o.maintenanceInterval
	}
	var errs []error
	if changed("source") {
		cfg.Sources = nil
		for _, s := range o.sources {
			sc := daemon.SourceConfig{Allowlist: o.allowlist, Denylist: o.denylist, FieldMask: o.mask}
			switch {
			case strings.HasPrefix(s, "file:"):
				sc.File = strings.TrimPrefix(s, "file:")
			case s == "synthetic":
				sc.Synthetic = &daemon.SyntheticConfig{Rate: o.syntheticRate}
			case strings.HasPrefix(s, "unix://"), strings.HasPrefix(s, "grpc://"), strings.HasPrefix(s, "relay://"):
				sc.Address = s
				if o.tls != (daemon.TLSConfig{}) {
					t := o.tls
					sc.TLS = &t
				}
				if strings.HasPrefix(s, "relay://") {
					sc.RelayNode = o.relayNode
				}
				sc.PushDown = o.pushDown
			default:
				errs = append(errs, fmt.Errorf("--source %q: want file:PATH, unix:///PATH, grpc://HOST:PORT, relay://HOST:PORT or synthetic", s))
				continue
			}
			cfg.Sources = append(cfg.Sources, sc)
		}
		if changed("relay-node") && !strings.Contains(strings.Join(o.sources, " "), "relay://") {
			errs = append(errs, errors.New("--relay-node needs a --source relay://HOST:PORT"))
		}
		if o.pushDown && !slices.ContainsFunc(cfg.Sources, func(sc daemon.SourceConfig) bool { return sc.Address != "" }) {
			errs = append(errs, errors.New("--push-down needs a gRPC --source (unix://, grpc:// or relay://)"))
		}
	} else if changed("allowlist") || changed("denylist") || changed("fieldmask") || changed("relay-node") || changed("push-down") || o.tls != (daemon.TLSConfig{}) {
		errs = append(errs, errors.New("--allowlist, --denylist, --fieldmask, --tls-*, --relay-node and --push-down apply to --source sources; set those of configured sources in the config file"))
	}
	if changed("synthetic-rate") && !slices.Contains(o.sources, "synthetic") {
		errs = append(errs, errors.New("--synthetic-rate applies to --source synthetic; set the rate of a configured synthetic source in the config file"))
	}
	if cfg.Node == "" {
		cfg.Node = os.Getenv("NODE_NAME")
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	if cfg.Cluster == "" {
		cfg.Cluster = os.Getenv("CLUSTER_NAME")
	}
	var rot map[string]daemon.Rotation
	if cfg.CiliumConfigDir != "" {
		srcs, r, err := daemon.CiliumSources(cfg.CiliumConfigDir)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.Sources, rot = append(cfg.Sources, srcs...), r
	}
	if err := errors.Join(append(errs, cfg.Validate())...); err != nil {
		return cfg, rot, err
	}
	return cfg, rot, nil
}

func newDaemonLogger(cfg daemon.Config) (*zap.Logger, zap.AtomicLevel, error) {
	level, err := zap.ParseAtomicLevel(cfg.Log.Level)
	if err != nil {
		return nil, level, fmt.Errorf("log.level: %w", err)
	}
	zcfg := zap.NewProductionConfig()
	zcfg.Level = level
	zcfg.Encoding = cfg.Log.Format
	zcfg.EncoderConfig.TimeKey = "time"
	zcfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	// Repeated messages are sampled (zap's default: the first 100 per second,
	// then every 100th), so no warning can flood the node's logs.
	log, err := zcfg.Build()
	return log, level, err
}

func runDaemon(cmd *cobra.Command, o *runFlags) error {
	// The daemon's live heap is small (column buffers, the zstd encoder)
	// and it allocates little, so collecting at 50% growth instead of 100%
	// costs almost no CPU and bounds the node's RSS closer to the live heap
	// (the heap profile is in bench/README.md, "Daemon").
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	cfg, rot, err := loadRunConfig(cmd, o)
	if o.printConfig && !errors.As(err, new(noConfigError)) {
		out, merr := cfg.Redacted()
		if merr != nil {
			if err != nil { // a value JSON cannot hold (NaN): the problems say which
				return fmt.Errorf("the configuration is not valid:\n%w", err)
			}
			return merr
		}
		if _, werr := cmd.OutOrStdout().Write(out); werr != nil {
			return werr
		}
		if err != nil {
			return fmt.Errorf("the configuration is not valid:\n%w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("the configuration is not valid:\n%w", err)
	}
	log, level, err := newDaemonLogger(cfg)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	// A container's memory limit, unless GOMEMLIMIT is set, becomes the Go
	// runtime's soft limit (7/8 of it): the GC collects harder as the
	// limit nears instead of the kernel killing the pod.
	if os.Getenv("GOMEMLIMIT") == "" {
		if limit, ok := containerMemoryLimit("/sys/fs/cgroup"); ok {
			debug.SetMemoryLimit(softMemoryLimit(limit))
			log.Info("soft memory limit from the container's memory limit (GOMEMLIMIT overrides it)",
				zap.Int64("container_limit_bytes", limit), zap.Int64("soft_limit_bytes", softMemoryLimit(limit)))
		}
	}

	d, err := daemon.New(cfg, daemon.Options{
		Log: log, Level: &level, Rotations: rot,
		Load: func() (daemon.Config, error) {
			c, _, err := loadRunConfig(cmd, o)
			return c, err
		},
	})
	if err != nil {
		return fmt.Errorf("the configuration is not valid:\n%w", err)
	}

	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	defer daemon.HandleSignals(cancel, d.Reload, log)()
	daemon.WatchConfig(ctx, o.config, cfg.CiliumConfigDir, daemon.ConfigPollInterval, d.Reload, log)
	log.Info("flowaudit run starting", zap.String("node", cfg.NodeName()), zap.String("archive", cfg.Archive.Dir), zap.Int("sources", len(cfg.Sources)))
	return d.Run(ctx)
}
