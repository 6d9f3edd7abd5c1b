// Package flow holds the few types that cross every stage boundary of the
// flowaudit pipeline: the Batch of reused *flowpb.Flow slots with its
// accounting (per-minute counts, losses) and source Checkpoint, and the
// FieldSet with which the filter and the field mask tell the decoder which
// fields it must decode. It depends on the standard library and Cilium's flow
// protobuf only, so every other package can import it.
//
// The canonical flow type is *flowpb.Flow from github.com/cilium/cilium/api/v1/flow;
// this package never defines a parallel struct for it.
package flow
