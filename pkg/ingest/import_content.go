package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// content is the decompressed content of one input file, read once from its
// start. It hashes every byte it hands out, lagging behind the reader of its
// lines so that the SHA-256 of the content up to any checkpoint the reader
// asks for (a line end) is still available: the hash of the whole prefix a
// checkpoint covers is what identifies an import's file (import_identity.go).
//
// The lag is bounded: a checkpoint is always a line end at or after the
// line reader's position and after the previous checkpoint, so the bytes up
// to the reader's position, and up to the first newline after the previous
// checkpoint, can be hashed at once; what is held unhashed is what the line
// reader holds, plus one line.
type content struct {
	path string
	f    *os.File
	size int64       // on disk, when opened
	disk *countingRd // the file's bytes read (compressed, for a .gz)
	br   *bufio.Reader
	gz   bool
	src  io.Reader // decompressed

	h      hash.Hash
	data   []byte // backing array of buf
	lo, hi int    // buf = data[lo:hi] = content[base : base+hi-lo], read from src, not yet hashed
	base   int64  // content offset of buf's first byte: the bytes hashed
	cur    int64  // consumer's position, base <= cur <= end()
	locked bool   // base is a line end that a checkpoint may still name: hash no further
	// floor, when set, is the line reader's position: no checkpoint is
	// asked for before it (blank lines advance it without a checkpoint).
	floor  func() int64
	lineAt int64 // content offset after the last '\n' hashed (a line end at or before base)
	lines  int64 // newlines hashed
	err    error // the error that ended src: io.EOF, or the damage
}

// countingRd counts the bytes read from a file.
type countingRd struct {
	r io.Reader
	n int64
}

func (c *countingRd) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// contentChunk is how much content is read from the file at a time while
// it is only hashed; maxContentRead bounds a read for the line reader.
const (
	contentChunk   = 256 << 10
	maxContentRead = 4 << 20
)

// openContent opens path and prepares to read its content (gunzipped when it
// starts with the gzip magic, whatever its name). Errors are the file's
// damage: it could not be opened, or its gzip header is bad.
func openContent(path string) (*content, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	c := &content{path: path, f: f, h: sha256.New()}
	if st, err := f.Stat(); err == nil {
		c.size = st.Size()
	}
	c.disk = &countingRd{r: f}
	c.br = bufio.NewReaderSize(c.disk, 64<<10)
	c.src = c.br
	magic, err := c.br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, err // a directory, an I/O error
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(c.br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("gzip: %w", err)
		}
		c.gz, c.src = true, zr
	}
	return c, nil
}

// close releases the file.
func (c *content) close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

// end is the content offset of the end of what was read from the file.
func (c *content) end() int64 { return c.base + int64(c.hi-c.lo) }

// damage is the error that ended the content early, or nil (the content
// ended cleanly, or has not ended yet).
func (c *content) damage() error {
	if c.err == nil || errors.Is(c.err, io.EOF) {
		return nil
	}
	return c.err
}

// diskUnread is how many bytes of the file on disk were not read (the
// compressed bytes after the damage, for a .gz).
func (c *content) diskUnread() int64 {
	read := c.disk.n - int64(c.br.Buffered())
	if c.size > read {
		return c.size - read
	}
	return 0
}

// fill reads more content, up to want bytes; false when there is none
// (c.err says why).
func (c *content) fill(want int) bool {
	if c.err != nil {
		return false
	}
	if c.hi+want > len(c.data) {
		if n := c.hi - c.lo; c.lo > 0 && n+want <= len(c.data) {
			copy(c.data, c.data[c.lo:c.hi])
			c.lo, c.hi = 0, n
		} else {
			grown := make([]byte, max(2*len(c.data), n+want))
			copy(grown, c.data[c.lo:c.hi])
			c.data, c.lo, c.hi = grown, 0, n
		}
	}
	n, err := c.src.Read(c.data[c.hi : c.hi+want])
	c.hi += n
	if err != nil {
		c.err = err
	}
	return n > 0 || err == nil
}

// hashTo hashes the content up to offset off (base <= off <= end()).
func (c *content) hashTo(off int64) {
	n := int(off - c.base)
	b := c.data[c.lo : c.lo+n]
	c.h.Write(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		c.lineAt = c.base + int64(i) + 1
		c.lines += int64(bytes.Count(b, []byte{'\n'}))
	}
	c.lo += n
	c.base = off
}

// sum is the hex SHA-256 of the content before base, its first 128 bits
// (a checkpoint is copied into every commit record: kept short).
func (c *content) sum() string {
	var b [sha256.Size]byte
	return hex.EncodeToString(c.h.Sum(b[:0])[:hashBytes])
}

// hashBytes is how much of a SHA-256 a checkpoint keeps: 128 bits, so that
// no two of the contents an archive will ever see share one.
const hashBytes = 16

// peek returns the content from the consumer's position on, at least n
// bytes of it unless the content ends first; it does not move.
func (c *content) peek(n int) []byte {
	for c.end()-c.cur < int64(n) && c.fill(contentChunk) {
	}
	return c.data[c.lo+int(c.cur-c.base) : c.hi]
}

// discardTo moves the consumer to content offset off (at or after its
// position), hashing everything before it; it reports false when the
// content ends (or is damaged) before off, and is then at the end of what
// could be read.
func (c *content) discardTo(off int64) bool {
	for c.end() < off {
		c.hashTo(c.end())
		if !c.fill(contentChunk) {
			break
		}
	}
	ok := c.end() >= off
	if !ok {
		off = c.end()
	}
	c.hashTo(off)
	c.cur, c.locked = off, false
	return ok
}

// Read hands out content from the consumer's position (the line reader):
// what is held, or as much as p takes read from the file at once (a plain
// file fills the line reader's buffer in one read).
func (c *content) Read(p []byte) (int, error) {
	if c.floor != nil {
		if f := c.floor(); f > c.base {
			c.hashTo(f)
			c.locked = true // f itself may still be named
		}
	}
	if c.cur == c.end() && !c.fill(min(max(len(p), contentChunk), maxContentRead)) {
		return 0, c.err
	}
	n := copy(p, c.data[c.lo+int(c.cur-c.base):c.hi])
	c.cur += int64(n)
	c.eager()
	return n, nil
}

// eager hashes what no checkpoint can name any more: the bytes handed out
// up to the first line end after base (the next checkpoint is at a line end
// after the previous one), or all of them while they hold no line end.
func (c *content) eager() {
	if c.locked {
		return
	}
	given := c.data[c.lo : c.lo+int(c.cur-c.base)]
	if i := bytes.IndexByte(given, '\n'); i >= 0 {
		c.hashTo(c.base + int64(i) + 1)
		c.locked = true
		return
	}
	c.hashTo(c.cur)
}

// checkpoint returns the hex SHA-256 of the content before off, a line end
// the consumer has read past, at or after the previous checkpoint's.
func (c *content) checkpoint(off int64) string {
	c.hashTo(off)
	s := c.sum()
	c.locked = false
	c.eager()
	return s
}
