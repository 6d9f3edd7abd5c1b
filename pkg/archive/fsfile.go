package archive

import (
	"io"
	"os"
)

// writableFile is what the archive writes through: an *os.File, or in tests
// one that fails the way a full disk does.
type writableFile interface {
	io.Writer
	Sync() error
	Close() error
}

// createFile opens path for writing, like os.OpenFile. Tests replace it to
// inject I/O errors (ENOSPC after a partial write).
var createFile = func(path string, flag int, perm os.FileMode) (writableFile, error) {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// beforeStep is called before each rename, removal, truncation and
// directory fsync of the commit protocol, with what it is about to do: the
// fault-injection tests fail it there as a crash would stop the writer.
var beforeStep = func(step, path string) error { return nil }

// fsyncDir fsyncs an open directory; the fault-injection tests, whose
// crashes are a process's and leave the page cache, skip it.
var fsyncDir = (*os.File).Sync
