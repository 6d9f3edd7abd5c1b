package archive

// A partition's open files: created as temporary files, written through a
// hash, named with their metadata.

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"
)

func (of *openFile) flushRows() error {
	if err := of.flows.writePending(); err != nil {
		return fmt.Errorf("archive: write %s: %w", of.tmp, err)
	}
	return nil
}

// hashingWriter hashes and counts what is written to the file.
type hashingWriter struct {
	w io.Writer
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// fileBufBytes buffers an open flows file's writes. A column chunk goes out
// whole (it is assembled in the leaf's pages), so the buffer only gathers
// the page indexes and the footer, and it stays small because an import or
// a Relay stream of many nodes' flows holds a file, and a buffer, per node
// (bench/README.md, "Archive": a 300-node import).
const fileBufBytes = 64 << 10

func (w *Writer) file(key partKey) (*openFile, error) {
	if of := w.files[key]; of != nil {
		return of, nil
	}
	of, err := w.createTmp(key)
	if err != nil {
		return nil, err
	}
	of.buf = bufio.NewWriterSize(of.hash, fileBufBytes)
	if of.flows, err = newFlowWriter(of.buf, w.cfg.RowGroupRows, w.cfg.pageLevel(), fileMetadata(key, w.cfg.CollectorVersion, w.cfg.ConfigHash)); err != nil {
		of.f.Close()
		os.Remove(of.tmp)
		return nil, fmt.Errorf("archive: write %s: %w", of.tmp, err)
	}
	w.files[key] = of
	w.m.openFiles.Set(float64(len(w.files)))
	return of, nil
}

// createTmp creates, under its temporary name, a new data file of the
// partition key, hashed as it is written.
func (w *Writer) createTmp(key partKey) (*openFile, error) {
	return w.createTmpSeq(key, w.seq+1)
}

// createTmpSeq is createTmp with the sequence number its name carries given
// (compaction creates its output without the writer's state).
func (w *Writer) createTmpSeq(key partKey, seq uint64) (*openFile, error) {
	dir := filepath.Join(w.cfg.Root, key.table, "date="+key.date, "node="+key.node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	tmp := filepath.Join(dir, fmt.Sprintf("%s%d-%s.parquet", tmpPrefix, seq, randHex(6)))
	f, err := createFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	return &openFile{key: key, tmp: tmp, f: f, hash: &hashingWriter{w: f, h: sha256.New()}}, nil
}

// statsOptions are parquet-go's options for a stats file (the flows table
// is flowWriter's) with the key-value metadata of the given collector and
// configuration, compressed at level. parquet-go sizes a required column's
// buffer to the page buffer size up front, and a row per node and minute
// needs little.
func (w *Writer) statsOptions(key partKey, level pageLevel, collectorVersion, configHash string) []parquet.WriterOption {
	opts := []parquet.WriterOption{
		parquet.Compression(pageCodecs[level]),
		parquet.MaxRowsPerRowGroup(int64(w.cfg.RowGroupRows)),
		parquet.PageBufferSize(64 << 10),
	}
	for _, kv := range fileMetadata(key, collectorVersion, configHash) {
		opts = append(opts, parquet.KeyValueMetadata(kv[0], kv[1]))
	}
	return opts
}

// fileMetadata is a file's key-value metadata (docs/format.md).
func fileMetadata(key partKey, collectorVersion, configHash string) [5][2]string {
	return [5][2]string{
		{"flowaudit.schema_version", SchemaVersion},
		{"flowaudit.collector_version", collectorVersion},
		{"flowaudit.config_hash", configHash},
		{"flowaudit.node", UnsanitizeNode(key.node)},
		{"flowaudit.table", key.table},
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
