package main

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// frames writes each JSON document as the file exporter does with
// compression: zstd: a big-endian length, then the zstd frame.
func frames(t *testing.T, docs ...string) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var b bytes.Buffer
	for _, d := range docs {
		z := enc.EncodeAll([]byte(d), nil)
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(len(z)))
		b.Write(hdr[:])
		b.Write(z)
	}
	return b.Bytes()
}

const twoRecords = `{"resourceLogs":[{"resource":{},"scopeLogs":[{"scope":{},"logRecords":[` +
	`{"observedTimeUnixNano":"1","body":{"stringValue":"{\"flow\":{}}"},"attributes":[{"key":"flow","value":{"kvlistValue":{}}}]},` +
	`{"observedTimeUnixNano":"2","body":{"stringValue":"{}"}}]}]}]}`

func TestCount(t *testing.T) {
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	one := `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"observedTimeUnixNano":"3"}]}]}]}`
	c, err := count(dec, bytes.NewReader(frames(t, twoRecords, one, twoRecords)))
	if err != nil {
		t.Fatal(err)
	}
	if c.records != 5 || c.exports != 3 || c.jsonBytes != int64(2*len(twoRecords)+len(one)) {
		t.Fatalf("got %+v, want 5 records in 3 exports", c)
	}
	if c, err := count(dec, bytes.NewReader(nil)); err != nil || c.records != 0 {
		t.Fatalf("empty file: %+v, %v", c, err)
	}
}

func TestCountTruncated(t *testing.T) {
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	b := frames(t, twoRecords, twoRecords)
	c, err := count(dec, bytes.NewReader(b[:len(b)-3]))
	if err == nil || !strings.Contains(err.Error(), "frame of") {
		t.Fatalf("a file cut inside its last frame: got %v, want an error", err)
	}
	if c.records != 2 || c.exports != 1 {
		t.Fatalf("the complete frame before the cut: got %+v, want 2 records", c)
	}
}
