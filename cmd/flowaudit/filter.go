package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/flowaudit/flowaudit/pkg/exporter"
	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
)

func init() { subcommands = append(subcommands, newFilterCmd) }

type filterOpts struct {
	allowlist, denylist string
	fieldmask           string
	flowlogsConfig      string
	name                string
	count               bool
	out                 string
}

func newFilterCmd() *cobra.Command {
	var o filterOpts
	cmd := &cobra.Command{
		Use:   "filter [FILE...]",
		Short: "Apply Hubble export filters and a field mask to events.log lines, offline",
		Long: `filter reads events.log lines (files, .gz files, or stdin when no file or "-" is
given) and writes the lines Cilium v1.18.4's exporter would have written with the
same hubble-export-allowlist, -denylist and -fieldmask, byte for byte. It answers
"what would this configuration keep from yesterday's log?" before anyone touches
cilium-config.

The filter syntax is Cilium's: concatenated JSON FlowFilter objects, e.g.
  --allowlist '{"verdict":["DROPPED","ERROR"]}' --denylist '{"source_pod":["kube-system/"]}'
The field mask is a comma- or space-separated list of Flow field paths.
Alternatively --flowlogs-config and --name take the fieldMask, includeFilters and
excludeFilters of one entry of the dynamic exporter's flowlogs.yaml.

Masks that cross members of a oneof (l4.TCP.x with l4.UDP.y) are applied
correctly, as Cilium >= 1.19 does, not with 1.18's bug (docs/fieldmask.md).

Lines that cannot be parsed are reported on stderr with file:line, counted, and
skipped; the exit status is 2 when there were any.`,
		Example: `  flowaudit filter --allowlist '{"verdict":["DROPPED"]}' /var/run/cilium/hubble/events.log
  flowaudit filter --fieldmask time,source,destination,verdict --count events-*.log.gz
  kubectl exec ds/cilium -- cat /var/run/cilium/hubble/events.log | flowaudit filter --denylist '{"source_pod":["kube-system/"]}'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFilter(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.allowlist, "allowlist", "", "hubble-export-allowlist: concatenated JSON FlowFilters")
	f.StringVar(&o.denylist, "denylist", "", "hubble-export-denylist: concatenated JSON FlowFilters")
	f.StringVar(&o.fieldmask, "fieldmask", "", "hubble-export-fieldmask: comma- or space-separated Flow paths")
	f.StringVar(&o.flowlogsConfig, "flowlogs-config", "", "dynamic exporter flowlogs.yaml to take filters and mask from (with --name)")
	f.StringVar(&o.name, "name", "", "name of the flowLogs entry in --flowlogs-config")
	f.BoolVar(&o.count, "count", false, "print only how many events would be kept and denied")
	f.StringVarP(&o.out, "output", "o", "-", "where to write the kept lines")
	return cmd
}

// exporterConfig builds the exporter configuration from the flags.
func exporterConfig(o filterOpts) (exporter.Config, error) {
	var cfg exporter.Config
	if o.flowlogsConfig != "" {
		if o.allowlist != "" || o.denylist != "" || o.fieldmask != "" {
			return cfg, errors.New("--flowlogs-config cannot be combined with --allowlist, --denylist or --fieldmask")
		}
		data, err := os.ReadFile(o.flowlogsConfig)
		if err != nil {
			return cfg, err
		}
		entries, err := filter.ParseFlowLogs(data)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", o.flowlogsConfig, err)
		}
		for i := range entries {
			if entries[i].Name == o.name {
				e := entries[i]
				return exporter.Config{Allow: e.IncludeFilters, Deny: e.ExcludeFilters, FieldMask: e.FieldMask}, nil
			}
		}
		return cfg, fmt.Errorf("%s: no flowLogs entry named %q", o.flowlogsConfig, o.name)
	}
	if o.name != "" {
		return cfg, errors.New("--name needs --flowlogs-config")
	}
	var err error
	if cfg.Allow, err = filter.ParseFilters(o.allowlist); err != nil {
		return cfg, fmt.Errorf("--allowlist: %w", err)
	}
	if cfg.Deny, err = filter.ParseFilters(o.denylist); err != nil {
		return cfg, fmt.Errorf("--denylist: %w", err)
	}
	cfg.FieldMask = fieldmask.ParsePaths(o.fieldmask)
	return cfg, nil
}

func runFilter(cmd *cobra.Command, o filterOpts, args []string) error {
	cfg, err := exporterConfig(o)
	if err != nil {
		return err
	}
	exp, err := exporter.New(cfg)
	if err != nil {
		return err
	}
	var buf []byte
	var tooLong uint64
	if len(args) == 0 {
		args = []string{"-"}
	}
	var w io.Writer = cmd.OutOrStdout()
	if o.out != "-" {
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	stderr := cmd.ErrOrStderr()
	for _, path := range args {
		lr, err := openLines(path)
		if err != nil {
			return err
		}
		for {
			b, err := lr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, errLineTooLong) {
				tooLong++
				fmt.Fprintf(stderr, "%s: %v\n", lr.where(), err)
				continue
			}
			if err != nil {
				lr.Close()
				return fmt.Errorf("%s: %w", lr.where(), err)
			}
			if len(b) == 0 {
				continue
			}
			if buf, err = exp.Line(buf, b); err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", lr.where(), err)
			}
			if o.count {
				buf = buf[:0]
			} else if len(buf) >= 512<<10 {
				if _, err := bw.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
		lr.Close()
	}
	c := exp.Counts()
	read, bad := c.Read+tooLong, c.Errors+tooLong
	if o.count {
		fmt.Fprintf(bw, "read %d\nkept %d\ndenied %d\nerrors %d\n", read, c.Kept, c.Denied, bad)
	} else if _, err := bw.Write(buf); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if bad > 0 {
		return &exitError{code: 2, err: fmt.Errorf("%d of %d lines could not be parsed or encoded", bad, read)}
	}
	return nil
}
