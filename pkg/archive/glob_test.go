package archive

import (
	"io/fs"
	"os"
	"sort"
	"testing"
	"time"
)

// TestTableGlobMatchesTheScanner: the glob the report hands DuckDB reads
// the same files as the scanner, and nothing the writer leaves beside them
// (its row log, temporary files, manifests).
func TestTableGlobMatchesTheScanner(t *testing.T) {
	root := t.TempDir()
	w, err := Open(Config{Root: root, Log: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i += 100 {
		b := batch(i, i+100)
		b.Commit = true
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = Open(Config{Root: root, Log: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := batch(300, 400)
	b.Commit = true
	if err := w.Write(b); err != nil { // rows in the log, not in a file
		t.Fatal(err)
	}
	defer crash(w)

	sc, err := OpenScanner(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"flows", "stats"} {
		files, err := sc.Files(table, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, f := range files {
			want = append(want, f.Path)
			if got := FileInfoAt(root, f.Path); got != f {
				t.Errorf("FileInfoAt(%s) = %+v, the scanner says %+v", f.Path, got, f)
			}
		}
		got, err := fs.Glob(os.DirFS(root), TableGlob(table))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(want)
		sort.Strings(got)
		if len(want) == 0 || len(got) != len(want) {
			t.Fatalf("%s: glob %q matched %v, the scanner reads %v", table, TableGlob(table), got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: glob %q matched %v, the scanner reads %v", table, TableGlob(table), got, want)
			}
		}
	}
}
