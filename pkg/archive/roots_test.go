package archive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExpandRoots(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"node-a/flows", "node-b/flows", "lost+found", "node-c"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	roots, err := ExpandRoots([]string{filepath.Join(base, "*"), filepath.Join(base, "node-a")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(base, "node-a"), filepath.Join(base, "node-b")}
	if strings.Join(roots, ",") != strings.Join(want, ",") {
		t.Errorf("roots %v, want %v (only archives, each once, sorted)", roots, want)
	}
	if _, err := ExpandRoots([]string{filepath.Join(base, "nothing-*")}); err == nil || !strings.Contains(err.Error(), "matches no archive") {
		t.Errorf("a pattern matching nothing: err %v", err)
	}
	if _, err := ExpandRoots(nil); err == nil {
		t.Error("no roots: no error")
	}
	if _, err := OpenScanner(filepath.Join(base, "node-c")); err == nil || !strings.Contains(err.Error(), "not an archive") {
		t.Errorf("OpenScanner of a non-archive: err %v", err)
	}
	// A plain directory is passed through as given: OpenScanner says what is wrong.
	roots, err = ExpandRoots([]string{filepath.Join(base, "node-c")})
	if err != nil || len(roots) != 1 {
		t.Errorf("plain dir: %v %v", roots, err)
	}
}

// TestExpandRootsTakesExistingDirectoriesLiterally: a root whose path holds
// glob characters ([ and ] are common in mount paths) is a root as it is,
// not a pattern matching nothing; one directory given by two paths is one
// root.
func TestExpandRootsTakesExistingDirectoriesLiterally(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "arch[1]")
	if err := os.MkdirAll(filepath.Join(dir, "flows"), 0o755); err != nil {
		t.Fatal(err)
	}
	roots, err := ExpandRoots([]string{dir})
	if err != nil || len(roots) != 1 || roots[0] != dir {
		t.Fatalf("ExpandRoots(%q) = %v, %v; want the directory itself", dir, roots, err)
	}
	roots, err = ExpandRoots([]string{dir, dir + "/.", filepath.Join(base, "arch*")})
	if err != nil || len(roots) != 1 {
		t.Errorf("one directory by three paths: roots %v, %v; want one", roots, err)
	}
}
