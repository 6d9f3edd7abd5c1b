// Package hubblepb decodes the observer.GetFlowsResponse messages of
// Hubble's GetFlows stream (the agent's unix socket, Hubble Relay) from
// their wire format into reused *flowpb.Flow slots, decoding only the
// fields the filter and the field mask need: the gRPC source's hot path.
// It is the protobuf counterpart of pkg/hubblejson, with the same Plan
// semantics, and is generated from the protobuf descriptors of the Cilium
// version in go.mod (decode_gen.go, by internal/genpb; a test fails while
// it is stale).
//
// # Use
//
//	// Once per configuration: the fields the filter reads, with those every
//	// flow needs (the pipeline adds time and node_name to a filter that
//	// reads any: without one, Decode decodes the kept fields at once), and
//	// the fields the mask keeps.
//	plan := hubblepb.NewPlan(filterFields, mask.Fields())
//	d := hubblepb.NewDecoder(plan) // one per stream: not safe for concurrent use
//	d.SetArena(&batch.Arena)       // again whenever the batch changes
//	for each message's raw bytes msg:
//		slot := batch.Next()
//		kind, err := d.Decode(msg, slot)
//		switch {
//		case err != nil:                                // count a decode error; batch.Unnext()
//		case kind == flow.KindFlow && prog.MatchFlow(slot):
//			err = d.Finish(slot)                    // the kept fields; an error drops the flow
//		case kind == flow.KindFlow:                     // rejected: batch.Unnext()
//		default:                                        // d.NonFlow(): a lost event or node status; batch.Unnext()
//		}
//
// The gRPC source installs an encoding.Codec whose Unmarshal hands over the
// message's bytes: Decode, the filter and Finish must run before the codec
// returns them to gRPC (or on a copy), since Finish reads them again.
//
// # What a flow holds
//
// After Decode, the filter's fields (Plan); after Finish, the filter's and
// the kept fields: exactly what proto.Unmarshal into a fresh
// GetFlowsResponse gives for them, pruned to those fields as pkg/fieldmask
// prunes (a message on a selected path exists when the flow has it, and
// holds only the selected fields below). proto.Unmarshal's rules hold for
// every field decoded: the last value of a scalar wins, the occurrences of
// a message merge, a oneof member replaces another and merges with itself,
// a field in another wire type than its own is an unknown field, unknown
// enum numbers are kept, strings must be valid UTF-8, unknown fields
// (groups included) are skipped as protowire skips them; varints that
// overflow, truncated values, lengths past the end, invalid field numbers,
// stray end groups and groups nested past protowire's limit are errors.
// Unknown fields are not kept.
//
// A field the plan does not select is skipped by its length without being
// looked into (that is what makes a rejected flow cheap): invalid UTF-8 or
// a malformed nested message inside it is not found. The decision to accept
// a message is therefore proto.Unmarshal's for the message without the
// fields the plan skips; with flow.AllFields() it is proto.Unmarshal's.
//
// # Ownership and lifetimes
//
//   - msg: read by Decode, and again by Finish; it must not change until
//     Finish returns (or until the next Decode for a flow that is not
//     finished). The decoder keeps no reference to it that it reads after
//     that.
//   - The slot f: the caller's (a batch's). Decode and Finish overwrite it
//     whole, reusing its nested messages and lists; nested messages of a
//     field the next flow lacks go to the decoder's pools for later flows.
//     So a nested message must not be kept (or shared with another slot)
//     past the slot's next decode, and slots must not be modified in ways
//     that share nested messages between them.
//   - Strings: a field whose values repeat (namespaces, pod and node names,
//     labels, workloads, policies) holds an interned string, ordinary Go
//     memory that stays valid; the others (identifiers, addresses, URLs,
//     free text) and values longer than 256 bytes are copied into the
//     arena set with SetArena and are valid until its Reset (without an
//     arena, ordinary allocations). Whoever keeps a flow's strings past the
//     batch must copy them, whichever kind they are. Bytes (an Any's value)
//     follow the arena's rule too. Decoded strings and bytes must not be
//     modified.
//   - NonFlow's event and the envelope (EnvelopeNodeName, EnvelopeTime):
//     the decoder's, valid until the next Decode; their strings as a
//     flow's.
//
// Steady-state decoding allocates nothing: slots, pools, lists and arena
// chunks are reused, repeated values are interned, and the flow's
// endpoints, policies and node label lists, which repeat from flow to flow
// and hold most of its bytes and strings, are remembered by their bytes
// (memo.go) so that a message seen before costs a comparison and a copy.
// These tables are bounded: a few MiB per Decoder at most (the interned
// values, the memos' keys), whatever the stream holds.
package hubblepb
