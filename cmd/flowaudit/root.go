package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flowaudit/flowaudit/internal/buildinfo"
)

// exitError carries a specific exit status for main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// subcommands are registered by each command's file in an init function, so
// that commands can be added without touching this file.
var subcommands []func() *cobra.Command

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "flowaudit",
		Short: "Archive Hubble flows as tamper-evident Parquet and report on them",
		Long: `flowaudit ingests Cilium Hubble flows (events.log or gRPC), applies Hubble's own
allow/deny filters and field masks, writes rotated Parquet partitions that DuckDB,
Trino, Spark and Athena read as they are, and produces the monthly audit report.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newVersionCmd())
	for _, newCmd := range subcommands {
		root.AddCommand(newCmd())
	}
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of flowaudit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "flowaudit %s (commit %s, %s)\n", buildinfo.Version, buildinfo.Commit, buildinfo.GoVersion())
			return err
		},
	}
}
