package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/flowaudit/flowaudit/pkg/hubblejson"
)

// lineReader reads newline-terminated lines from a file, a .gz file or stdin
// with bounded memory: a line over the decoder's limit
// (hubblejson.MaxLineBytes; Hubble's own `observe --input-file` stops at
// 64 KiB) is skipped to its end and reported.
type lineReader struct {
	name string
	r    *bufio.Reader
	c    io.Closer
	line int
	off  int64 // content bytes read (decompressed), lines and newlines
}

// openLines opens path ("-" is stdin); gzip input is recognised by its magic
// bytes, whatever the file name.
func openLines(path string) (*lineReader, error) {
	var f *os.File
	if path == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
	}
	br := bufio.NewReaderSize(f, hubblejson.MaxLineBytes)
	lr := &lineReader{name: path, r: br, c: f}
	if path == "-" {
		lr.name = "<stdin>"
		lr.c = io.NopCloser(nil)
	}
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		lr.r = bufio.NewReaderSize(zr, hubblejson.MaxLineBytes)
	}
	return lr, nil
}

var errLineTooLong = errors.New("line longer than 1 MiB skipped")

// damageError says that an input could not be read past a point (a
// truncated or corrupt gzip stream, a read error), or at all.
type damageError struct {
	off int64 // content byte where reading failed
	err error
}

func (e *damageError) Error() string {
	return fmt.Sprintf("damaged: %v at content byte %d; the rest of the file is not read", e.err, e.off)
}

func (e *damageError) Unwrap() error { return e.err }

// next returns the next line without its newline, valid until the next call.
// A final line without a newline is returned too (a file written to the end).
// A read error is a *damageError: the line it cut is dropped.
func (lr *lineReader) next() ([]byte, error) {
	lr.line++
	b, err := lr.r.ReadSlice('\n')
	lr.off += int64(len(b))
	switch {
	case err == nil:
		return bytes.TrimSuffix(b[:len(b)-1], []byte{'\r'}), nil
	case errors.Is(err, bufio.ErrBufferFull):
		// Over-long line: discard to its end with bounded memory.
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = lr.r.ReadSlice('\n')
			lr.off += int64(len(b))
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, &damageError{off: lr.off, err: err}
		}
		return nil, errLineTooLong
	case errors.Is(err, io.EOF) && len(b) > 0:
		return b, nil
	case errors.Is(err, io.EOF):
		return nil, err
	default:
		return nil, &damageError{off: lr.off, err: err}
	}
}

// where is "file:line", or "file" before the first line.
func (lr *lineReader) where() string {
	if lr.line == 0 {
		return lr.name
	}
	return fmt.Sprintf("%s:%d", lr.name, lr.line)
}

func (lr *lineReader) Close() error { return lr.c.Close() }
