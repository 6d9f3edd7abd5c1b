package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// FS is a read-only io/fs view of a location: directories are key prefixes,
// and an opened file reads byte ranges (io.ReaderAt) in blocks of
// blockSize, a few of them cached, so that a Parquet reader's footer and
// column chunk reads cost a request per block, not per read, and a file is
// never fetched whole unless it is read whole.
type FS struct {
	ctx context.Context
	c   *Client
	loc Location
}

// FS returns the view of loc; its requests use ctx.
func (c *Client) FS(ctx context.Context, loc Location) *FS { return &FS{ctx: ctx, c: c, loc: loc} }

// Location is the view's location.
func (f *FS) Location() Location { return f.loc }

var (
	_ fs.ReadDirFS = (*FS)(nil)
	_ fs.StatFS    = (*FS)(nil)
)

func (f *FS) rel(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return "", nil
	}
	return name, nil
}

// Open opens a file (an object) or a directory (a prefix with objects).
func (f *FS) Open(name string) (fs.File, error) {
	rel, err := f.rel("open", name)
	if err != nil {
		return nil, err
	}
	if rel != "" {
		info, err := f.c.Head(f.ctx, f.loc, rel)
		if err == nil {
			return &file{fs: f, rel: rel, info: fileInfo{name: path.Base(rel), size: info.Size, mod: info.ModTime}}, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	entries, err := f.ReadDir(name)
	if err != nil {
		return nil, err
	}
	return &dir{info: fileInfo{name: path.Base(name), dir: true}, entries: entries}, nil
}

// ReadDir lists a directory: the objects and prefixes one level below it,
// sorted by name. A prefix with nothing under it does not exist.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	rel, err := f.rel("readdir", name)
	if err != nil {
		return nil, err
	}
	var out []fs.DirEntry
	err = f.c.List(f.ctx, f.loc, rel, func(n string, isDir bool, size int64, mod time.Time) error {
		out = append(out, fileInfo{name: n, dir: isDir, size: size, mod: mod})
		return nil
	})
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	if len(out) == 0 && rel != "" {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// Stat returns a file's or directory's information.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return file.Stat()
}

// fileInfo is both fs.FileInfo and fs.DirEntry.
type fileInfo struct {
	name string
	dir  bool
	size int64
	mod  time.Time
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return i.size }
func (i fileInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i fileInfo) ModTime() time.Time         { return i.mod }
func (i fileInfo) IsDir() bool                { return i.dir }
func (i fileInfo) Sys() any                   { return nil }
func (i fileInfo) Type() fs.FileMode          { return i.Mode().Type() }
func (i fileInfo) Info() (fs.FileInfo, error) { return i, nil }

type dir struct {
	info    fileInfo
	entries []fs.DirEntry
	off     int
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}
func (d *dir) Close() error { return nil }
func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.off += len(rest)
	return rest, nil
}

// blockSize is the unit of a ranged read: a Parquet footer and a column
// chunk's pages are most often within one or two.
const blockSize = 1 << 20

// cachedBlocks is how many blocks a file keeps.
const cachedBlocks = 4

// file is an object opened for reading: io.Reader, io.ReaderAt, io.Seeker.
type file struct {
	fs   *FS
	rel  string
	info fileInfo
	off  int64

	mu     sync.Mutex
	blocks []block // most recently used last
}

type block struct {
	idx  int64
	data []byte
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *file) Close() error               { return nil }

// Size is the object's size.
func (f *file) Size() int64 { return f.info.size }

func (f *file) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *file) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.info.size
	default:
		return 0, fmt.Errorf("objstore: seek %s: bad whence %d", f.rel, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("objstore: seek %s: negative offset", f.rel)
	}
	f.off = offset
	return offset, nil
}

// ReadAt reads from the blocks that hold [off, off+len(p)), each fetched
// with one ranged request. Safe for concurrent use.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("objstore: read %s: negative offset", f.rel)
	}
	if off >= f.info.size {
		return 0, io.EOF
	}
	want := p
	if rest := f.info.size - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	n := 0
	for n < len(want) {
		pos := off + int64(n)
		b, err := f.block(pos / blockSize)
		if err != nil {
			return n, err
		}
		n += copy(want[n:], b[pos%blockSize:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *file) block(idx int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, b := range f.blocks {
		if b.idx == idx {
			f.blocks = append(append(f.blocks[:i:i], f.blocks[i+1:]...), b)
			return b.data, nil
		}
	}
	start := idx * blockSize
	size := min(int64(blockSize), f.info.size-start)
	// A new buffer each time: a concurrent ReadAt may still be copying from
	// the one it would replace.
	data := make([]byte, size)
	if len(f.blocks) >= cachedBlocks {
		f.blocks = f.blocks[1:]
	}
	n, err := f.fs.c.GetRange(f.fs.ctx, f.fs.loc, f.rel, data, start)
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) == size) {
		return nil, &fs.PathError{Op: "read", Path: f.rel, Err: err}
	}
	f.blocks = append(f.blocks, block{idx: idx, data: data[:n]})
	return data[:n], nil
}
