package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/flowaudit/flowaudit/pkg/ingest"
)

// lineAt says where a line is: its file and number.
type lineAt struct {
	name string
	line int // 0: the file itself (it could not be opened)
}

// where is "file:line", or "file" before the first line.
func (a lineAt) where() string {
	if a.line == 0 {
		return a.name
	}
	return fmt.Sprintf("%s:%d", a.name, a.line)
}

// eachLine calls fn with every non-empty line of the files in args ("-" is
// stdin; gzip is recognised by its magic bytes), in order, with the file's
// index and where the line is, read by ingest.LineReader as the file source
// and import read them. A line over ingest.MaxLineBytes comes as a nil line
// and ingest.ErrLineTooLong, and a file that cannot be opened or read on as
// a nil line and an *ingest.InputDamage, after which the next file is read.
// An error from fn ends it.
func eachLine(args []string, fn func(file int, at lineAt, line []byte, skipped error) error) error {
	for i, path := range args {
		lr, err := ingest.OpenLines(path)
		if err != nil {
			if err := fn(i, lineAt{name: path}, nil, &ingest.InputDamage{Err: err}); err != nil {
				return err
			}
			continue
		}
		err = eachLineOf(i, lr, fn)
		lr.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// eachLineOf is eachLine for one file.
func eachLineOf(file int, lr *ingest.LineReader, fn func(file int, at lineAt, line []byte, skipped error) error) error {
	for {
		b, err := lr.Next()
		at := lineAt{name: lr.Name(), line: int(lr.Line())}
		switch {
		case err == nil:
			if len(b) > 0 {
				err = fn(file, at, b, nil)
			}
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, ingest.ErrLineTooLong):
			err = fn(file, at, nil, err)
		default: // *ingest.InputDamage: the file ends here
			return fn(file, at, nil, err)
		}
		if err != nil {
			return err
		}
	}
}
