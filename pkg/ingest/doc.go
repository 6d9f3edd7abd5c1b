// Package ingest owns the sources of Hubble events: the events.log file source
// (following lumberjack rotation, resuming from a committed checkpoint, and
// accounting for every gap) and, later, the gRPC sources. A source produces
// batches of raw event lines together with the Checkpoint after the last line;
// it never decodes, filters or writes.
package ingest
