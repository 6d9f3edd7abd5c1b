// Package fieldmask parses and applies Hubble field masks (the paths of
// hubble-export-fieldmask), with the exported JSON Cilium v1.18.4 produces,
// except that masks crossing members of a oneof are handled correctly (as in
// Cilium >= 1.19). A Mask is immutable after Compile and safe for concurrent use;
// applying it allocates nothing in steady state.
package fieldmask

// DocsExample is the hubble-export-fieldmask of Cilium's documentation
// example, the mask flowaudit's benchmarks and tests use for "a typical
// mask".
const DocsExample = "time,source.namespace,source.pod_name,destination.namespace,destination.pod_name,l4,IP,node_name,is_reply,verdict,drop_reason_desc"
