package archive

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flowaudit/flowaudit/pkg/objstore"
	"github.com/parquet-go/parquet-go"
)

// Vouched is a committed data file that its manifest entry vouches for,
// with what the entry records of it.
type Vouched struct {
	FileInfo
	Bytes, Rows      int64
	MinTime, MaxTime time.Time
}

// Finding is one problem verify found.
type Finding struct {
	Kind string `json:"kind"` // missing, unreadable, modified, truncated, extra, chain, signature, rows
	Path string `json:"path"`
	Node string `json:"node,omitempty"`
	What string `json:"what"`
	// Rows is, for a data file, the rows its manifest entry records (an
	// extra file: the rows its Parquet footer announces), when known.
	Rows *int64 `json:"rows,omitempty"`
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Files   int   `json:"files_checked"`
	Rows    int64 `json:"rows_checked"`
	Entries int   `json:"manifest_entries"`
	// Retired counts committed files of partitions that retention deleted
	// (a "retention" entry in the chain names each partition).
	Retired int `json:"files_retired"`
	// Retention lists the partitions retention deleted (every "retention"
	// entry of the chains read), whatever the range: what a reader needs to
	// tell a retention policy kept from one that deleted too early.
	Retention []RetiredPartition `json:"-"`
	// Compacted counts committed files that a compaction merged into a
	// larger file (a "compaction" entry names each with its hash and rows).
	Compacted  int               `json:"files_compacted"`
	ChainHeads map[string]string `json:"chain_heads"` // node -> hash of its last entry
	KeyIDs     []string          `json:"key_ids,omitempty"`
	Findings   []Finding         `json:"findings"`
	// Pending is the row log of a local root (docs/format.md, "The row
	// log"): rows durable but not yet in a closed file, which is no
	// finding, and a torn tail, which the writer cuts when it opens.
	Pending []LogStatus `json:"pending,omitempty"`

	// Intact are the committed files of the range that match their
	// manifest entries (size, SHA-256, Parquet footer and row count; the
	// size only with SizesOnly), whose entries are intact (hash, and
	// signature when checked): the files a reader may count, in root and
	// path order.
	Intact []Vouched `json:"-"`
	// Unvouched are the data files of the range a reader must not count,
	// each with the finding that says why: committed files missing,
	// damaged or named by an altered entry, and files no manifest knows
	// (kind extra). Files that a compaction merged into another (their
	// rows are in it) are there too, as kind "compacted", which is no
	// finding.
	Unvouched []Unvouched `json:"-"`
}

// RetiredPartition is one partition that retention deleted, as its
// "retention" entry records it: the partition directory and the time range
// of the rows it held.
type RetiredPartition struct {
	Node, Table, Path string
	Rows              int64
	MinTime, MaxTime  time.Time
}

// Unvouched is a data file a reader must not count, and why.
type Unvouched struct {
	FileInfo
	Kind, What string
	Rows       *int64 // as Finding.Rows
}

// OK reports whether nothing was found.
func (r *VerifyReport) OK() bool { return len(r.Findings) == 0 }

// VerifyOptions select what Verify checks.
type VerifyOptions struct {
	// From, To: the files of the date partitions that can hold times in
	// [From, To) (zero: unbounded). Every manifest chain is checked whole.
	From, To time.Time
	// PublicKey, when set, checks every entry's ed25519 signature.
	PublicKey ed25519.PublicKey
	// SizesOnly compares each committed file's size with its entry without
	// reading the file: no SHA-256, footer or row count. For a reader that
	// must know which files the manifests vouch for and cannot afford to
	// read them twice (the report, for the months around the one it
	// verifies).
	SizesOnly bool
}

// Verify recomputes, for files dated in [from, to) (zero: everything), every
// committed file's SHA-256, size and row count, every node's manifest hash
// chain and, with pub, every signature; and lists data files that no
// manifest knows.
func Verify(root string, from, to time.Time, pub ed25519.PublicKey) (*VerifyReport, error) {
	return verifyRoot(root, VerifyOptions{From: from, To: to, PublicKey: pub})
}

func verifyRoot(root string, o VerifyOptions) (*VerifyReport, error) {
	rep := &VerifyReport{ChainHeads: map[string]string{}, Findings: []Finding{}}
	fsys, err := rootFS(root)
	if err != nil {
		return nil, fmt.Errorf("archive: verify %s: %w", root, err)
	}
	if err := checkArchive(root); err != nil {
		return nil, err
	}
	if !objstore.IsURL(root) {
		logs, err := readLogStatus(root)
		if err != nil {
			rep.Findings = append(rep.Findings, Finding{Kind: "log", Path: walDir, What: err.Error()})
		}
		rep.Pending = logs
	}
	// No manifests at all (a bucket whose first shipment was cut before its
	// first manifest): every file is extra.
	nodes, err := fs.ReadDir(fsys, "manifests")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("archive: verify %s: %w", root, err)
	}
	known := map[string]bool{}
	keyIDs := map[string]bool{}
	inRange := func(date string) bool { return partitionInRange(date, o.From, o.To) }
	pub := o.PublicKey
	for _, n := range nodes {
		part, ok := strings.CutPrefix(n.Name(), "node=")
		if !ok {
			continue
		}
		node := UnsanitizeNode(part)
		entries, moved, err := nodeManifestOrderFS(fsys, node)
		if err != nil {
			rep.Findings = append(rep.Findings, Finding{Kind: "chain", Node: node, What: err.Error()})
			continue
		}
		rep.Findings = append(rep.Findings, moved...)
		retired := map[string]bool{}
		compacted := map[string]ReplacedFile{}
		outputs := map[string]string{} // a replaced file -> the compaction's output
		for _, e := range entries {
			if e.Op == "retention" {
				retired[e.Path] = true
				rep.Retention = append(rep.Retention, RetiredPartition{Node: node, Table: e.Table, Path: e.Path, Rows: e.Rows, MinTime: e.MinTime, MaxTime: e.MaxTime})
			}
			for _, r := range e.Replaces {
				compacted[r.Path] = r
				outputs[r.Path] = e.Path
			}
		}
		prev := ""
		for _, e := range entries {
			known[e.Path] = true
			// distrust is why the entry cannot vouch for its file ("": it can).
			var distrust, distrustKind string
			if e.Prev != prev {
				rep.Findings = append(rep.Findings, Finding{Kind: "chain", Path: e.Path, Node: node, What: fmt.Sprintf("entry seq %d: prev %s does not match the previous entry's hash %s (an entry was removed, reordered or altered)", e.Seq, short(e.Prev), short(prev))})
			}
			if h := entryHash(e); h != e.Hash {
				rep.Findings = append(rep.Findings, Finding{Kind: "chain", Path: e.Path, Node: node, What: fmt.Sprintf("entry seq %d: hash %s, recomputed %s (the entry was altered)", e.Seq, short(e.Hash), short(h))})
				distrust, distrustKind = fmt.Sprintf("its manifest entry (seq %d) was altered", e.Seq), "chain"
			}
			if e.KeyID != "" {
				keyIDs[e.KeyID] = true
			}
			if pub != nil {
				sig, _ := hex.DecodeString(e.Signature)
				if e.Signature == "" || !ed25519.Verify(pub, []byte(e.Hash), sig) {
					rep.Findings = append(rep.Findings, Finding{Kind: "signature", Path: e.Path, Node: node, What: fmt.Sprintf("entry seq %d: missing or invalid signature for key %s", e.Seq, KeyID(pub))})
					if distrust == "" {
						distrust, distrustKind = fmt.Sprintf("its manifest entry (seq %d) has no valid signature", e.Seq), "signature"
					}
				}
			}
			prev = e.Hash
			rep.Entries++
			if e.Op != "commit" && e.Op != "compaction" {
				continue
			}
			date := dateOf(e.Path)
			if !inRange(date) {
				continue
			}
			if e.Op == "compaction" {
				var sum int64
				for _, r := range e.Replaces {
					sum += r.Rows
				}
				if sum != e.Rows {
					rep.Findings = append(rep.Findings, Finding{Kind: "rows", Path: e.Path, Node: node, What: fmt.Sprintf("compaction entry seq %d: %d rows, the %d files it replaces had %d", e.Seq, e.Rows, len(e.Replaces), sum)})
				}
			}
			if retired[path.Dir(e.Path)] {
				if _, err := fs.Stat(fsys, e.Path); errors.Is(err, fs.ErrNotExist) {
					rep.Retired++
					continue
				}
			}
			if r, ok := compacted[e.Path]; ok {
				if r.SHA256 != e.SHA256 || r.Rows != e.Rows {
					rep.Findings = append(rep.Findings, Finding{Kind: "chain", Path: e.Path, Node: node, What: fmt.Sprintf("a compaction replaced this file as sha256 %s with %d rows; its commit entry says %s with %d", short(r.SHA256), r.Rows, short(e.SHA256), e.Rows)})
				}
				// Its rows are in the compaction's output (if a crash kept
				// it from being deleted, the writer's next start deletes it).
				rep.Compacted++
				if _, err := fs.Stat(fsys, e.Path); err == nil {
					rep.Unvouched = append(rep.Unvouched, Unvouched{FileInfo: fileInfoOf(root, e.Path), Kind: "compacted", What: "merged into " + outputs[e.Path] + " by a compaction, which holds its rows"})
				}
				continue
			}
			if f, ok := verifyFile(fsys, root, e, node, rep, o.SizesOnly); ok {
				if distrust != "" {
					rows := e.Rows
					rep.Unvouched = append(rep.Unvouched, Unvouched{FileInfo: f.FileInfo, Kind: distrustKind, What: distrust, Rows: &rows})
				} else {
					rep.Intact = append(rep.Intact, f)
				}
			}
		}
		rep.ChainHeads[node] = prev
	}
	for k := range keyIDs {
		rep.KeyIDs = append(rep.KeyIDs, k)
	}
	slices.Sort(rep.KeyIDs)
	for _, table := range tables {
		err := fs.WalkDir(fsys, table, func(rel string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if date, ok := strings.CutPrefix(d.Name(), "date="); ok && !inRange(date) {
					return fs.SkipDir // nothing in it is reported
				}
				return nil
			}
			if strings.HasPrefix(d.Name(), tmpPrefix) {
				return nil
			}
			if !known[rel] && inRange(dateOf(rel)) {
				f := Finding{Kind: "extra", Path: rel, What: "file is in the archive but in no manifest", Rows: footerRows(root, rel)}
				rep.Findings = append(rep.Findings, f)
				rep.Unvouched = append(rep.Unvouched, Unvouched{FileInfo: fileInfoOf(root, rel), Kind: f.Kind, What: f.What, Rows: f.Rows})
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("archive: verify %s: %w", root, err)
		}
	}
	slices.SortFunc(rep.Intact, func(a, b Vouched) int { return strings.Compare(a.Path, b.Path) })
	slices.SortFunc(rep.Unvouched, func(a, b Unvouched) int { return strings.Compare(a.Path, b.Path) })
	return rep, nil
}

// footerRows returns the row count in the Parquet footer of the file rel of
// root, or nil when it has none that can be read.
func footerRows(root, rel string) *int64 {
	if !strings.HasSuffix(rel, ".parquet") {
		return nil
	}
	f, pf, err := openParquetAt(root, rel)
	if err != nil {
		return nil
	}
	defer f.Close()
	n := pf.NumRows()
	return &n
}

// VerifyAll verifies several archive roots as one report. With more than one
// root, finding paths are prefixed with their root, and a node whose chain
// appears in two roots (a node that moved) keeps one head per root.
func VerifyAll(roots []string, from, to time.Time, pub ed25519.PublicKey) (*VerifyReport, error) {
	return VerifyRoots(roots, VerifyOptions{From: from, To: to, PublicKey: pub})
}

// VerifyRoots is VerifyAll with options. Intact and Unvouched keep their
// root in FileInfo.Root and their path relative to it.
func VerifyRoots(roots []string, o VerifyOptions) (*VerifyReport, error) {
	if len(roots) == 1 {
		return verifyRoot(roots[0], o)
	}
	all := &VerifyReport{ChainHeads: map[string]string{}, Findings: []Finding{}}
	keyIDs := map[string]bool{}
	for _, root := range roots {
		rep, err := verifyRoot(root, o)
		if err != nil {
			return nil, err
		}
		all.Files += rep.Files
		all.Rows += rep.Rows
		all.Entries += rep.Entries
		all.Retired += rep.Retired
		all.Compacted += rep.Compacted
		for _, l := range rep.Pending {
			l.Name = root + "/" + l.Name
			all.Pending = append(all.Pending, l)
		}
		for node, h := range rep.ChainHeads {
			if _, dup := all.ChainHeads[node]; dup {
				node = node + " (" + root + ")"
			}
			all.ChainHeads[node] = h
		}
		for _, k := range rep.KeyIDs {
			keyIDs[k] = true
		}
		for _, f := range rep.Findings {
			if f.Path != "" {
				f.Path = filepath.ToSlash(filepath.Join(root, f.Path))
			} else {
				f.Path = filepath.ToSlash(root)
			}
			all.Findings = append(all.Findings, f)
		}
		all.Intact = append(all.Intact, rep.Intact...)
		all.Unvouched = append(all.Unvouched, rep.Unvouched...)
		all.Retention = append(all.Retention, rep.Retention...)
	}
	for k := range keyIDs {
		all.KeyIDs = append(all.KeyIDs, k)
	}
	slices.Sort(all.KeyIDs)
	return all, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "(none)"
	}
	return h
}

func dateOf(rel string) string {
	for _, part := range strings.Split(rel, "/") {
		if d, ok := strings.CutPrefix(part, "date="); ok {
			return d
		}
	}
	return ""
}

// digest returns the size and hex SHA-256 of what r holds, as a manifest
// entry records them.
func digest(r io.Reader) (int64, string, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// verifyFile checks the file of the commit or compaction entry e against it
// and returns it as vouched when it matches (ok), or adds the finding and
// the file to rep.Unvouched.
func verifyFile(fsys fs.FS, root string, e ManifestEntry, node string, rep *VerifyReport, sizesOnly bool) (v Vouched, ok bool) {
	v = Vouched{FileInfo: fileInfoOf(root, e.Path), Bytes: e.Bytes, Rows: e.Rows, MinTime: e.MinTime, MaxTime: e.MaxTime}
	rows := e.Rows
	bad := func(kind, what string) (Vouched, bool) {
		rep.Findings = append(rep.Findings, Finding{Kind: kind, Path: e.Path, Node: node, What: what, Rows: &rows})
		rep.Unvouched = append(rep.Unvouched, Unvouched{FileInfo: v.FileInfo, Kind: kind, What: what, Rows: &rows})
		return v, false
	}
	if sizesOnly {
		st, err := fs.Stat(fsys, e.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return bad("missing", "committed file is missing")
		}
		if err != nil {
			return bad("unreadable", err.Error())
		}
		rep.Files++
		if st.Size() != e.Bytes {
			return bad("truncated", fmt.Sprintf("size %d, manifest says %d", st.Size(), e.Bytes))
		}
		rep.Rows += e.Rows
		return v, true
	}
	f, err := fsys.Open(e.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return bad("missing", "committed file is missing")
	}
	if err != nil {
		return bad("unreadable", err.Error())
	}
	defer f.Close()
	rep.Files++
	n, sum, err := digest(f)
	if err != nil {
		// A read that failed says nothing of the file's content (a
		// network error reading a bucket): not truncated, not vouched.
		return bad("unreadable", err.Error())
	}
	if n != e.Bytes {
		return bad("truncated", fmt.Sprintf("size %d, manifest says %d", n, e.Bytes))
	}
	if sum != e.SHA256 {
		return bad("modified", fmt.Sprintf("sha256 %s, manifest says %s", short(sum), short(e.SHA256)))
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return bad("unreadable", "no random access")
	}
	pf, err := parquet.OpenFile(ra, n)
	if err != nil {
		return bad("truncated", "unreadable Parquet footer: "+err.Error())
	}
	rep.Rows += pf.NumRows()
	if pf.NumRows() != e.Rows {
		return bad("rows", fmt.Sprintf("%d rows, manifest says %d", pf.NumRows(), e.Rows))
	}
	return v, true
}
