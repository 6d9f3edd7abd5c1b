package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

func init() { subcommands = append(subcommands, newDDLCmd) }

func newDDLCmd() *cobra.Command {
	var engine, location, database string
	cmd := &cobra.Command{
		Use:   "ddl --engine athena|trino --location s3://BUCKET/PREFIX",
		Short: "Print the CREATE TABLE statements of the archive's tables for Athena or Trino",
		Long: `ddl prints the statements that declare the archive's three tables (flows,
stats, losses) where flowaudit ship (or archive.upload) puts them, partitioned by
date and node as on disk. They are generated from the schemas flowaudit writes
(docs/format.md), so they match every column. For Athena, partition projection
finds the date partitions without a crawler (node is injected: query with
node = '...' or add the nodes to the projection); for Trino's Hive connector,
sync_partition_metadata registers them.`,
		Example: `  flowaudit ddl --engine athena --location s3://audit/prod-kr1 --database flowaudit
  flowaudit ddl --engine trino --location s3://audit/prod-kr1 --database flowaudit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ddl, err := archive.DDL(engine, location, database)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), ddl)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&engine, "engine", "athena", "athena or trino")
	f.StringVar(&location, "location", "", "where the archive is: s3://BUCKET/PREFIX (required)")
	f.StringVar(&database, "database", "", "database (schema) of the tables (default: the engine's)")
	_ = cmd.MarkFlagRequired("location")
	return cmd
}
