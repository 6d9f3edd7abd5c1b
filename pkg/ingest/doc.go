// Package ingest owns the sources of Hubble events: the events.log file source
// (following lumberjack rotation, resuming from a committed checkpoint, and
// accounting for every gap), the import of events.log files, exactly once by
// content (ImportRegistry decides what a file adds to what is archived, by the
// SHA-256 of its prefixes: import_identity.go), and, later, the gRPC sources.
// A source produces batches of raw event lines together with the Checkpoint
// after the last line; it never decodes, filters or writes.
package ingest
