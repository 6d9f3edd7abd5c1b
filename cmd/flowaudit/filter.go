package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/flowaudit/flowaudit/pkg/exporter"
	"github.com/flowaudit/flowaudit/pkg/fieldmask"
	"github.com/flowaudit/flowaudit/pkg/filter"
	"github.com/flowaudit/flowaudit/pkg/ingest"
)

func init() { subcommands = append(subcommands, newFilterCmd) }

type filterOpts struct {
	allowlist, denylist string
	fieldmask           string
	flowlogsConfig      string
	name                string
	count               bool
	out                 string
	parallel            int
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
skipped; the exit status is 2 when there were any. A file that cannot be read
to its end (a truncated or corrupt .gz, a read error, a file that cannot be
opened) is reported on stderr with the line and content byte where reading
failed; everything before that point and the files after it are filtered and
written in order, and the exit status is 3. On amd64 a line the filters
drop is read only as far as the fields they test; the rest is checked to look
complete (text, quotes and brackets balanced), not decoded, so a wrong value
after those fields is counted as denied, not as an error.`,
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
	f.IntVar(&o.parallel, "parallel", min(runtime.GOMAXPROCS(0), 4), "exporters working on consecutive chunks of lines; the output keeps the input's order")
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
	run := filterSequential
	if o.parallel > 1 {
		run = filterParallel
	}
	c, st, err := run(cfg, o, args, bw, cmd.ErrOrStderr())
	if err != nil {
		// What was filtered before the error is written all the same.
		return errors.Join(err, bw.Flush())
	}
	read, bad := c.Read+st.tooLong, c.Errors+st.tooLong
	if o.count {
		fmt.Fprintf(bw, "read %d\nkept %d\ndenied %d\nerrors %d\n", read, c.Kept, c.Denied, bad)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var badLines error
	if bad > 0 {
		badLines = fmt.Errorf("%d of %d lines could not be parsed or encoded", bad, read)
	}
	if n := len(st.damaged); n > 0 {
		return &exitError{code: exitDamaged, err: errors.Join(fmt.Errorf("%d input file(s) damaged, filtered up to the damage: %s", n, strings.Join(st.damaged, "; ")), badLines)}
	}
	if badLines != nil {
		return &exitError{code: 2, err: badLines}
	}
	return nil
}

// filterSequential exports the lines of args to bw with one exporter,
// reporting bad lines and damaged files on stderr; it returns the
// exporter's counts and what the reader skipped.
func filterSequential(cfg exporter.Config, o filterOpts, args []string, bw *bufio.Writer, stderr io.Writer) (exporter.Counts, readStats, error) {
	var st readStats
	exp, err := exporter.New(cfg)
	if err != nil {
		return exporter.Counts{}, st, err
	}
	var buf []byte
	err = eachLine(args, func(_ int, at lineAt, b []byte, skipped error) error {
		if skipped != nil {
			fmt.Fprintln(stderr, st.skip(at, skipped))
			return nil
		}
		var err error
		if buf, err = exp.Line(buf, b); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", at.where(), err)
		}
		if o.count {
			buf = buf[:0]
		} else if len(buf) >= 512<<10 {
			if _, err := bw.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		return nil
	})
	if err == nil {
		_, err = bw.Write(buf)
	}
	return exp.Counts(), st, err
}

// readStats are what the readers of filter skipped: over-long lines, and
// the files they could not read to their end.
type readStats struct {
	tooLong uint64
	damaged []string // "file:line: damaged: ..." per damaged file
}

// skip counts a line or file skipped by the reader and returns its message.
func (st *readStats) skip(at lineAt, skipped error) string {
	msg := at.where() + ": " + skipped.Error()
	if errors.Is(skipped, ingest.ErrLineTooLong) {
		st.tooLong++
	} else {
		st.damaged = append(st.damaged, msg)
	}
	return msg
}

// filterChunk is a run of consecutive lines of one file, exported by one
// worker; chunks are written out in the order they were read.
type filterChunk struct {
	data []byte // the lines, back to back
	ends []int  // where each line ends in data
	nums []int  // each line's number in its file
	file int    // the file's index in the arguments
	name string
	// Lines the reader skipped (over-long), by number, and what the worker
	// made of the others.
	skipped []lineErr
	out     []byte
	errs    []lineErr
	done    chan struct{}
}

type lineErr struct {
	num int
	msg string
}

// filterChunkBytes is the input a worker takes at a time.
const filterChunkBytes = 1 << 20

// filterParallel is runFilter's loop with o.parallel exporters: the reader
// cuts the input into chunks of lines, workers export them, and the writer
// writes each chunk's lines and errors in input order, so the output is the
// sequential one byte for byte. Memory is bounded by the chunks in flight
// (three per worker, each at most 1 MiB of input, or one longer line).
func filterParallel(cfg exporter.Config, o filterOpts, args []string, bw *bufio.Writer, stderr io.Writer) (exporter.Counts, readStats, error) {
	n := o.parallel
	work := make(chan *filterChunk, n)
	ordered := make(chan *filterChunk, 2*n)
	free := make(chan *filterChunk, 3*n)
	for range 3 * n {
		free <- &filterChunk{data: make([]byte, 0, filterChunkBytes), out: make([]byte, 0, filterChunkBytes), done: make(chan struct{}, 1)}
	}
	counts := make([]exporter.Counts, n)
	var workers sync.WaitGroup
	for i := range n {
		exp, err := exporter.New(cfg)
		if err != nil {
			return exporter.Counts{}, readStats{}, err
		}
		workers.Add(1)
		go func() {
			defer workers.Done()
			for ch := range work {
				start := 0
				for k, end := range ch.ends {
					var err error
					if ch.out, err = exp.Line(ch.out, ch.data[start:end]); err != nil {
						ch.errs = append(ch.errs, lineErr{ch.nums[k], err.Error()})
					}
					start = end
				}
				if o.count {
					ch.out = ch.out[:0]
				}
				ch.done <- struct{}{}
			}
			counts[i] = exp.Counts()
		}()
	}
	// The writer: chunks in order, each once its worker is done.
	var writeErr error
	written := make(chan struct{})
	go func() {
		defer close(written)
		for ch := range ordered {
			<-ch.done
			errs := append(ch.skipped, ch.errs...)
			slices.SortStableFunc(errs, func(a, b lineErr) int { return a.num - b.num })
			for _, e := range errs {
				if e.num == 0 {
					fmt.Fprintf(stderr, "%s: %s\n", ch.name, e.msg) // as lineAt.where
				} else {
					fmt.Fprintf(stderr, "%s:%d: %s\n", ch.name, e.num, e.msg)
				}
			}
			if writeErr == nil && len(ch.out) > 0 {
				_, writeErr = bw.Write(ch.out)
			}
			ch.data, ch.ends, ch.nums, ch.skipped, ch.out, ch.errs = ch.data[:0], ch.ends[:0], ch.nums[:0], ch.skipped[:0], ch.out[:0], ch.errs[:0]
			free <- ch
		}
	}()
	var st readStats
	var ch *filterChunk // being filled
	send := func() {
		if ch != nil && (len(ch.ends) > 0 || len(ch.skipped) > 0) {
			ordered <- ch
			work <- ch
			ch = nil
		}
	}
	// into makes ch a chunk of the file's lines: a chunk's lines are of one
	// file (their errors are reported by file and line number).
	into := func(file int, name string) {
		if ch != nil && ch.file != file {
			send()
		}
		if ch == nil {
			ch = <-free
		}
		ch.file, ch.name = file, name
	}
	readErr := eachLine(args, func(file int, at lineAt, b []byte, skipped error) error {
		into(file, at.name)
		if skipped != nil {
			st.skip(at, skipped)
			ch.skipped = append(ch.skipped, lineErr{at.line, skipped.Error()})
			return nil
		}
		if len(ch.data) > 0 && len(ch.data)+len(b) > filterChunkBytes {
			send()
			into(file, at.name)
		}
		ch.data = append(ch.data, b...)
		ch.ends = append(ch.ends, len(ch.data))
		ch.nums = append(ch.nums, at.line)
		return nil
	})
	send()
	close(work)
	close(ordered)
	workers.Wait()
	<-written
	var total exporter.Counts
	for _, c := range counts {
		total.Read += c.Read
		total.Kept += c.Kept
		total.Denied += c.Denied
		total.Errors += c.Errors
		total.NonFlow += c.NonFlow
	}
	if readErr != nil {
		return total, st, readErr
	}
	return total, st, writeErr
}
