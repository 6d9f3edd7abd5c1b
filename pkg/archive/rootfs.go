package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/flowaudit/flowaudit/pkg/objstore"
)

// The readers (Scanner, Verify) read an archive root through io/fs: a
// directory, or an s3:// location whose files they read by byte ranges
// (pkg/objstore), the same code either way. The writer writes local
// directories only.

var rootFSs sync.Map // root string -> fs.FS

// RootFS returns the file system of an archive root: a directory, or an
// s3:// location read through the AWS SDK's default credentials.
func RootFS(root string) (fs.FS, error) { return rootFS(root) }

func rootFS(root string) (fs.FS, error) {
	if v, ok := rootFSs.Load(root); ok {
		return v.(fs.FS), nil
	}
	var fsys fs.FS
	if objstore.IsURL(root) {
		loc, err := objstore.ParseURL(root)
		if err != nil {
			return nil, err
		}
		c, err := objstore.New(context.Background(), objstore.Options{})
		if err != nil {
			return nil, err
		}
		fsys = c.FS(context.Background(), loc)
	} else {
		fsys = os.DirFS(root)
	}
	v, _ := rootFSs.LoadOrStore(root, fsys)
	return v.(fs.FS), nil
}

// joinRoot joins an archive root and a path in it for messages.
func joinRoot(root, rel string) string {
	if objstore.IsURL(root) {
		return strings.TrimSuffix(root, "/") + "/" + rel
	}
	return path.Join(root, rel)
}

// dateDirsFS lists the date directories of dir (a table's) in fsys, in
// date order (see dateDirs).
func dateDirsFS(fsys fs.FS, dir string) ([]dateDir, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	out := make([]dateDir, 0, len(entries))
	for _, e := range entries {
		date, ok := strings.CutPrefix(e.Name(), "date=")
		if !ok || !e.IsDir() {
			continue
		}
		day, err := time.Parse("2006-01-02", date)
		if err != nil {
			continue
		}
		out = append(out, dateDir{name: e.Name(), date: date, day: day})
	}
	return out, nil
}

// nodeDirsFS lists the node=… directories of dir in fsys (see nodeDirs).
func nodeDirsFS(fsys fs.FS, dir string) (names, nodes []string, err error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if node, ok := strings.CutPrefix(e.Name(), "node="); ok && e.IsDir() {
			names, nodes = append(names, e.Name()), append(nodes, node)
		}
	}
	return names, nodes, nil
}

// manifestRel is a manifest file's path in its root.
func manifestRel(node, date string) string {
	return "manifests/node=" + SanitizeNode(node) + "/date=" + date + ".jsonl"
}

// nodeManifestFS reads all of a node's manifest entries, in chain order
// (see nodeManifest).
func nodeManifestFS(fsys fs.FS, node string) ([]ManifestEntry, error) {
	out, _, err := nodeManifestOrderFS(fsys, node)
	return out, err
}

// nodeManifestOrderFS is nodeManifestFS, and also returns the manifest
// files whose lines are not in append order: each file is only ever
// appended to, so an entry whose index is below the one before it in the
// same file was moved (the chain, sorted by index, is intact either way).
func nodeManifestOrderFS(fsys fs.FS, node string) ([]ManifestEntry, []Finding, error) {
	dir := path.Dir(manifestRel(node, "x"))
	ents, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var out []ManifestEntry
	var moved []Finding
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "date=") || !strings.HasSuffix(e.Name(), ".jsonl") {
			continue
		}
		rel := dir + "/" + e.Name()
		b, err := fs.ReadFile(fsys, rel)
		if err != nil {
			return nil, nil, err
		}
		es, err := parseManifest(rel, b)
		if err != nil {
			return nil, nil, err
		}
		for i := 1; i < len(es); i++ {
			if es[i].Index < es[i-1].Index {
				moved = append(moved, Finding{Kind: "chain", Path: rel, Node: node,
					What: fmt.Sprintf("line %d holds entry index %d after index %d: the manifest's lines were reordered", i+1, es[i].Index, es[i-1].Index)})
				break
			}
		}
		out = append(out, es...)
	}
	sortChain(out)
	return out, moved, nil
}

// replacedFilesFS returns the paths the compaction entries of the manifest
// at rel replaced. A manifest without compaction entries is not parsed.
func replacedFilesFS(fsys fs.FS, rel string) (map[string]bool, error) {
	b, err := fs.ReadFile(fsys, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("archive: manifest %s: %w", rel, err)
	}
	if !bytes.Contains(b, []byte(`"op":"compaction"`)) {
		return nil, nil
	}
	entries, err := parseManifest(rel, b)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, e := range entries {
		for _, r := range e.Replaces {
			out[r.Path] = true
		}
	}
	return out, nil
}

// openRootFile opens a data file of a root for random reads, with its size.
func openRootFile(root, rel string) (io.ReaderAt, int64, io.Closer, error) {
	fsys, err := rootFS(root)
	if err != nil {
		return nil, 0, nil, err
	}
	f, err := fsys.Open(rel)
	if err != nil {
		return nil, 0, nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		f.Close()
		return nil, 0, nil, fmt.Errorf("%s: no random access", joinRoot(root, rel))
	}
	return ra, info.Size(), f, nil
}

// openParquetAt opens a committed Parquet file of a root (without its page
// index and bloom filters); the caller closes c.
func openParquetAt(root, rel string) (c io.Closer, pf *parquet.File, err error) {
	ra, size, c, err := openRootFile(root, rel)
	if err != nil {
		return nil, nil, err
	}
	pf, err = parquet.OpenFile(ra, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, pf, nil
}
