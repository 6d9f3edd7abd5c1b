package filter

import (
	"errors"
	"fmt"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"sigs.k8s.io/yaml"
)

// FlowLogConfig is one entry of the dynamic exporter's flowlogs.yaml
// (pkg/hubble/exporter/config.go), with Cilium's defaults applied.
type FlowLogConfig struct {
	Name           string               `json:"name"`
	FilePath       string               `json:"filePath"`
	FieldMask      []string             `json:"fieldMask"`
	IncludeFilters []*flowpb.FlowFilter `json:"includeFilters"`
	ExcludeFilters []*flowpb.FlowFilter `json:"excludeFilters"`
	FileMaxSizeMB  int                  `json:"fileMaxSizeMb"`
	FileMaxBackups int                  `json:"fileMaxBackups"`
	FileCompress   bool                 `json:"fileCompress"`
	End            *time.Time           `json:"end"`
}

// Dynamic exporter defaults for 0/absent sizes (exporter.DefaultFileMaxSizeMB,
// DefaultFileMaxBackups).
const (
	defaultFileMaxSizeMB  = 10
	defaultFileMaxBackups = 5
)

// ParseFlowLogs parses a flowlogs.yaml as Cilium's dynamic exporter does
// (sigs.k8s.io/yaml.Unmarshal into the config struct): keys matched
// case-insensitively and unknown keys ignored, and FlowFilters decoded by
// encoding/json through the generated struct tags (snake_case keys, enums as
// numbers), exactly like Cilium's FlowFilters type, not through protojson.
// Then Cilium's validation: every entry needs a unique name and a unique
// filePath. The returned configs are owned by the caller.
func ParseFlowLogs(data []byte) ([]FlowLogConfig, error) {
	var doc struct {
		FlowLogs []*FlowLogConfig `json:"flowLogs"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("flowlogs: %w", err)
	}
	names, paths := map[string]bool{}, map[string]bool{}
	var errs []error
	out := make([]FlowLogConfig, 0, len(doc.FlowLogs))
	for i, c := range doc.FlowLogs {
		if c == nil {
			errs = append(errs, fmt.Errorf("flowLogs[%d]: invalid nil flowlog config", i))
			continue
		}
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("flowLogs[%d]: name is required", i))
		case names[c.Name]:
			errs = append(errs, fmt.Errorf("flowLogs[%d]: duplicated flowlog name %s", i, c.Name))
		}
		switch {
		case c.FilePath == "":
			errs = append(errs, fmt.Errorf("flowLogs[%d]: filePath is required", i))
		case paths[c.FilePath]:
			errs = append(errs, fmt.Errorf("flowLogs[%d]: duplicated flowlog path %s", i, c.FilePath))
		}
		names[c.Name], paths[c.FilePath] = true, true
		if c.FileMaxSizeMB == 0 {
			c.FileMaxSizeMB = defaultFileMaxSizeMB
		}
		if c.FileMaxBackups == 0 {
			c.FileMaxBackups = defaultFileMaxBackups
		}
		out = append(out, *c)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("flowlogs: %w", errors.Join(errs...))
	}
	return out, nil
}
