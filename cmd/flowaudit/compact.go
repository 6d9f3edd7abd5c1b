package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowaudit/flowaudit/internal/buildinfo"
	"github.com/flowaudit/flowaudit/internal/daemon"
	"github.com/flowaudit/flowaudit/pkg/archive"
)

func init() { subcommands = append(subcommands, newCompactCmd) }

func newCompactCmd() *cobra.Command {
	var root, keyFile string
	var maxRows int
	cmd := &cobra.Command{
		Use:   "compact --archive DIR",
		Short: "Merge the small files of closed days (what the daemon does hourly)",
		Long: `compact merges, per table, UTC date and node, the files of days that ended more
than two hours ago into files of up to --max-rows rows, in time order, as the
daemon does every hour (archive.compaction). Every input is checked against its
manifest entry first; the output's manifest entry names the files it replaces,
which are then deleted, so verify keeps accounting for them. Use it on archives
that flowaudit import built, or where the daemon runs with compaction off. It
takes the archive's writer lock: it fails while a daemon or an import writes to
the same root.`,
		Example: `  flowaudit compact --archive /var/lib/flowaudit
  flowaudit compact --archive ./archive --signing-key /etc/flowaudit/sign.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxRows < 1 {
				// The archive takes 0 for its default: the flag would not
				// mean what it says.
				return fmt.Errorf("--max-rows %d: want at least 1", maxRows)
			}
			acfg := archive.DefaultConfig()
			acfg.Root = root
			acfg.CollectorVersion = buildinfo.Version
			acfg.CompactMaxRows = maxRows
			if keyFile != "" {
				key, err := daemon.LoadSigningKey(keyFile)
				if err != nil {
					return fmt.Errorf("--signing-key: %w", err)
				}
				acfg.SigningKey = key
			}
			w, err := archive.Open(acfg, newCLILogger(cmd.ErrOrStderr()), nil)
			if err != nil {
				return err
			}
			res, err := w.Compact(time.Now())
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			fmt.Fprintf(cmd.OutOrStdout(), "partitions %d, files merged %d, files written %d, rows %d\n", res.Partitions, res.Inputs, res.Outputs, res.Rows)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "archive", "", "archive root directory (required)")
	f.StringVar(&keyFile, "signing-key", "", "ed25519 private key file (PEM, or a raw/hex/base64 seed): sign the manifest entries, as the daemon's archive.signingKeyFile")
	f.IntVar(&maxRows, "max-rows", archive.DefaultConfig().MaxFileRows, "rows per compacted file at most")
	_ = cmd.MarkFlagRequired("archive")
	return cmd
}
