// Package compat holds flowaudit's differential tests against independent
// oracles: Cilium v1.18.4's own filter, field-mask and exporter code, and DuckDB
// reading the archive. It is a separate module so that these heavy dependencies
// never enter the main module's build; `make test` runs it all the same.
//
// hubble-relay is a tool of this module (go.mod's tool directive): the gRPC
// tests build it from github.com/cilium/cilium@v1.18.4/hubble-relay with
// `go build`, so that its dependencies are those go.sum pins.
package compat
