package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	observerpb "github.com/cilium/cilium/api/v1/observer"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/flow"
	"github.com/flowaudit/flowaudit/pkg/hubblejson"
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

// exporterJob is the compiled exporter: the same decisions and bytes as
// Cilium's exporter for one configuration.
type exporterJob struct {
	prog *filter.Program
	mask *fieldmask.Mask
	dec  *hubblejson.Decoder

	src, dst *flowpb.Flow
	buf      []byte

	read, kept, denied, bad uint64
}

func newExporterJob(o filterOpts) (*exporterJob, error) {
	allowS, denyS, maskPaths := o.allowlist, o.denylist, fieldmask.ParsePaths(o.fieldmask)
	var allow, deny []*flowpb.FlowFilter
	var err error
	if o.flowlogsConfig != "" {
		if o.allowlist != "" || o.denylist != "" || o.fieldmask != "" {
			return nil, errors.New("--flowlogs-config cannot be combined with --allowlist, --denylist or --fieldmask")
		}
		data, err := os.ReadFile(o.flowlogsConfig)
		if err != nil {
			return nil, err
		}
		entries, err := filter.ParseFlowLogs(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.flowlogsConfig, err)
		}
		var found *filter.FlowLogConfig
		for i := range entries {
			if entries[i].Name == o.name {
				found = &entries[i]
			}
		}
		if found == nil {
			return nil, fmt.Errorf("%s: no flowLogs entry named %q", o.flowlogsConfig, o.name)
		}
		allow, deny, maskPaths = found.IncludeFilters, found.ExcludeFilters, found.FieldMask
	} else {
		if o.name != "" {
			return nil, errors.New("--name needs --flowlogs-config")
		}
		if allow, err = filter.ParseFilters(allowS); err != nil {
			return nil, fmt.Errorf("--allowlist: %w", err)
		}
		if deny, err = filter.ParseFilters(denyS); err != nil {
			return nil, fmt.Errorf("--denylist: %w", err)
		}
	}
	prog, err := filter.Compile(allow, deny)
	if err != nil {
		return nil, err
	}
	mask, err := fieldmask.Compile(maskPaths)
	if err != nil {
		return nil, fmt.Errorf("fieldmask: %w", err)
	}
	return &exporterJob{
		prog: prog,
		mask: mask,
		dec:  hubblejson.NewDecoder(hubblejson.NewPlan(prog.Fields(), mask.Fields())),
		src:  &flowpb.Flow{},
		dst:  &flowpb.Flow{},
	}, nil
}

// line processes one input line and appends the exported line, if any, to
// j.buf. It returns the decode error, if any.
func (j *exporterJob) line(b []byte) error {
	j.read++
	kind, err := j.dec.Decode(b, j.src)
	if err != nil {
		j.bad++
		return err
	}
	if kind != flow.KindFlow {
		msg := j.dec.NonFlow()
		if msg == nil || !j.prog.MatchNonFlow(msg) {
			j.denied++
			return nil
		}
		j.kept++
		ev := &observerpb.ExportEvent{NodeName: j.dec.EnvelopeNodeName()}
		if t, ok := j.dec.EnvelopeTime(); ok {
			ev.Time = timestamppb.New(t)
		}
		switch m := msg.(type) {
		case *flowpb.LostEvent:
			ev.ResponseTypes = &observerpb.ExportEvent_LostEvents{LostEvents: m}
		case *flowpb.AgentEvent:
			ev.ResponseTypes = &observerpb.ExportEvent_AgentEvent{AgentEvent: m}
		case *flowpb.DebugEvent:
			ev.ResponseTypes = &observerpb.ExportEvent_DebugEvent{DebugEvent: m}
		default:
			// node_status exists only in Relay's stream; the exporter never writes it.
			j.kept--
			j.denied++
			return nil
		}
		if j.buf, err = hubblejson.AppendEventLine(j.buf, ev); err != nil {
			j.kept--
			j.bad++
			return err
		}
		return nil
	}
	if !j.prog.MatchFlow(j.src) {
		j.denied++
		return nil
	}
	if err := j.dec.Finish(j.src); err != nil {
		j.bad++
		return err
	}
	out := j.src
	if j.mask.Active() {
		j.mask.Copy(j.dst, j.src)
		out = j.dst
	}
	n := len(j.buf)
	if j.buf, err = hubblejson.AppendFlowLine(j.buf, out); err != nil {
		// Cilium's exporter writes nothing for an event it cannot marshal
		// (invalid UTF-8): neither do we, and we say so.
		j.buf = j.buf[:n]
		j.bad++
		return err
	}
	j.kept++
	return nil
}

func runFilter(cmd *cobra.Command, o filterOpts, args []string) error {
	job, err := newExporterJob(o)
	if err != nil {
		return err
	}
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
				job.read++
				job.bad++
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
			if err := job.line(b); err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", lr.where(), err)
			}
			if o.count {
				job.buf = job.buf[:0]
			} else if len(job.buf) >= 512<<10 {
				if _, err := bw.Write(job.buf); err != nil {
					return err
				}
				job.buf = job.buf[:0]
			}
		}
		lr.Close()
	}
	if o.count {
		fmt.Fprintf(bw, "read %d\nkept %d\ndenied %d\nerrors %d\n", job.read, job.kept, job.denied, job.bad)
	} else if _, err := bw.Write(job.buf); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if job.bad > 0 {
		return &exitError{code: 2, err: fmt.Errorf("%d of %d lines could not be parsed or encoded", job.bad, job.read)}
	}
	return nil
}
