// Package fieldmask parses and applies Hubble field masks (the paths of
// hubble-export-fieldmask), with the exported JSON Cilium v1.18.4 produces,
// except that masks crossing members of a oneof are handled correctly (as in
// Cilium >= 1.19). A Mask is immutable after Compile and safe for concurrent use;
// applying it allocates nothing in steady state.
package fieldmask
