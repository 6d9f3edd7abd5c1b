// Package hubblejson reads and writes Hubble's JSON event lines (events.log,
// hubble observe -o json).
//
// The decoder and encoder for flows are generated (codec_gen.go, from the
// flowpb descriptors of the Cilium version in go.mod, by internal/gendec):
// no reflection, no allocation per line in steady state.
//
//   - The decoder fills a reused *flowpb.Flow, reusing its nested messages and
//     list capacity, with strings in a flow.Arena. A Plan says which fields
//     to decode: the filter's fields first (Decode), the kept fields only for
//     flows the filter keeps (Finish); everything else is skipped at scanning
//     speed, still validated as strictly as protojson validates it. Decode
//     stops reading a line once it has the filter's fields: the rest is only
//     checked to look complete (balanced quotes and brackets, text, a final
//     '}'; rest.go, 32 bytes at a time), and Finish reads it whole (on
//     amd64; elsewhere, without vector code for the check, every line is
//     read whole). A line the
//     filter drops thus costs a few members and that check.
//   - The encoder writes exactly what Cilium v1.18.4's exporter writes
//     (protojson with proto names, compacted and HTML-escaped by
//     encoding/json's Encoder), byte for byte.
//
// Both handle the forms protojson itself writes and their common variations
// (camelCase names, enums by number, quoted integers, white space, escapes,
// null, unknown fields). Anything else (an Any in extensions, exponents,
// duplicate fields, offsets in timestamps, invalid input) is handed to
// protojson, so the result, and every error message, is protojson's: the
// fast path is never more lenient. Non-flow events (lost, agent, debug)
// always go through protojson; they are rare.
package hubblejson
