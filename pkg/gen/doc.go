// Package gen is flowaudit's realistic, deterministic Hubble event generator:
// a simulated cluster (nodes, namespaces, pods with real-looking labels,
// workloads, identities, services) producing L3/L4, DNS and HTTP flows with
// reply pairs, drops with policies, audit verdicts, world egress and the
// occasional lost_events / agent_event. It is the default input on a machine
// with no cluster and the input of the benchmarks and most tests.
package gen
