// Package compat holds flowaudit's differential tests against independent
// oracles: Cilium v1.18.4's own filter, field-mask and exporter code, and DuckDB
// reading the archive. It is a separate module so that these heavy dependencies
// never enter the main module's build; `make test` runs it all the same.
package compat
