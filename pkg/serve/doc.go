// Package serve answers Hubble's observer.Observer gRPC API (GetFlows,
// ServerStatus, GetNodes, GetNamespaces) from a flowaudit archive, so that
// the hubble CLI, Hubble UI and other Hubble clients read the archive as
// they read a Cilium agent: flows in time order, Hubble's filters (the
// compiled pkg/filter program) and field masks (pkg/fieldmask), follow mode
// over newly committed files. It only reads the archive.
package serve
