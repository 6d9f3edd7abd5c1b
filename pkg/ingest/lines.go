package ingest

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// LineReader reads the lines of one whole input (a file, a gzip file
// whatever its name, or stdin) through the splitter the file source and
// import read with, so that `flowaudit filter` cuts lines as the archive
// does: lines over MaxLineBytes skipped to their end with bounded memory
// and reported one by one (ErrLineTooLong), a '\r' before the newline
// trimmed, a last line without its newline returned as it is, and a read
// error (a truncated gzip stream, an I/O error) ending the input as an
// *InputDamage. The sources keep their own positions, holes and checkpoints
// on top of the same splitter.
type LineReader struct {
	name string
	in   io.Reader
	f    *os.File // closed by Close; nil for stdin
	sp   *splitter
	line int64
	off  int64 // content bytes read (decompressed)
	err  error // what ended the input (io.EOF, or the damage) once read
}

// ErrLineTooLong is a line over MaxLineBytes, skipped.
var ErrLineTooLong = errors.New("line longer than 1 MiB skipped")

// InputDamage is the read error that ended an input early: nothing after
// content byte Offset could be read.
type InputDamage struct {
	Offset int64
	Err    error
}

func (e *InputDamage) Error() string {
	return fmt.Sprintf("damaged: %v at content byte %d; the rest of the file is not read", e.Err, e.Offset)
}

func (e *InputDamage) Unwrap() error { return e.Err }

// OpenLines opens path for reading its lines ("-" is stdin, named
// "<stdin>"); gzip content is recognised by its magic bytes.
func OpenLines(path string) (*LineReader, error) {
	lr := &LineReader{name: path}
	if path == "-" {
		lr.name = "<stdin>"
		lr.in = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		lr.f, lr.in = f, f
	}
	br := bufio.NewReaderSize(lr.in, 64<<10)
	lr.in = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			lr.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		lr.in = zr
	}
	lr.sp = getSplitter(MaxLineBytes)
	return lr, nil
}

// newLineReader reads the lines of in, at most max bytes long.
func newLineReader(name string, in io.Reader, max int) *LineReader {
	return &LineReader{name: name, in: in, sp: getSplitter(max)}
}

// Next returns the next line without its newline (empty lines too), valid
// until the next call; io.EOF at the end. ErrLineTooLong and *InputDamage
// count as a line (Line names it); after a damage the input ends.
func (lr *LineReader) Next() ([]byte, error) {
	for {
		line, tooLong := lr.sp.next()
		if tooLong > 0 {
			lr.line++
			return nil, ErrLineTooLong
		}
		if line != nil {
			lr.line++
			return line, nil
		}
		if lr.err != nil {
			return lr.end()
		}
		n, err := lr.sp.fill(lr.in)
		lr.off += int64(n)
		if err != nil {
			lr.err = err
		}
	}
}

// end is Next once the input has ended: the last line if it has no
// newline, then io.EOF, or the damage that cut it.
func (lr *LineReader) end() ([]byte, error) {
	eof := errors.Is(lr.err, io.EOF)
	if eof && lr.sp.pending() == 0 {
		return nil, io.EOF
	}
	lr.line++
	skipping, rest := lr.sp.skipping, lr.sp.buf[lr.sp.start:lr.sp.end]
	lr.sp.reset()
	switch {
	case !eof:
		err := &InputDamage{Offset: lr.off, Err: lr.err}
		lr.err = io.EOF
		return nil, err
	case skipping:
		return nil, ErrLineTooLong
	}
	return rest, nil
}

// Name is the input's name: its path, or "<stdin>".
func (lr *LineReader) Name() string { return lr.name }

// Line is the number of the line Next last returned (1-based; 0 before
// the first).
func (lr *LineReader) Line() int64 { return lr.line }

// Close releases the file (not stdin) and the line buffer.
func (lr *LineReader) Close() error {
	if lr.sp != nil {
		putSplitter(lr.sp)
		lr.sp = nil
	}
	if lr.f == nil {
		return nil
	}
	return lr.f.Close()
}
