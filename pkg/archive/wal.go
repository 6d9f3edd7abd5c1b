package archive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	flowpb "github.com/cilium/cilium/api/v1/flow"
	"github.com/klauspost/compress/s2"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

// The row log (docs/format.md, "The row log"): with Config.Log, a batch's
// kept rows, accounting and checkpoint are appended to _wal/wal-<seq>.log
// as one checksummed record, fsynced when the source asks for a commit, and
// the Parquet files are cut only by age or size. Recovery replays the live
// log into new open files, so the rows of a file not yet cut survive a
// crash and the source resumes after the last record.

const (
	walDir    = "_wal"
	walMagic  = "FAWAL001" // the first 8 bytes of a log: format and version
	walPrefix = "wal-"
	walSuffix = ".log"
	// walMaxRecord bounds a record's payload: a larger length is a torn or
	// damaged header, not a record.
	walMaxRecord = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

//go:generate go run ./internal/walgen -o wal_gen.go

// walEncoder writes a flow as protobuf with the generated functions of
// wal_gen.go: proto.Size then MarshalAppend walked each flow twice through
// protobuf's reflection tables, a quarter of the daemon's CPU with the row
// log (bench/README.md, "Daemon"). The bytes are proto.Marshal's for the
// same flow (TestWalEncoderMatchesProto), without unknown fields, which no
// column keeps.
type walEncoder struct {
	bad string // the first string field that was not valid UTF-8
}

// badUTF8 records a string that proto.Unmarshal would refuse when the
// record is read: the record is not written (proto.Marshal fails alike).
func (e *walEncoder) badUTF8(field string) {
	if e.bad == "" {
		e.bad = field
	}
}

// appendFlow appends f's length (uvarint) and protobuf.
func (e *walEncoder) appendFlow(b []byte, f *flowpb.Flow) ([]byte, error) {
	b = append(b, 0)
	start := len(b)
	b = e.walAppendFlow(b, f)
	if e.bad != "" {
		field := e.bad
		e.bad = ""
		return b, fmt.Errorf("string field %s contains invalid UTF-8", field)
	}
	return walFixLen(b, start), nil
}

// walFixLen writes the length of b[start:] as the uvarint of one byte
// reserved before start, moving the bytes up when it needs more: a nested
// message is written once, its length known only after it, and most are
// shorter than 128 bytes.
func walFixLen(b []byte, start int) []byte {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	k := 1
	for v := n >> 7; v > 0; v >>= 7 {
		k++
	}
	b = slices.Grow(b, k-1)[:len(b)+k-1]
	copy(b[start+k-1:], b[start:start+n])
	binary.PutUvarint(b[start-1:], uint64(n))
	return b
}

func walAppendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return binary.AppendUvarint(b, v)
}

func walBool(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// rowLog is the live log of a writer with Config.Log.
type rowLog struct {
	name  string // file name in _wal
	path  string
	f     writableFile
	size  int64  // bytes written (header and complete records)
	dirty bool   // records written since the last fsync
	buf   []byte // the record being written
	raw   []byte // its payload before compression
	// broken is set by a failed write: the file may end in part of a
	// record, which only recovery (a new writer) cuts off.
	broken error
}

// walMeta is a record's accounting: everything of a batch but its flows.
type walMeta struct {
	Time       int64             `json:"t"`             // the writer's clock when the record was written (ns)
	ConfigHash string            `json:"cfg,omitempty"` // the configuration that filtered and masked the rows
	Checkpoint flow.Checkpoint   `json:"cp"`
	Stats      []flow.MinuteStat `json:"stats,omitempty"`
	Losses     []flow.Loss       `json:"losses,omitempty"`
	// Newest is the time of the record's newest flow (ns); 0 without one,
	// and in the records of versions before it: a reader of the log's
	// recent flows (LogFlows) skips the records it does not need.
	Newest int64 `json:"newest,omitempty"`
}

// encodeRecord returns the record of b, written at now, in out (raw is
// scratch space; both are reused): length (4 bytes, little endian) and
// CRC-32C (4 bytes) of the payload, then the payload, an S2 block of: the
// accounting as JSON (uvarint length first), the number of flows, and each
// flow as protobuf (uvarint length first). S2 takes a masked flow's ~150
// bytes of protobuf to a fraction at a small cost, and the bytes a commit
// fsyncs are what it waits for.
func encodeRecord(raw, out []byte, b *flow.Batch, now time.Time, configHash string) ([]byte, []byte, error) {
	buf := raw[:0]
	var newest int64
	for _, f := range b.Flows {
		newest = max(newest, flowTimeNs(f))
	}
	meta, err := json.Marshal(walMeta{Time: now.UnixNano(), Newest: newest, ConfigHash: configHash, Checkpoint: b.Checkpoint, Stats: b.Stats, Losses: b.Losses})
	if err != nil {
		return raw, out, fmt.Errorf("archive: log record: %w", err)
	}
	buf = binary.AppendUvarint(buf, uint64(len(meta)))
	buf = append(buf, meta...)
	buf = binary.AppendUvarint(buf, uint64(len(b.Flows)))
	var enc walEncoder
	for _, f := range b.Flows {
		if buf, err = enc.appendFlow(buf, f); err != nil {
			return buf, out, fmt.Errorf("archive: log record: %w", err)
		}
	}
	if len(buf) > walMaxRecord {
		return buf, out, fmt.Errorf("archive: log record: %d bytes, more than %d", len(buf), walMaxRecord)
	}
	n := 8 + s2.MaxEncodedLen(len(buf))
	out = slices.Grow(out[:0], n)[:n]
	payload := s2.Encode(out[8:], buf)
	binary.LittleEndian.PutUint32(out, uint32(len(payload)))
	binary.LittleEndian.PutUint32(out[4:], crc32.Checksum(payload, crcTable))
	return buf, out[:8+len(payload)], nil
}

// decodeRecord fills b (reset first) with the record payload z and returns
// when and under which configuration it was written; raw is scratch space
// for the decompressed payload (returned, reused).
func decodeRecord(z, raw []byte, b *flow.Batch) (walMeta, []byte, error) {
	b.Reset()
	p, err := decompressRecord(z, raw)
	if err != nil {
		return walMeta{}, raw, err
	}
	raw = p
	meta, p, err := decodeMeta(p)
	if err != nil {
		return walMeta{}, raw, err
	}
	if err := decodeFlows(p, b); err != nil {
		return walMeta{}, raw, err
	}
	b.Checkpoint, b.Stats, b.Losses = meta.Checkpoint, meta.Stats, meta.Losses
	return meta, raw, nil
}

// decodeMeta reads the accounting at the start of a decompressed payload
// and returns the rest: the flows.
func decodeMeta(p []byte) (walMeta, []byte, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return walMeta{}, nil, errors.New("bad accounting length")
	}
	var meta walMeta
	if err := json.Unmarshal(p[k:k+int(n)], &meta); err != nil {
		return walMeta{}, nil, fmt.Errorf("accounting: %w", err)
	}
	return meta, p[k+int(n):], nil
}

// decodeFlows appends the flows of a payload's rest (after the
// accounting) to b.
func decodeFlows(p []byte, b *flow.Batch) error {
	count, k := binary.Uvarint(p)
	if k <= 0 || count > uint64(len(p)) {
		return errors.New("bad flow count")
	}
	p = p[k:]
	for i := uint64(0); i < count; i++ {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return fmt.Errorf("flow %d: bad length", i)
		}
		f := b.Next()
		f.Reset()
		if err := proto.Unmarshal(p[k:k+int(n)], f); err != nil {
			return fmt.Errorf("flow %d: %w", i, err)
		}
		p = p[k+int(n):]
	}
	if len(p) != 0 {
		return fmt.Errorf("%d bytes after the last flow", len(p))
	}
	return nil
}

// decompressRecord decompresses the payload z into raw's space.
func decompressRecord(z, raw []byte) ([]byte, error) {
	n, err := s2.DecodedLen(z)
	if err != nil || n > walMaxRecord {
		return nil, fmt.Errorf("bad compressed payload (%d bytes decoded): %v", n, err)
	}
	p, err := s2.Decode(slices.Grow(raw[:0], n)[:n], z)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return p, nil
}

// scanLog calls fn with the payload of every complete record of the log
// content b, in order, and returns the length of the valid prefix: the
// header and the records before the first one that is cut short or fails
// its checksum (a torn tail).
func scanLog(b []byte, fn func(payload []byte) error) (int64, error) {
	return scanLogFrom(bytes.NewReader(b), int64(len(b)), fn)
}

// scanLogFrom is scanLog of a log of size bytes read from r, one record at
// a time: a log holds up to maxFileAge of a node's rows (hundreds of MB at
// tens of thousands of flows a second), and its readers (recovery, verify)
// hold one record, not the log. The payload fn is given is reused by the
// next record.
func scanLogFrom(r io.Reader, size int64, fn func(payload []byte) error) (int64, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var hdr [8]byte
	if size < int64(len(walMagic)) {
		return 0, errors.New("not a row log (bad header)")
	}
	if _, err := io.ReadFull(br, hdr[:len(walMagic)]); err != nil {
		return 0, fmt.Errorf("read header: %w", err)
	}
	if string(hdr[:len(walMagic)]) != walMagic {
		return 0, errors.New("not a row log (bad header)")
	}
	off := int64(len(walMagic))
	var p []byte
	for size-off >= 8 {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return off, fmt.Errorf("read at %d: %w", off, err)
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		sum := binary.LittleEndian.Uint32(hdr[4:])
		if n > walMaxRecord || int64(n) > size-off-8 {
			break
		}
		p = slices.Grow(p[:0], int(n))[:n]
		if _, err := io.ReadFull(br, p); err != nil {
			return off, fmt.Errorf("read at %d: %w", off+8, err)
		}
		if crc32.Checksum(p, crcTable) != sum {
			break
		}
		if err := fn(p); err != nil {
			return off, err
		}
		off += 8 + int64(n)
		if cap(p) > 4<<20 {
			p = nil // one huge record does not pin its buffer
		}
	}
	return off, nil
}

// scanLogFile is scanLog of the file at path; it returns the file's size
// (as it was opened: a live log may grow behind a reader) too.
func scanLogFile(path string, fn func(payload []byte) error) (size, valid int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	valid, err = scanLogFrom(f, fi.Size(), fn)
	return fi.Size(), valid, err
}

// logRecord appends b's record to the live log: one write, no fsync.
func (w *Writer) logRecord(b *flow.Batch, now time.Time) error {
	l := w.rlog
	if l.broken != nil {
		return fmt.Errorf("archive: log %s: an earlier write failed: %w", l.path, l.broken)
	}
	var err error
	if l.raw, l.buf, err = encodeRecord(l.raw, l.buf, b, now, w.cfg.ConfigHash); err != nil {
		return err
	}
	n, err := l.f.Write(l.buf)
	if err != nil {
		l.broken = err
		return fmt.Errorf("archive: log %s: %w", l.path, err)
	}
	l.size += int64(n)
	l.dirty = true
	if cap(l.buf) > 4<<20 || cap(l.raw) > 4<<20 {
		l.buf, l.raw = nil, nil // one huge batch does not pin its buffers
	}
	return nil
}

// syncLog makes every record written durable: the commit of a writer with
// a row log.
func (w *Writer) syncLog() error {
	l := w.rlog
	if !l.dirty {
		return nil
	}
	if l.broken != nil {
		return fmt.Errorf("archive: log %s: an earlier write failed: %w", l.path, l.broken)
	}
	start := time.Now()
	if err := l.f.Sync(); err != nil {
		l.broken = err
		return fmt.Errorf("archive: fsync %s: %w", l.path, err)
	}
	l.dirty = false
	w.commits.Add(1)
	w.committedNewest()
	w.m.logSyncSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// committedNewest moves the newest flow time of every source into the
// durable-flow gauge.
func (w *Writer) committedNewest() {
	for src, t := range w.newest {
		w.m.lastCommittedFlow.WithLabelValues(src).Set(float64(t) / 1e9)
	}
	clear(w.newest)
}

func walName(seq uint64) string { return fmt.Sprintf("%s%020d%s", walPrefix, seq, walSuffix) }

// newLog creates an empty log named after the commit seq it follows
// (header written and fsynced under a temporary name, then renamed, so a
// live log always has its header), and closes the one it replaces.
func (w *Writer) newLog(seq uint64) error {
	dir := filepath.Join(w.cfg.Root, walDir)
	name := walName(seq)
	path := filepath.Join(dir, name)
	tmp := filepath.Join(dir, tmpPrefix+name)
	if err := writeFileAtomicAs(tmp, path, []byte(walMagic)); err != nil {
		return err
	}
	return w.openLog(name, int64(len(walMagic)))
}

// openLog opens the log name of _wal, size bytes long, for appending.
func (w *Writer) openLog(name string, size int64) error {
	path := filepath.Join(w.cfg.Root, walDir, name)
	f, err := createFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("archive: log %s: %w", path, err)
	}
	old := w.rlog
	w.rlog = &rowLog{name: name, path: path, f: f, size: size}
	if old != nil {
		w.rlog.buf, w.rlog.raw = old.buf, old.raw
		_ = old.f.Close()
		if old.name != name {
			if err := beforeStep("remove", old.path); err != nil {
				return fmt.Errorf("archive: log %s: %w", old.path, err)
			}
			if err := os.Remove(old.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("archive: log %s: %w", old.path, err)
			}
			return syncDir(filepath.Dir(path))
		}
	}
	return nil
}

// closeLog closes the live log's file (its records stay for recovery).
func (w *Writer) closeLog() {
	if w.rlog != nil {
		_ = w.rlog.f.Close()
		w.rlog = nil
	}
}

// recoverLog finds the live log, cuts a torn tail off it and replays its
// records into new open files; it removes logs that a commit record says
// were cut (their rows are in committed files). cut is the set of log
// names the commit records name.
func (w *Writer) recoverLog(cut map[string]bool) error {
	dir := filepath.Join(w.cfg.Root, walDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); strings.HasPrefix(n, walPrefix) && strings.HasSuffix(n, walSuffix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	live := ""
	if n := len(names); n > 0 && !cut[names[n-1]] {
		live = names[n-1]
	}
	removed := false
	for _, n := range names {
		if n == live {
			continue
		}
		if err := beforeStep("remove", n); err != nil {
			return fmt.Errorf("archive: log %s: %w", n, err)
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("archive: log %s: %w", n, err)
		}
		removed = true
	}
	if removed {
		if err := syncDir(dir); err != nil {
			return err
		}
	}
	if live == "" {
		return w.newLog(w.seq)
	}
	path := filepath.Join(dir, live)
	size, valid, err := scanLogFile(path, func([]byte) error { return nil })
	if err != nil {
		return fmt.Errorf("archive: log %s: %w", path, err)
	}
	if torn := size - valid; torn > 0 {
		if err := beforeStep("truncate", path); err != nil {
			return fmt.Errorf("archive: log %s: cut torn tail: %w", path, err)
		}
		if err := os.Truncate(path, valid); err != nil {
			return fmt.Errorf("archive: log %s: cut torn tail: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("archive: log %s: %w", path, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("archive: log %s: cut torn tail: %w", path, err)
		}
		w.log.Warn("cut a torn record off the row log (a write a crash interrupted; its batch is read again)",
			zap.String("log", path), zap.Int64("bytes", torn))
	}
	if err := w.openLog(live, valid); err != nil {
		return err
	}
	// The rows are replayed under the configuration that filtered and
	// masked them: where it changes (a reload before the crash cut the
	// files; a restart with another configuration), the files are cut,
	// and the records after a cut during the replay are logged again in
	// the new log, which the cut started.
	configured := w.cfg.ConfigHash
	var b flow.Batch
	var raw []byte
	records := 0
	if _, _, err := scanLogFile(path, func(p []byte) error {
		var meta walMeta
		var err error
		meta, raw, err = decodeRecord(p, raw, &b)
		if err != nil {
			return fmt.Errorf("record %d: %w", records+1, err)
		}
		records++
		if meta.ConfigHash != w.cfg.ConfigHash {
			if err := w.Flush(); err != nil {
				return err
			}
			w.cfg.ConfigHash = meta.ConfigHash
		}
		t := time.Unix(0, meta.Time)
		if w.rlog.name != live {
			if err := w.logRecord(&b, t); err != nil {
				return err
			}
		}
		if w.opened.IsZero() || t.Before(w.opened) {
			w.opened = t
		}
		return w.add(&b)
	}); err != nil {
		return fmt.Errorf("archive: log %s: %w", path, err)
	}
	for src, cp := range w.last {
		w.committed[src] = cp
	}
	if records > 0 {
		w.log.Info("replayed the row log into the open files", zap.String("log", path), zap.Int("records", records), zap.Int("rows", w.rows))
	}
	if w.rlog.name != live {
		if err := w.syncLog(); err != nil {
			return err
		}
	}
	if w.cfg.ConfigHash != configured {
		if err := w.Flush(); err != nil {
			return err
		}
		w.cfg.ConfigHash = configured
	}
	return nil
}

// writeFileAtomicAs writes data to tmp, fsyncs it, renames it to path and
// fsyncs the directory.
func writeFileAtomicAs(tmp, path string, data []byte) error {
	f, err := createFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("archive: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("archive: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("archive: close %s: %w", tmp, err)
	}
	if err := beforeStep("rename", path); err != nil {
		return fmt.Errorf("archive: commit %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("archive: commit %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// LogStatus is what verify reports of a root's row log.
type LogStatus struct {
	Name    string `json:"name"`
	Records int    `json:"records"`
	Rows    int64  `json:"rows"`
	// TornBytes is the length of a torn tail (a write a crash cut short),
	// which the writer cuts off when it opens the archive.
	TornBytes int64 `json:"torn_bytes,omitempty"`
	// Cut says a commit record holds the log's rows: the writer removes
	// it when it opens the archive.
	Cut bool `json:"cut,omitempty"`
}

// readLogStatus reads the row logs of a local root (none: nil).
func readLogStatus(root string) ([]LogStatus, error) {
	dir := filepath.Join(root, walDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	recs, err := readCommitRecords(root)
	if err != nil {
		return nil, err
	}
	cut := map[string]bool{}
	for _, r := range recs {
		if r.Log != "" {
			cut[r.Log] = true
		}
	}
	var out []LogStatus
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, walPrefix) || !strings.HasSuffix(n, walSuffix) {
			continue
		}
		st := LogStatus{Name: walDir + "/" + n, Cut: cut[n]}
		var raw []byte
		size, valid, err := scanLogFile(filepath.Join(dir, n), func(z []byte) error {
			st.Records++
			p, err := decompressRecord(z, raw)
			if err != nil {
				return fmt.Errorf("record %d: %w", st.Records, err)
			}
			raw = p
			k, m := binary.Uvarint(p)
			if m <= 0 || k > uint64(len(p)-m) {
				return errors.New("bad accounting length")
			}
			rows, m2 := binary.Uvarint(p[m+int(k):])
			if m2 <= 0 {
				return errors.New("bad flow count")
			}
			st.Rows += int64(rows)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("archive: log %s: %w", n, err)
		}
		st.TornBytes = size - valid
		out = append(out, st)
	}
	return out, nil
}

// LogFlows calls fn with the flows of the row logs of a local root (the
// rows a writer has made durable but not yet cut into a closed file) from
// the time from (ns) on, and maybe some older ones, in the logs' order, a
// record at a time; a torn tail ends a log. A reader of the archive's
// recent flows (a gRPC source's resume, which must know what it archived
// before a crash) reads them here as well as in the files. A log a cut has
// committed but not yet removed repeats rows of the files. The flows of a
// record whose newest flow is older than from are not decoded: a resume
// needs the last minutes of a log that holds up to maxFileAge.
func LogFlows(root string, from int64, fn func(f *flowpb.Flow)) error {
	dir := filepath.Join(root, walDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("archive: %w", err)
	}
	var b flow.Batch
	var raw []byte
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, walPrefix) || !strings.HasSuffix(n, walSuffix) {
			continue
		}
		path := filepath.Join(dir, n)
		records := 0
		_, _, err := scanLogFile(path, func(z []byte) error {
			records++
			p, err := decompressRecord(z, raw)
			if err != nil {
				return fmt.Errorf("record %d: %w", records, err)
			}
			raw = p
			meta, p, err := decodeMeta(p)
			if err != nil {
				return fmt.Errorf("record %d: %w", records, err)
			}
			if meta.Newest != 0 && meta.Newest < from {
				return nil
			}
			b.Reset()
			if err := decodeFlows(p, &b); err != nil {
				return fmt.Errorf("record %d: %w", records, err)
			}
			for _, f := range b.Flows {
				fn(f)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // removed by a cut meanwhile
			return fmt.Errorf("archive: log %s: %w", path, err)
		}
	}
	return nil
}
