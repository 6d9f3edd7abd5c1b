package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/ingest"
	"github.com/flowaudit/flowaudit/pkg/objstore"
	"github.com/flowaudit/flowaudit/pkg/pipeline"
)

// Config is the daemon's configuration: the file given with --config, then
// FLOWAUDIT_* environment variables, then flags (see cmd/flowaudit run.go).
// Keys are camelCase, as in Kubernetes objects.
type Config struct {
	// Node is this node's name (default $NODE_NAME, then the hostname).
	Node string `json:"node"`
	// Cluster prefixes the node as Hubble does in flows ("cluster/node");
	// default $CLUSTER_NAME. Empty or "default": the plain node name.
	Cluster string `json:"cluster"`
	// Listen is the HTTP address of /metrics, /healthz and /readyz ("" : none).
	Listen string `json:"listen"`
	// DebugListen is a loopback address for Go's profiler (net/http/pprof:
	// /debug/pprof/), off when empty: what a node's CPU or memory goes to,
	// read with `kubectl port-forward` or on the node itself.
	DebugListen string    `json:"debugListen"`
	Log         LogConfig `json:"log"`
	// CiliumConfigDir is a mounted cilium-config ConfigMap: its
	// hubble-export-* keys and hubble-flowlogs-config-path become sources.
	CiliumConfigDir string          `json:"ciliumConfigDir"`
	Sources         []SourceConfig  `json:"sources"`
	Archive         ArchiveConfig   `json:"archive"`
	Queue           QueueConfig     `json:"queue"`
	Readiness       ReadinessConfig `json:"readiness"`
	Shutdown        ShutdownConfig  `json:"shutdown"`
	Verify          VerifyConfig    `json:"verify"`
}

// LogConfig configures zap.
type LogConfig struct {
	Level  string `json:"level"`  // debug, info, warn, error
	Format string `json:"format"` // json or console
}

// SourceConfig is one input with its own filters and mask, in Cilium's syntax.
type SourceConfig struct {
	// Name labels the source in logs; the checkpoint identity is the source's
	// own ID (the file path), so renaming does not re-read anything.
	Name string `json:"name"`
	// File is the path of an exporter file (static exporter or a flowLogs entry).
	File string `json:"file,omitempty"`
	// MaxBackups is the exporter's hubble-export-file-max-backups for File
	// (0: it keeps every backup), for a file whose settings are not read
	// from ciliumConfigDir; unset: Cilium's default, 5. The source commits
	// every max(1, MaxBackups/2) rotations, so that a restart finds what it
	// must re-read.
	MaxBackups *int `json:"maxBackups,omitempty"`
	// Address is a Hubble gRPC endpoint: unix:///var/run/cilium/hubble.sock
	// (the node's agent), grpc://HOST:4244 (an agent's TCP listener, TLS)
	// or relay://HOST:PORT (Hubble Relay).
	Address string `json:"address,omitempty"`
	// TLS of a grpc:// or relay:// address (PEM files, as Cilium's Helm
	// chart mounts its Hubble client certificates).
	TLS *TLSConfig `json:"tls,omitempty"`
	// RelayNode, for a relay:// address, keeps one node's flows (empty: the
	// whole cluster, each node in its own partitions).
	RelayNode string `json:"relayNode,omitempty"`
	// PushDown, for a gRPC source, also sends the allowlist and denylist as
	// the request's whitelist and blacklist, and the field mask (with the
	// fields the filter reads, and uuid) as its field_mask: the server then
	// sends less. What is archived does not change: the pipeline applies
	// the same filter and mask to what arrives. The stats rows' denied
	// counts then count only what the server sent.
	PushDown bool `json:"pushDown,omitempty"`
	// Synthetic generates realistic flows in real time (no cluster needed).
	Synthetic *SyntheticConfig `json:"synthetic,omitempty"`

	Allowlist string `json:"allowlist"` // hubble-export-allowlist syntax
	Denylist  string `json:"denylist"`  // hubble-export-denylist syntax
	FieldMask string `json:"fieldmask"` // hubble-export-fieldmask syntax

	// origin says where the source came from, for error messages.
	origin string
}

// TLSConfig is a gRPC source's TLS client configuration.
type TLSConfig struct {
	CA         string `json:"ca"`                   // the server's CA (PEM file)
	Cert       string `json:"cert,omitempty"`       // client certificate for mTLS
	Key        string `json:"key,omitempty"`        // its key
	ServerName string `json:"serverName,omitempty"` // default: the address's host
}

// SyntheticConfig configures the built-in generator.
type SyntheticConfig struct {
	Rate float64 `json:"rate"` // flows per second
	Seed int64   `json:"seed"` // 0: from the clock
}

// ArchiveConfig configures the Parquet archive.
type ArchiveConfig struct {
	Dir          string   `json:"dir"`
	MaxFileBytes Size     `json:"maxFileBytes"`
	MaxFileRows  int      `json:"maxFileRows"`
	MaxFileAge   Duration `json:"maxFileAge"`
	// RowLog (on by default) makes a commit an fsync of a local row log
	// (_wal/) instead of a Parquet file: files are cut only by maxFileAge,
	// maxFileRows or maxFileBytes (docs/format.md, "The row log"). Off,
	// every commit is a file, which compaction merges once its day ends
	// (set maxFileBytes 128Mi and maxFileRows 1048576 with it).
	RowLog bool `json:"rowLog"`
	// StatsInterval is how often a stats row is written while nothing
	// arrives, so that "no traffic" differs from "collector down".
	StatsInterval Duration `json:"statsInterval"`
	// SigningKeyFile holds an ed25519 private key that signs every manifest
	// entry (PEM PKCS#8, a 32-byte seed, or 64 raw bytes; hex or base64 too).
	SigningKeyFile string `json:"signingKeyFile"`
	// Retention deletes whole date partitions older than this, per table
	// (0: keep forever); each deletion is recorded in the manifest chain.
	Retention RetentionConfig `json:"retention"`
	// Compaction merges the small files of closed UTC days into files of up
	// to maxFileRows/maxFileBytes, every maintenanceInterval; each merge is
	// recorded in the manifest chain ("compaction" entries) before its
	// inputs go.
	Compaction bool `json:"compaction"`
	// MaintenanceInterval is how often retention and then compaction run
	// (the first time after at most 2 minutes): a day becomes due once, so
	// an hour only delays its turn by up to an hour.
	MaintenanceInterval Duration `json:"maintenanceInterval"`
	// Upload ships the closed files and their manifests to object storage.
	Upload UploadConfig `json:"upload"`
}

// UploadConfig ships the archive to S3-compatible object storage (pkg/ship).
type UploadConfig struct {
	// To is s3://BUCKET[/PREFIX]; empty: no shipping.
	To string `json:"to"`
	// Endpoint is an S3-compatible server's URL (default AWS_ENDPOINT_URL).
	Endpoint string `json:"endpoint,omitempty"`
	// Every is how often shipping runs (and retries after an error).
	Every Duration `json:"every"`
	// ObjectLock puts S3 Object Lock on every object (mode COMPLIANCE or
	// GOVERNANCE, retained for retain from its upload).
	ObjectLock ObjectLockConfig `json:"objectLock"`
	// MaxBacklog is how long shipping may go without catching up before
	// the daemon is not ready.
	MaxBacklog Duration `json:"maxBacklog"`
}

// ObjectLockConfig is S3 Object Lock for shipped objects.
type ObjectLockConfig struct {
	Mode   string   `json:"mode"`
	Retain Duration `json:"retain"`
}

// RetentionConfig is how long each archive table keeps its days.
type RetentionConfig struct {
	Flows Duration `json:"flows"`
	Stats Duration `json:"stats"`
}

// QueueConfig sets what lies between a source and the archive writer.
type QueueConfig struct {
	// MaxBytes, when not 0, puts a queue between each source and the archive
	// writer and bounds the event bytes in flight in it; when it is reached
	// the source stops reading until the archive catches up. The source then
	// reads on while the archive commits (a slow disk's stalls absorbed up to
	// MaxBytes), at the cost of a thread wake-up per batch (12-25% more CPU
	// per flow at 20k flows/s, bench/README.md). 0 (the default): each
	// source writes its batches itself and pauses while the archive commits;
	// the exporter's file is the buffer.
	MaxBytes Size `json:"maxBytes"`
}

// ReadinessConfig sets when /readyz fails.
type ReadinessConfig struct {
	// MaxLag: not ready while the flows being archived are older than this
	// (the daemon is catching up or stuck).
	MaxLag Duration `json:"maxLag"`
}

// ShutdownConfig bounds the drain on SIGTERM.
type ShutdownConfig struct {
	DrainTimeout Duration `json:"drainTimeout"`
}

// VerifyConfig schedules the daemon's own verification of its recent files.
type VerifyConfig struct {
	// Interval between verifications of the last two days (0: never).
	Interval Duration `json:"interval"`
	// PublicKeyFile, when set, also checks the manifest signatures.
	PublicKeyFile string `json:"publicKeyFile"`
}

// Default returns the defaults, which the file, the environment and the
// flags override.
func Default() Config {
	return Config{
		Listen: ":9967", // Hubble's metrics server has 9965 on the host network
		Log:    LogConfig{Level: "info", Format: "json"},
		Archive: ArchiveConfig{
			MaxFileBytes:        1 << 30,
			MaxFileRows:         16 << 20,
			MaxFileAge:          Duration(5 * time.Minute),
			RowLog:              true,
			StatsInterval:       Duration(time.Minute),
			Compaction:          true,
			MaintenanceInterval: Duration(time.Hour),
			Upload:              UploadConfig{Every: Duration(time.Minute), MaxBacklog: Duration(time.Hour)},
		},
		Queue:     QueueConfig{MaxBytes: 0},
		Readiness: ReadinessConfig{MaxLag: Duration(5 * time.Minute)},
		Shutdown:  ShutdownConfig{DrainTimeout: Duration(20 * time.Second)},
		Verify:    VerifyConfig{Interval: Duration(24 * time.Hour)},
	}
}

// Load reads a YAML config file over the defaults. Unknown keys are errors
// (a misspelt key must not be silently ignored).
func Load(path string) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return parseConfig(cfg, path, data)
}

// parseConfig decodes a config file's data (named path) over cfg.
func parseConfig(cfg Config, path string, data []byte) (Config, error) {
	// Every unknown key and bad value at once, each with its key, before the
	// strict decoder, which stops at the first.
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	var tree any
	if err := json.Unmarshal(j, &tree); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	var errs []error
	checkTree("", tree, reflect.TypeFor[Config](), &errs)
	if len(errs) > 0 {
		return cfg, fmt.Errorf("config %s:\n%w", path, errors.Join(errs...))
	}
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// NodeName is the node as flows name it: "cluster/node", or the plain node
// when no cluster (or Cilium's "default") is configured.
func (c *Config) NodeName() string {
	if c.Cluster == "" || c.Cluster == "default" {
		return c.Node
	}
	return c.Cluster + "/" + c.Node
}

// Validate reports every problem at once, each with its key and value.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Node == "" {
		bad("node", "required (set $NODE_NAME from the downward API, or --node)")
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			bad("listen", "%q: %v", c.Listen, err)
		}
	}
	if c.DebugListen != "" {
		if err := loopbackAddr(c.DebugListen); err != nil {
			bad("debugListen", "%q: %v", c.DebugListen, err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		bad("log.format", "%q: want json or console", c.Log.Format)
	}
	if c.Archive.Dir == "" {
		bad("archive.dir", "required")
	}
	if c.Archive.MaxFileBytes <= 0 {
		bad("archive.maxFileBytes", "%d: must be > 0", c.Archive.MaxFileBytes)
	}
	if c.Archive.MaxFileRows <= 0 {
		bad("archive.maxFileRows", "%d: must be > 0", c.Archive.MaxFileRows)
	}
	if c.Archive.MaxFileAge <= 0 {
		bad("archive.maxFileAge", "%s: must be > 0", c.Archive.MaxFileAge)
	}
	if c.Archive.MaintenanceInterval < Duration(time.Second) {
		bad("archive.maintenanceInterval", "%s: must be at least 1s", c.Archive.MaintenanceInterval)
	}
	if c.Archive.StatsInterval <= 0 || time.Duration(c.Archive.StatsInterval) > time.Hour {
		bad("archive.statsInterval", "%s: must be > 0 and at most 1h", c.Archive.StatsInterval)
	}
	if c.Archive.SigningKeyFile != "" {
		if _, err := LoadSigningKey(c.Archive.SigningKeyFile); err != nil {
			bad("archive.signingKeyFile", "%v", err)
		}
	}
	if c.Verify.PublicKeyFile != "" {
		if _, err := LoadPublicKey(c.Verify.PublicKeyFile); err != nil {
			bad("verify.publicKeyFile", "%v", err)
		}
	}
	if c.Queue.MaxBytes != 0 && c.Queue.MaxBytes < 1<<20 {
		bad("queue.maxBytes", "%s: must be 0 (no queue) or at least 1Mi", c.Queue.MaxBytes)
	}
	if c.Readiness.MaxLag <= 0 {
		bad("readiness.maxLag", "%s: must be > 0", c.Readiness.MaxLag)
	}
	if c.Shutdown.DrainTimeout <= 0 {
		bad("shutdown.drainTimeout", "%s: must be > 0", c.Shutdown.DrainTimeout)
	}
	if r := c.Archive.Retention.Flows; r != 0 && r < Duration(48*time.Hour) {
		bad("archive.retention.flows", "%s: must be 0 (forever) or at least 2d", r)
	}
	if r := c.Archive.Retention.Stats; r != 0 && r < Duration(48*time.Hour) {
		bad("archive.retention.stats", "%s: must be 0 (forever) or at least 2d", r)
	}
	if u := c.Archive.Upload; u.To != "" {
		if _, err := objstore.ParseURL(u.To); err != nil {
			bad("archive.upload.to", "%v", err)
		}
		if u.Every < Duration(time.Second) {
			bad("archive.upload.every", "%s: must be at least 1s", u.Every)
		}
		if u.MaxBacklog < u.Every {
			bad("archive.upload.maxBacklog", "%s: must be at least archive.upload.every (%s)", u.MaxBacklog, u.Every)
		}
		switch m := u.ObjectLock.Mode; {
		case m == "" && u.ObjectLock.Retain != 0:
			bad("archive.upload.objectLock", "retain %s without a mode (COMPLIANCE or GOVERNANCE)", u.ObjectLock.Retain)
		case m != "" && m != "COMPLIANCE" && m != "GOVERNANCE":
			bad("archive.upload.objectLock.mode", "%q: want COMPLIANCE or GOVERNANCE", m)
		case m != "" && u.ObjectLock.Retain <= 0:
			bad("archive.upload.objectLock.retain", "%s: a mode needs a retention period > 0", u.ObjectLock.Retain)
		}
	}
	if c.Verify.Interval < 0 {
		bad("verify.interval", "%s: must be >= 0", c.Verify.Interval)
	}
	if len(c.Sources) == 0 {
		bad("sources", "at least one source is required (a file, synthetic, or ciliumConfigDir)")
	}
	names := map[string]int{}
	files := map[string]int{}
	for i, s := range c.Sources {
		key := fmt.Sprintf("sources[%d]", i)
		if s.origin != "" {
			key += " (" + s.origin + ")"
		}
		kinds := 0
		for _, set := range []bool{s.File != "", s.Address != "", s.Synthetic != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			bad(key, "exactly one of file, address or synthetic is required")
		}
		if s.Name != "" {
			if j, dup := names[s.Name]; dup {
				bad(key+".name", "%q: also used by sources[%d]", s.Name, j)
			}
			names[s.Name] = i
		}
		if s.File != "" {
			if j, dup := files[s.File]; dup {
				bad(key+".file", "%q: also followed by sources[%d]", s.File, j)
			}
			files[s.File] = i
			if !strings.HasPrefix(s.File, "/") {
				bad(key+".file", "%q: must be an absolute path", s.File)
			}
			// A path that does not exist yet is fine (the exporter creates
			// it); one that can never be the exporter's file is not: the
			// source would fail at every open, which looks like an archive
			// failure.
			if fi, err := os.Stat(s.File); err == nil && fi.IsDir() {
				bad(key+".file", "%q is a directory: want the exporter's file in it (hubble-export-file-path, e.g. %s)", s.File, filepath.Join(s.File, "events.log"))
			} else if errors.Is(err, syscall.ENOTDIR) {
				bad(key+".file", "%q: a parent of it is a file, not a directory", s.File)
			}
		}
		if s.Address != "" {
			if err := ingest.CheckGRPCAddress(s.Address, s.TLS != nil && s.TLS.CA != "", s.RelayNode); err != nil {
				bad(key+".address", "%v", err)
			}
		} else if s.TLS != nil || s.RelayNode != "" || s.PushDown {
			bad(key, "tls, relayNode and pushDown are for gRPC sources (address)")
		}
		if s.MaxBackups != nil && (*s.MaxBackups < 0 || s.File == "") {
			bad(key+".maxBackups", "%d: must be >= 0, for a file source", *s.MaxBackups)
		}
		if s.Synthetic != nil && (!(s.Synthetic.Rate > 0) || math.IsInf(s.Synthetic.Rate, 0)) { // NaN too
			bad(key+".synthetic.rate", "%g: must be a finite number > 0", s.Synthetic.Rate)
		}
		if _, err := pipeline.Compile(s.Spec()); err != nil {
			bad(key, "%v", err)
		}
	}
	return errors.Join(errs...)
}

// Spec is the source's filter and mask.
func (s SourceConfig) Spec() pipeline.Spec {
	return pipeline.Spec{Allowlist: s.Allowlist, Denylist: s.Denylist, FieldMask: fieldmask.ParsePaths(s.FieldMask)}
}

// Label is the source's name for logs: its name, else its file or kind.
func (s SourceConfig) Label() string {
	switch {
	case s.Name != "":
		return s.Name
	case s.File != "":
		return s.File
	case s.Synthetic != nil:
		return "synthetic"
	default:
		return s.Address
	}
}

// Redacted returns the config as YAML with secrets' contents never included
// (only key file paths are part of the config) and every default filled in.
func (c Config) Redacted() ([]byte, error) {
	return yaml.Marshal(c)
}

// Duration is a time.Duration written as "90s", "5m", "24h" or "400d".
type Duration time.Duration

// ParseDuration accepts Go durations plus a "d" (24h) unit.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want e.g. 30s, 5m, 24h, 400d)", s)
	}
	return Duration(d), nil
}

func (d Duration) String() string {
	td := time.Duration(d)
	if td != 0 && td%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	}
	return td.String()
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string (or a number of seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("invalid duration %s", b)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Set implements pflag.Value.
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Type implements pflag.Value.
func (d *Duration) Type() string { return "duration" }

// Size is a byte count written as a number or with a binary or decimal unit
// ("64Mi", "64MiB", "1G", "500k").
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"B", 1},
}

// ParseSize parses a byte count.
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (want e.g. 134217728, 128Mi, 1G)", s)
	}
	return Size(n * float64(mult)), nil
}

func (z Size) String() string {
	for _, u := range []struct {
		s string
		m int64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if z != 0 && int64(z)%u.m == 0 {
			return strconv.FormatInt(int64(z)/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(int64(z), 10)
}

// MarshalJSON writes the size as a string with a unit.
func (z Size) MarshalJSON() ([]byte, error) { return json.Marshal(z.String()) }

// UnmarshalJSON reads a number or a string with a unit.
func (z *Size) UnmarshalJSON(b []byte) error {
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		*z = Size(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("invalid size %s", b)
	}
	v, err := ParseSize(s)
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// Set implements pflag.Value.
func (z *Size) Set(s string) error {
	v, err := ParseSize(s)
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// Type implements pflag.Value.
func (z *Size) Type() string { return "size" }

// loopbackAddr accepts a host:port whose host is a loopback address or
// localhost: the profiler shows the daemon's memory, which holds flows.
func loopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("not a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT)")
	}
	return nil
}
