// Package filter compiles Hubble FlowFilters (the JSON of hubble-export-allowlist /
// -denylist and the includeFilters / excludeFilters of a flowLogs entry) into a
// Program that answers keep/drop for an event with Cilium v1.18.4's semantics:
// OR within a field, AND across the fields of one filter, OR across filters,
// allow.MatchOne && deny.MatchNone. Everything that can be parsed at compile
// time is; evaluating a Program allocates nothing and takes no lock, so one
// Program may be shared by any number of goroutines.
package filter
