// Package pipeline wires a source to the archive: it decodes raw event lines
// with the compiled plan, applies the filter Program and the field Mask in the
// source's goroutine, accounts for every event, and hands full batches over a
// bounded queue to the archive writer.
package pipeline
