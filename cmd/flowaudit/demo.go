package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newDemoCmd) }

// demoZones is the zones file of the demo's report, over the generator's
// namespaces (pkg/gen).
const demoZones = `# The kubelet (reserved:host) probes pods in every zone and on database
# ports: an approved source, as in any cluster.
zones:
  - name: ledger
    namespaces: [core-ledger]
    internal_only: true
    allowed_sources: {namespaces: [core-banking, payments], labels: ["reserved:host"]}
  - name: secrets
    namespaces: [vault]
    allowed_sources: {namespaces: [kube-system], labels: ["reserved:host"]}
privileged_sources:
  namespaces: [kube-system]
  labels: ["reserved:host"]
`

func newDemoCmd() *cobra.Command {
	var (
		dir  string
		rate float64
		seed int64
		days int
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Generate a month of traffic for 3 nodes, archive it, and write the monthly report",
		Long: `demo runs the whole job on a built-in default, with no cluster: it generates
January 2026 (UTC) of realistic Hubble traffic for a 3-node cluster into
events.log files rotated by lumberjack as Cilium's exporter does, with two
collector outages left out of them (node-02 for three and a half hours on
January 9, node-03 for 45 minutes on January 22), imports them into a Parquet
archive, writes the January report as HTML and Markdown, and prints where
everything is and a DuckDB query to try.

The report is checked against a zones file the demo writes (zones.yaml: an
internal-only zone, a zone with allowed sources, the sources approved for
privileged paths), a 99.9% coverage target and a 12-month retention minimum,
so that its findings hold, are violated (the outages; the generated pods
reach the internet and privileged ports from everywhere; a month of data is
not 12) and are not evaluated (no signing key).

Besides the traffic (--rate flows per second per node) each node's kubelet
probes its pods twice a minute, as in any cluster, so that every minute
outside the outages holds flows: an imported minute without any is, rightly,
reported as not collected. The default month is about half a million flows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !(rate > 0) || math.IsInf(rate, 0) {
				return fmt.Errorf("--rate %v: want a number of flows per second per node > 0", rate)
			}
			if days < 1 || days > 31 {
				return fmt.Errorf("--days %d: want 1 to 31 (January)", days)
			}
			if dir == "" {
				d, err := os.MkdirTemp("", "flowaudit-demo-")
				if err != nil {
					return err
				}
				dir = d
			}
			logs := filepath.Join(dir, "hubble")
			arch := filepath.Join(dir, "archive")
			if err := os.MkdirAll(logs, 0o755); err != nil {
				return err
			}
			zones := filepath.Join(dir, "zones.yaml")
			if err := os.WriteFile(zones, []byte(demoZones), 0o644); err != nil {
				return err
			}
			checks := []string{"--zones", zones, "--coverage-target", "99.9", "--retention-min", "12mo"}
			out := cmd.OutOrStdout()
			start := time.Now()
			steps := []struct {
				what string
				cmd  *cobra.Command
				args []string
			}{
				{"generate", newGenCmd(), []string{
					"--out", filepath.Join(logs, "events.log"), "--nodes", "3", "--rate", fmt.Sprint(rate),
					"--seed", fmt.Sprint(seed), "--start", "2026-01-01T00:00:00Z", "--duration", fmt.Sprintf("%dh", 24*days),
					"--max-size-mb", "10", "--max-backups", "0", "--probe-every", "30s",
					"--outage", "node-02,2026-01-09T14:00:00Z,2026-01-09T17:30:00Z",
					"--outage", "node-03,2026-01-22T02:00:00Z,2026-01-22T02:45:00Z",
				}},
				{"import", newImportCmd(), []string{"--archive", arch, "--progress", "never", logs}},
				{"report (html)", newReportCmd(), append([]string{"--month", "2026-01", "--archive", arch, "--format", "html", "--out", filepath.Join(dir, "report-2026-01.html")}, checks...)},
				{"report (md)", newReportCmd(), append([]string{"--month", "2026-01", "--archive", arch, "--format", "md", "--out", filepath.Join(dir, "report-2026-01.md")}, checks...)},
			}
			for _, s := range steps {
				t := time.Now()
				s.cmd.SetArgs(s.args)
				s.cmd.SetOut(out)
				s.cmd.SetErr(cmd.ErrOrStderr())
				s.cmd.SilenceUsage = true
				if err := s.cmd.ExecuteContext(cmd.Context()); err != nil {
					return fmt.Errorf("demo: %s: %w", s.what, err)
				}
				fmt.Fprintf(out, "demo: %s done in %s\n", s.what, time.Since(t).Round(time.Millisecond))
			}
			fmt.Fprintf(out, `
demo finished in %s
  events.log files: %s
  archive:          %s
  report:           %s
                    %s
Try DuckDB on the archive:
  duckdb -c "SELECT verdict, count(*) FROM read_parquet('%s/flows/**/*.parquet', hive_partitioning=true) GROUP BY verdict ORDER BY 2 DESC"
`, time.Since(start).Round(time.Millisecond), logs, arch,
				filepath.Join(dir, "report-2026-01.html"), filepath.Join(dir, "report-2026-01.md"), arch)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "working directory (default: a new temporary directory)")
	f.Float64Var(&rate, "rate", 0.03, "flows per second per node, besides the kubelet's health probes (two a minute per node)")
	f.Int64Var(&seed, "seed", 1, "generator seed")
	f.IntVar(&days, "days", 31, "generate the first this many days of January only (quicker; the report still covers the month, the rest as not collected)")
	return cmd
}
