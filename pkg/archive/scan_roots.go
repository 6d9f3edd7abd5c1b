package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowaudit/flowaudit/pkg/objstore"
)

// checkArchive says why root is not an archive that can be read: it has no
// flows/ directory, or it cannot be read (a bucket refusing the
// credentials, an unreachable endpoint).
func checkArchive(root string) error {
	fsys, err := rootFS(root)
	if err != nil {
		return fmt.Errorf("archive: %s: %w", root, err)
	}
	st, err := fs.Stat(fsys, "flows")
	switch {
	case errors.Is(err, fs.ErrNotExist) || (err == nil && !st.IsDir()):
		return fmt.Errorf("archive: %s is not an archive (no flows/ directory)", root)
	case err != nil:
		return fmt.Errorf("archive: %s: %w", root, err)
	}
	return nil
}

// IsArchive reports whether dir is an archive root (it has a flows/
// directory; the writer creates it when it opens the archive).
func IsArchive(dir string) bool {
	fsys, err := rootFS(dir)
	if err != nil {
		return false
	}
	st, err := fs.Stat(fsys, "flows")
	return err == nil && st.IsDir()
}

// ExpandRoots turns the --archive arguments into archive roots: an
// existing directory as it is (even when its name holds glob characters,
// as mount paths with [ and ] do), a glob pattern (e.g. /archive/* for the
// per-node roots of a shared volume) into every archive root it matches,
// sorted, and anything else as it is (OpenScanner and Verify then say what
// is wrong). A pattern that matches no archive is an error, so that a typo
// cannot yield an empty report. A directory given twice, by the same or
// another path, is one root.
func ExpandRoots(args []string) ([]string, error) {
	var roots []string
	seen := map[string]bool{}
	var dirs []os.FileInfo
	add := func(r string) {
		if seen[r] {
			return
		}
		seen[r] = true
		if st, err := os.Stat(r); err == nil {
			for _, d := range dirs {
				if os.SameFile(d, st) {
					return
				}
			}
			dirs = append(dirs, st)
		}
		roots = append(roots, r)
	}
	for _, a := range args {
		if objstore.IsURL(a) {
			add(a) // a bucket location: no glob
			continue
		}
		if st, err := os.Stat(a); (err == nil && st.IsDir()) || !strings.ContainsAny(a, "*?[") {
			add(a)
			continue
		}
		matches, err := filepath.Glob(a)
		if err != nil {
			return nil, fmt.Errorf("archive: pattern %q: %w", a, err)
		}
		n := 0
		for _, m := range matches {
			if IsArchive(m) {
				add(m)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("archive: pattern %q matches no archive root (a directory with flows/)", a)
		}
	}
	if len(roots) == 0 {
		return nil, errors.New("archive: no archive root given")
	}
	return roots, nil
}
