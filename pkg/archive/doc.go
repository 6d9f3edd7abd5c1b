// Package archive owns flowaudit's on-disk format: the Parquet flow and stats
// tables in Hive partitions, file rotation with atomic commits, the per-node
// manifests with their hash chain, and both directions: the Writer used by the
// daemon and by import, and the Scanner and RowReader used by report, serve
// and verify. No other package knows a path inside the archive or a column
// path inside its files.
package archive
