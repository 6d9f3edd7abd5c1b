package chaos_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

type finding struct {
	Kind, Path, Node, What string
}

type verifyJSON struct {
	Files    int       `json:"files_checked"`
	KeyIDs   []string  `json:"key_ids"`
	Findings []finding `json:"findings"`
}

// TestTampering: a signed archive, then one tampering per copy of it: a
// flipped byte in a Parquet file, a deleted file, an extra file, a
// truncated manifest (cut mid-line, and cut at a line end), reordered
// manifest lines, and the archive rewritten and re-signed with another key.
// `flowaudit verify --public-key` names each (kind and file) and exits 2;
// the month report's integrity section carries the same findings (the
// report checks no signature: a re-signed archive shows there as another
// key id, which the auditor compares with the published one).
func TestTampering(t *testing.T) {
	bin, rng, seed := setup(t)
	dir := t.TempDir()
	events := filepath.Join(dir, "events.log")
	out, err := exec.Command(bin, "gen", "--count", "30000", "--nodes", "2", "--rate", "2", "--start", "2026-11-03T00:00:00Z",
		"--seed", strconv.FormatUint(seed%1e6, 10)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(events, out, 0o644); err != nil {
		t.Fatal(err)
	}
	key, other := filepath.Join(dir, "sign.key"), filepath.Join(dir, "other.key")
	for _, k := range []string{key, other} {
		if out, code := flowaudit(t, bin, "keygen", "--out", k); code != 0 {
			t.Fatalf("keygen: %s", out)
		}
	}
	pristine := filepath.Join(dir, "pristine")
	resigned := filepath.Join(dir, "resigned")
	for _, a := range []struct{ root, key string }{{pristine, key}, {resigned, other}} {
		if out, code := flowaudit(t, bin, "import", "--archive", a.root, "--signing-key", a.key, "--progress", "never", events); code != 0 {
			t.Fatalf("import: exit %d\n%s", code, out)
		}
	}
	verify := func(root string) (verifyJSON, int) {
		t.Helper()
		out, code := flowaudit(t, bin, "verify", "--archive", root, "--public-key", key+".pub", "--format", "json")
		var v verifyJSON
		if err := json.Unmarshal([]byte(out[strings.IndexByte(out, '{'):strings.LastIndexByte(out, '}')+1]), &v); err != nil {
			t.Fatalf("verify output: %v\n%s", err, out)
		}
		return v, code
	}
	reportIntegrity := func(root string) verifyJSON {
		t.Helper()
		out, err := exec.Command(bin, "report", "--month", "2026-11", "--archive", root, "--format", "json").Output()
		if err != nil {
			t.Fatalf("report: %v", err)
		}
		var r struct {
			Integrity verifyJSON `json:"integrity"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		return r.Integrity
	}
	if v, code := verify(pristine); code != 0 || len(v.Findings) != 0 || v.Files == 0 {
		t.Fatalf("the pristine archive: exit %d, %+v", code, v)
	}
	pristineKeys := reportIntegrity(pristine).KeyIDs

	var parquets, manifests []string
	_ = filepath.WalkDir(pristine, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(pristine, p)
		switch {
		case strings.HasSuffix(p, ".parquet") && strings.HasPrefix(rel, "flows"+string(filepath.Separator)):
			parquets = append(parquets, rel)
		case strings.HasSuffix(p, ".jsonl"):
			manifests = append(manifests, rel)
		}
		return nil
	})
	if len(parquets) == 0 || len(manifests) == 0 {
		t.Fatalf("files %v, manifests %v", parquets, manifests)
	}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	// manifestLines returns the lines of a manifest, each with its newline.
	manifestLines := func(root, rel string) [][]byte {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitAfter(b, []byte("\n"))
		if len(lines[len(lines)-1]) == 0 {
			lines = lines[:len(lines)-1]
		}
		return lines
	}
	// The manifest with the most entries, so that reordering and cutting
	// have lines to work on.
	manifest := manifests[0]
	for _, m := range manifests {
		if len(manifestLines(pristine, m)) > len(manifestLines(pristine, manifest)) {
			manifest = m
		}
	}
	if len(manifestLines(pristine, manifest)) < 3 {
		t.Fatalf("manifest %s has fewer than 3 entries", manifest)
	}

	// lastEntryFile is the file the last entry of the manifest commits.
	lastEntryFile := func(root string) string {
		lines := manifestLines(root, manifest)
		var e struct {
			Path string `json:"path"`
		}
		if err := json.Unmarshal(lines[len(lines)-1], &e); err != nil || e.Path == "" {
			t.Fatalf("the last entry of %s: %v", manifest, err)
		}
		return e.Path
	}
	cases := []struct {
		name   string
		tamper func(root string) string // returns the file the finding must name
		kinds  []string                 // acceptable finding kinds
	}{
		{"flipped byte", func(root string) string {
			rel := pick(parquets)
			p := filepath.Join(root, rel)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			i := rng.IntN(len(b))
			b[i] ^= 1 << rng.IntN(8)
			t.Logf("flipped byte %d of %s", i, rel)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return rel
		}, []string{"modified"}},
		{"deleted file", func(root string) string {
			rel := pick(parquets)
			if err := os.Remove(filepath.Join(root, rel)); err != nil {
				t.Fatal(err)
			}
			return rel
		}, []string{"missing"}},
		{"extra file", func(root string) string {
			rel := pick(parquets)
			extra := filepath.Join(filepath.Dir(rel), "part-1-1-injected.parquet")
			b, err := os.ReadFile(filepath.Join(root, rel))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, extra), b, 0o644); err != nil {
				t.Fatal(err)
			}
			return extra
		}, []string{"extra"}},
		// A manifest's last line cut short is what a crash during an
		// append leaves: verify reads the entries before it, and the file
		// the cut entry committed is in no manifest.
		{"manifest cut mid-line", func(root string) string {
			file := lastEntryFile(root)
			p := filepath.Join(root, manifest)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			lines := manifestLines(root, manifest)
			cut := st.Size() - int64(len(lines[len(lines)-1])/2)
			if err := os.Truncate(p, cut); err != nil {
				t.Fatal(err)
			}
			return file
		}, []string{"extra"}},
		{"manifest cut at a line end", func(root string) string {
			file := lastEntryFile(root)
			lines := manifestLines(root, manifest)
			if err := os.WriteFile(filepath.Join(root, manifest), bytes.Join(lines[:len(lines)-1], nil), 0o644); err != nil {
				t.Fatal(err)
			}
			return file
		}, []string{"extra"}},
		{"manifest lines reordered", func(root string) string {
			lines := manifestLines(root, manifest)
			i := rng.IntN(len(lines) - 1)
			lines[i], lines[i+1] = lines[i+1], lines[i]
			if err := os.WriteFile(filepath.Join(root, manifest), bytes.Join(lines, nil), 0o644); err != nil {
				t.Fatal(err)
			}
			return manifest
		}, []string{"chain"}},
		{"re-signed with another key", func(root string) string {
			return ""
		}, []string{"signature"}},
	}
	caught := 0
	for _, c := range cases {
		root := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
		if c.name == "re-signed with another key" {
			root = resigned
		} else if err := os.CopyFS(root, os.DirFS(pristine)); err != nil {
			t.Fatal(err)
		}
		want := c.tamper(root)
		v, code := verify(root)
		named := false
		for _, f := range v.Findings {
			if slices.Contains(c.kinds, f.Kind) && (want == "" || f.Path == want || strings.Contains(f.What, want)) {
				named = true
			}
		}
		if code != 2 || !named {
			t.Errorf("%s (%s): verify exit %d, findings %+v; want a %v finding naming it", c.name, want, code, v.Findings, c.kinds)
			continue
		}
		integrity := reportIntegrity(root)
		switch {
		case c.name == "re-signed with another key":
			if slices.Equal(integrity.KeyIDs, pristineKeys) || len(integrity.KeyIDs) == 0 {
				t.Errorf("%s: the report's key ids %v, the signing key's %v", c.name, integrity.KeyIDs, pristineKeys)
				continue
			}
		case len(integrity.Findings) == 0:
			t.Errorf("%s: the report's integrity section has no finding", c.name)
			continue
		}
		caught++
		t.Logf("%s: verify: %s %s: %s; report: %d findings, key ids %v", c.name, v.Findings[0].Kind, v.Findings[0].Path, v.Findings[0].What, len(integrity.Findings), integrity.KeyIDs)
	}
	t.Logf("figures: seed %d: %d of %d tampering cases caught by verify and the report", seed, caught, len(cases))
}
