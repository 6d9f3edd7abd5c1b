package archive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzVerifyPaths: an archive root holding directories and files of any
// name where partitions are expected (flows/<date>/<node>/<file>,
// manifests/<node>/<file>), with any manifest content: verify and the
// scanner never fail on a name, a Parquet file in no manifest is extra,
// and a node directory's name decodes to a node that encodes back to a
// safe directory name.
func FuzzVerifyPaths(f *testing.F) {
	f.Add("date=2026-01-01", "node=c%2Fn", "part-1-1-x.parquet", "node=c%2Fn", "date=2026-01-01.jsonl", []byte("{\"seq\":1}\n"))
	f.Add("date=2026-13-40", "node=%zz", "part-.parquet", "node=_", "date=x.jsonl", []byte("{"))
	f.Add("date=", "node=..", ".tmp-part-1.parquet", "node=%2E%2E", "date=2026-01-01.jsonl", []byte("\n\n"))
	f.Add("date=9999-12-31", "x", "part-9-9-9.parquet", "node=", "date=2026-01-01.jsonl", []byte(`{"path":"flows/date=2026-01-01/node=c/part-1.parquet","sha256":"00","rows":1,"index":1}`+"\n"))
	f.Fuzz(func(t *testing.T, date, node, file, mnode, mfile string, manifest []byte) {
		for _, s := range []string{date, node, file, mnode, mfile} {
			if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") || len(s) > 100 {
				return
			}
		}
		root := t.TempDir()
		data := filepath.Join(root, "flows", date, node, file)
		if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
			t.Skip(err)
		}
		if err := os.WriteFile(data, []byte("PAR1 not a parquet file PAR1"), 0o644); err != nil {
			t.Skip(err)
		}
		m := filepath.Join(root, "manifests", mnode, mfile)
		if err := os.MkdirAll(filepath.Dir(m), 0o755); err != nil {
			t.Skip(err)
		}
		if err := os.WriteFile(m, manifest, 0o644); err != nil {
			t.Skip(err)
		}
		rep, err := Verify(root, time.Time{}, time.Time{}, nil)
		if err != nil {
			return
		}
		if part, ok := strings.CutPrefix(mnode, "node="); ok {
			if s := SanitizeNode(UnsanitizeNode(part)); strings.ContainsAny(s, "/\\\x00") || s == "." || s == ".." {
				t.Fatalf("node directory %q decodes to a node whose directory is %q", mnode, s)
			}
		}
		_, inDate := strings.CutPrefix(date, "date=")
		_, inNode := strings.CutPrefix(node, "node=")
		if !inDate || !inNode || !strings.HasPrefix(file, "part-") || !strings.HasSuffix(file, ".parquet") || len(manifest) > 0 {
			return
		}
		for _, x := range rep.Findings {
			if x.Kind == "extra" && x.Path == filepath.ToSlash(filepath.Join("flows", date, node, file)) {
				return
			}
		}
		if partitionInRange(strings.TrimPrefix(date, "date="), time.Time{}, time.Time{}) {
			t.Fatalf("a data file in no manifest is not reported extra: %+v", rep.Findings)
		}
	})
}
