// Package report computes the monthly audit report from the archive (through
// the archive Scanner only) and renders it as Markdown, HTML, JSON or CSV.
// It is pure Go: DuckDB is the independent oracle in the tests, never a
// run-time dependency.
package report
