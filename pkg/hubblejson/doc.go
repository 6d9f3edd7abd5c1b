// Package hubblejson reads and writes Hubble's JSON event lines (events.log,
// hubble observe -o json) without reflection: an encoder whose output is
// byte-identical to Cilium v1.18.4's exporter (protojson with proto names,
// compacted and HTML-escaped by encoding/json), and a decoder straight into a
// reused *flowpb.Flow that decodes only the fields a plan asks for.
package hubblejson
