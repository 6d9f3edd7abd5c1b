// Command otlpcount counts the log records in the files the OpenTelemetry
// Collector's file exporter writes with `format: json` and `compression: zstd`
// (bench/otelcol.sh): each export is a 4-byte big-endian length followed by
// one zstd frame of an OTLP/JSON ExportLogsServiceRequest.
//
//	otlpcount FILE...
//
// prints the records, the exports and the decompressed JSON bytes.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// recordKey opens every log record of OTLP/JSON exactly once: the exporter
// writes it for each record, and no Hubble field has that name, so counting
// it spares decoding gigabytes of JSON to count records.
var recordKey = []byte(`"observedTimeUnixNano"`)

type counts struct {
	records, exports, jsonBytes int64
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: otlpcount FILE...")
		os.Exit(2)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "otlpcount:", err)
		os.Exit(1)
	}
	defer dec.Close()
	var total counts
	for _, path := range os.Args[1:] {
		c, err := countFile(dec, path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "otlpcount:", err)
			os.Exit(1)
		}
		total.records += c.records
		total.exports += c.exports
		total.jsonBytes += c.jsonBytes
	}
	fmt.Printf("%d records %d exports %d json-bytes\n", total.records, total.exports, total.jsonBytes)
}

func countFile(dec *zstd.Decoder, path string) (counts, error) {
	f, err := os.Open(path)
	if err != nil {
		return counts{}, err
	}
	defer f.Close()
	c, err := count(dec, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return c, fmt.Errorf("%s: export %d: %w", path, c.exports+1, err)
	}
	return c, nil
}

// count reads length-prefixed zstd frames until EOF. A file that ends inside
// a frame (the collector killed mid-write) is an error.
func count(dec *zstd.Decoder, r io.Reader) (counts, error) {
	var c counts
	var hdr [4]byte
	var frame, out []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return c, nil
			}
			return c, fmt.Errorf("length: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if cap(frame) < int(n) {
			frame = make([]byte, n)
		}
		frame = frame[:n]
		if _, err := io.ReadFull(r, frame); err != nil {
			return c, fmt.Errorf("frame of %d bytes: %w", n, err)
		}
		var err error
		if out, err = dec.DecodeAll(frame, out[:0]); err != nil {
			return c, fmt.Errorf("zstd: %w", err)
		}
		c.exports++
		c.jsonBytes += int64(len(out))
		c.records += int64(bytes.Count(out, recordKey))
	}
}
