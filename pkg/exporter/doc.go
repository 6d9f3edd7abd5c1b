// Package exporter is Cilium's Hubble exporter, offline: for each events.log
// line it makes the same keep/drop decision as Cilium v1.18.4's exporter with
// the same allowlist, denylist and field mask, and appends the same bytes.
// `flowaudit filter` is a thin command around it (sequential, or one
// Exporter per worker on consecutive chunks of lines with --parallel).
//
// An Exporter is compiled once from a Config (filters as parsed by
// filter.ParseFilters or filter.ParseFlowLogs, mask paths as split by
// fieldmask.ParsePaths) and then fed one line at a time:
//
//	e, err := exporter.New(exporter.Config{Allow: allow, FieldMask: fieldmask.ParsePaths(mask)})
//	...
//	out, err = e.Line(out[:0], line) // out holds the exported line, or nothing
//
// Line runs the path the archive's pipeline runs up to the filter
// (hubblejson.Decoder.Decode, filter.Program.MatchFlow, Decoder.Finish for a
// kept flow), then the exporter's own steps: fieldmask.Mask.Copy (Cilium's
// masked view, not the archive's Prune) and hubblejson.AppendFlowLine. Lost,
// agent and debug events are kept or dropped by the filters' rules for
// events that are not flows and written whole (masks apply to flows only);
// node_status events are an error, as no exporter writes them. A line that cannot be decoded or encoded is an
// error and writes nothing, as in Cilium.
//
// What is decided, and how a bad line is counted, follows
// docs/architecture.md ("Decoding"): a kept line is checked whole, as
// protojson checks it; a line the filters drop is decoded up to the last
// member they read and only checked to look complete after it, so a wrong
// value past those members counts in Counts.Denied, not Counts.Errors
// (Cilium's exporter, decoding every line whole, counts it as an error and
// writes nothing either way).
//
// An Exporter is not safe for concurrent use (one per goroutine) and
// allocates nothing per line in steady state.
//
// The one deliberate difference from Cilium 1.18: a field mask that crosses
// members of a oneof (l4.TCP.x with l4.UDP.y) is applied correctly, as Cilium
// >= 1.19 does, not with 1.18's bug (docs/fieldmask.md).
package exporter
