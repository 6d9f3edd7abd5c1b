package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	flowpb "github.com/cilium/cilium/api/v1/flow"

	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// Rotation is an exporter file's lumberjack settings, used to warn when the
// rotation leaves too little slack for a reader that falls behind.
type Rotation struct {
	MaxSizeMB  int // 0: lumberjack's 100
	MaxBackups int // 0: keep all
}

// SlackBytes is how many bytes the exporter keeps on disk (live file plus
// backups) before it deletes the oldest; 0 means unbounded.
func (r Rotation) SlackBytes() int64 {
	if r.MaxBackups == 0 {
		return 0
	}
	size := r.MaxSizeMB
	if size == 0 {
		size = 100
	}
	return int64(size) << 20 * int64(r.MaxBackups+1)
}

// CiliumSources reads a mounted cilium-config ConfigMap directory (one file
// per key) and returns the exporters it configures as sources, with their
// rotation settings keyed by file path: the static exporter
// (hubble-export-file-path with hubble-export-allowlist, -denylist and
// -fieldmask) and every entry of the dynamic exporter's flowlogs file
// (hubble-flowlogs-config-path); with neither, the agent's Hubble socket
// (hubble-socket-path) when enable-hubble is true. Problems are reported
// together.
func CiliumSources(dir string) ([]SourceConfig, map[string]Rotation, error) {
	get := func(key string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, key))
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("ciliumConfigDir: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, nil, fmt.Errorf("ciliumConfigDir %s: %w", dir, err)
	}
	var errs []error
	var out []SourceConfig
	rot := map[string]Rotation{}
	atoi := func(key string, def int) int {
		v, err := get(key)
		if err != nil {
			errs = append(errs, err)
			return def
		}
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("ciliumConfigDir %s: %s=%q: not an integer", dir, key, v))
			return def
		}
		return n
	}

	path, err := get("hubble-export-file-path")
	if err != nil {
		errs = append(errs, err)
	}
	if path != "" {
		s := SourceConfig{Name: "static", File: path, origin: "cilium-config hubble-export-file-path"}
		for _, kv := range []struct {
			key string
			dst *string
		}{{"hubble-export-allowlist", &s.Allowlist}, {"hubble-export-denylist", &s.Denylist}, {"hubble-export-fieldmask", &s.FieldMask}} {
			v, err := get(kv.key)
			if err != nil {
				errs = append(errs, err)
			}
			*kv.dst = v
		}
		if path == "stdout" {
			errs = append(errs, fmt.Errorf("ciliumConfigDir %s: hubble-export-file-path=stdout: the exporter writes to the agent's stdout, which flowaudit cannot follow; export to a file", dir))
		} else {
			out = append(out, s)
			rot[path] = Rotation{MaxSizeMB: atoi("hubble-export-file-max-size-mb", 10), MaxBackups: atoi("hubble-export-file-max-backups", ciliumDefaultMaxBackups)}
		}
	}

	flPath, err := get("hubble-flowlogs-config-path")
	if err != nil {
		errs = append(errs, err)
	}
	if flPath != "" {
		data, err := os.ReadFile(flPath)
		if err != nil {
			errs = append(errs, fmt.Errorf("ciliumConfigDir %s: hubble-flowlogs-config-path: %w (mount the flowlogs ConfigMap into flowaudit at the agent's path)", dir, err))
		} else {
			entries, err := filter.ParseFlowLogs(data)
			if err != nil {
				errs = append(errs, fmt.Errorf("ciliumConfigDir %s: %s: %w", dir, flPath, err))
			}
			for _, e := range entries {
				if e.FilePath == "stdout" {
					errs = append(errs, fmt.Errorf("%s: flowLogs %q: filePath stdout cannot be followed", flPath, e.Name))
					continue
				}
				allow, err1 := filtersString(e.IncludeFilters)
				deny, err2 := filtersString(e.ExcludeFilters)
				if err := errors.Join(err1, err2); err != nil {
					errs = append(errs, fmt.Errorf("%s: flowLogs %q: %w", flPath, e.Name, err))
					continue
				}
				out = append(out, SourceConfig{
					Name: "flowlogs:" + e.Name, File: e.FilePath,
					Allowlist: allow, Denylist: deny, FieldMask: strings.Join(e.FieldMask, ","),
					origin: fmt.Sprintf("%s flowLogs %q", flPath, e.Name),
				})
				rot[e.FilePath] = Rotation{MaxSizeMB: e.FileMaxSizeMB, MaxBackups: e.FileMaxBackups}
			}
		}
	}
	if len(out) == 0 && len(errs) == 0 {
		// No exporter: the agent's own gRPC socket, which the DaemonSet
		// mounts at the agent's path, when Hubble is on.
		enabled, err := get("enable-hubble")
		if err != nil {
			errs = append(errs, err)
		}
		sock, err := get("hubble-socket-path")
		if err != nil {
			errs = append(errs, err)
		}
		if sock == "" {
			sock = ciliumDefaultHubbleSocket
		}
		switch {
		case enabled == "true" && strings.HasPrefix(sock, "/"):
			out = append(out, SourceConfig{Name: "hubble-socket", Address: "unix://" + sock,
				origin: "cilium-config: no hubble-export-file-path, so the agent's hubble-socket-path"})
		case enabled == "true":
			errs = append(errs, fmt.Errorf("ciliumConfigDir %s: hubble-socket-path=%q: not an absolute path", dir, sock))
		default:
			errs = append(errs, fmt.Errorf("ciliumConfigDir %s: Hubble is off (enable-hubble is not true) and its exporter too (neither hubble-export-file-path nor hubble-flowlogs-config-path is set): there are no flows to read", dir))
		}
	}
	return out, rot, errors.Join(errs...)
}

// ciliumDefaultHubbleSocket is hubble-socket-path's default.
const ciliumDefaultHubbleSocket = "/var/run/cilium/hubble.sock"

// filtersString writes FlowFilters in the allowlist syntax (concatenated
// JSON objects), which pipeline.Compile parses back to the same filters:
// compact and the same for every build (the configuration hash is taken
// from it; protojson's own output has spaces inserted at random).
func filtersString(fs []*flowpb.FlowFilter) (string, error) {
	var b []byte
	for _, f := range fs {
		var err error
		if b, err = hubblejson.AppendJSON(b, f); err != nil {
			return "", err
		}
		b = append(b, '\n')
	}
	return string(b), nil
}
