package archive

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/flowaudit/flowaudit/pkg/flow"
)

const (
	commitsDir        = "_commits"
	lockFile          = "_writer.lock"
	tmpPrefix         = ".tmp-"
	keepCommitRecords = 16
)

// committedFile is one data file of a commit group.
type committedFile struct {
	Tmp     string    `json:"tmp"`  // temporary name, relative to the root
	Path    string    `json:"path"` // final name, relative to the root
	Table   string    `json:"table"`
	Node    string    `json:"node"`
	Date    string    `json:"date"`
	SHA256  string    `json:"sha256"`
	Bytes   int64     `json:"bytes"`
	Rows    int64     `json:"rows"`
	MinTime time.Time `json:"min_time"`
	MaxTime time.Time `json:"max_time"`
	// A compaction's output: the files it replaces, and the configuration
	// of its inputs (a commit's files have the writer's).
	Op               string         `json:"op,omitempty"`
	Replaces         []ReplacedFile `json:"replaces,omitempty"`
	CollectorVersion string         `json:"collector_version,omitempty"`
	ConfigHash       string         `json:"config_hash,omitempty"`
}

// commitRecord is the commit point of a group of files: once it is durable,
// recovery finishes the group (renames, manifest entries); before it, the
// group's temporary files are discarded and the source re-reads them.
type commitRecord struct {
	Seq         uint64                     `json:"seq"`
	Time        time.Time                  `json:"time"`
	Files       []committedFile            `json:"files"`
	Checkpoints map[string]flow.Checkpoint `json:"checkpoints"` // every source's checkpoint after this group
	First       map[string]flow.Checkpoint `json:"first"`       // first checkpoint of this group, per source
	// Log names the row log (in _wal) whose rows this group's files hold:
	// recovery removes that log instead of replaying it.
	Log string `json:"log,omitempty"`
}

// ManifestEntry is one line of a manifest (manifests/node=<node>/date=<date>.jsonl).
type ManifestEntry struct {
	Index            uint64          `json:"index"` // position in the node's chain, from 1
	Seq              uint64          `json:"seq"`
	Op               string          `json:"op"` // "commit", "retention" or "compaction"
	Path             string          `json:"path"`
	Table            string          `json:"table"`
	SHA256           string          `json:"sha256,omitempty"`
	Bytes            int64           `json:"bytes"`
	Rows             int64           `json:"rows"`
	MinTime          time.Time       `json:"min_time"`
	MaxTime          time.Time       `json:"max_time"`
	Checkpoints      json.RawMessage `json:"checkpoints,omitempty"`
	Replaces         []ReplacedFile  `json:"replaces,omitempty"` // compaction: the files merged into Path
	CollectorVersion string          `json:"collector_version,omitempty"`
	ConfigHash       string          `json:"config_hash,omitempty"`
	Prev             string          `json:"prev"`
	Hash             string          `json:"hash"`
	KeyID            string          `json:"key_id,omitempty"`
	Signature        string          `json:"sig,omitempty"`
}

// entryHash is SHA-256 over the entry with hash and signature empty: it
// covers prev, so the entries of a node form a chain.
func entryHash(e ManifestEntry) string {
	e.Hash, e.Signature, e.KeyID = "", "", ""
	b, _ := json.Marshal(e)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// KeyID names a public key in manifests: the first 8 bytes of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

func manifestPath(root, node, date string) string {
	return filepath.Join(root, "manifests", "node="+SanitizeNode(node), "date="+date+".jsonl")
}

func (w *Writer) writeCommitRecord(rec *commitRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("archive: commit record: %w", err)
	}
	path := filepath.Join(w.cfg.Root, commitsDir, fmt.Sprintf("commit-%020d.json", rec.Seq))
	return writeFileAtomic(path, b)
}

// writeFileAtomic writes a file under a temporary name, fsyncs it, renames it
// and fsyncs the directory.
func writeFileAtomic(path string, data []byte) error {
	return writeFileAtomicAs(path+".tmp", path, data)
}

func syncDir(dir string) error {
	if err := beforeStep("fsync dir", dir); err != nil {
		return fmt.Errorf("archive: fsync dir %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("archive: fsync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := fsyncDir(d); err != nil {
		return fmt.Errorf("archive: fsync dir %s: %w", dir, err)
	}
	return nil
}

// apply finishes a commit group: renames its files to their final names and
// appends their manifest entries. It is idempotent, so recovery can redo it.
func (w *Writer) apply(rec *commitRecord) error {
	dirs := map[string]bool{}
	for _, f := range rec.Files {
		tmp, final := filepath.Join(w.cfg.Root, f.Tmp), filepath.Join(w.cfg.Root, f.Path)
		if _, err := os.Stat(final); err == nil {
			continue // already renamed
		}
		if err := beforeStep("rename", final); err != nil {
			return fmt.Errorf("archive: commit %s: %w", final, err)
		}
		if err := os.Rename(tmp, final); err != nil {
			if errors.Is(err, fs.ErrNotExist) && w.entered(rec.Seq, f) {
				// Recovery of a record applied before: the file was
				// renamed and entered in the chain, and retention or
				// compaction has deleted it since, as the chain says.
				continue
			}
			return fmt.Errorf("archive: commit %s: %w", final, err)
		}
		dirs[filepath.Dir(final)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	cps, _ := json.Marshal(map[string]any{"first": rec.First, "last": rec.Checkpoints})
	for _, f := range rec.Files {
		e := ManifestEntry{
			Seq: rec.Seq, Op: "commit", Path: f.Path, Table: f.Table, SHA256: f.SHA256, Bytes: f.Bytes, Rows: f.Rows,
			MinTime: f.MinTime, MaxTime: f.MaxTime, Checkpoints: cps,
			CollectorVersion: w.cfg.CollectorVersion, ConfigHash: w.cfg.ConfigHash,
		}
		if f.Op == "compaction" {
			e.Op, e.Checkpoints, e.Replaces = f.Op, nil, f.Replaces
			e.CollectorVersion, e.ConfigHash = f.CollectorVersion, f.ConfigHash
		}
		if err := w.appendManifest(e, f.Node, f.Date); err != nil {
			return err
		}
	}
	// A compaction's inputs go once the chain names what replaced them.
	dirs = map[string]bool{}
	for _, f := range rec.Files {
		for _, r := range f.Replaces {
			p := filepath.Join(w.cfg.Root, filepath.FromSlash(r.Path))
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("archive: compaction: remove %s: %w", p, err)
			}
			dirs[filepath.Dir(p)] = true
		}
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// entered reports whether the node's manifest of the day has the entry of
// f committed by the record seq: its file was renamed in place before.
func (w *Writer) entered(seq uint64, f committedFile) bool {
	data, err := os.ReadFile(manifestPath(w.cfg.Root, f.Node, f.Date))
	if err != nil {
		return false
	}
	entries, err := parseManifest("", data)
	if err != nil {
		return false
	}
	op := "commit"
	if f.Op == "compaction" {
		op = f.Op
	}
	for _, x := range entries {
		if x.Seq == seq && x.Path == f.Path && x.Op == op {
			return true
		}
	}
	return false
}

// appendManifest appends an entry to the node's manifest of the day, chained
// to the node's previous entry, unless an entry for the same path and seq is
// already there (recovery). The manifest is read whole (for that check and
// to cut a line torn by a crash) the first time this writer appends to it,
// and again only for an entry whose seq is not above every seq it held
// then (the entries of new commit groups are): reading it for every commit
// made a day of commits quadratic.
func (w *Writer) appendManifest(e ManifestEntry, node, date string) (err error) {
	path := manifestPath(w.cfg.Root, node, date)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	defer func() {
		if err != nil {
			delete(w.manifestSeq, path) // a torn line may be left: read it whole next time
		}
	}()
	if last, ok := w.manifestSeq[path]; !ok || e.Seq <= last {
		w.manifestReads++
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("archive: manifest %s: %w", path, err)
		}
		existing, err := parseManifest(path, old)
		if err != nil {
			return err
		}
		last = 0
		for _, x := range existing {
			if x.Seq == e.Seq && x.Path == e.Path && x.Op == e.Op {
				return nil
			}
			last = max(last, x.Seq)
		}
		if err := cutTornTail(path, old); err != nil {
			return err
		}
		w.manifestSeq[path] = last
	}
	head, err := w.head(node)
	if err != nil {
		return err
	}
	e.Prev, e.Index = head.hash, head.index+1
	e.Hash = entryHash(e)
	if w.cfg.SigningKey != nil {
		e.KeyID = KeyID(w.cfg.SigningKey.Public().(ed25519.PublicKey))
		e.Signature = hex.EncodeToString(ed25519.Sign(w.cfg.SigningKey, []byte(e.Hash)))
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := createFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("archive: manifest %s: %w", path, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("archive: manifest %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("archive: fsync manifest %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	w.heads[node] = chainHead{hash: e.Hash, index: e.Index}
	return nil
}

type chainHead struct {
	hash  string
	index uint64
}

// head returns the node's last manifest entry's hash and index.
func (w *Writer) head(node string) (chainHead, error) {
	if h, ok := w.heads[node]; ok {
		return h, nil
	}
	entries, err := nodeManifest(w.cfg.Root, node)
	if err != nil {
		return chainHead{}, err
	}
	var h chainHead
	if len(entries) > 0 {
		h = chainHead{hash: entries[len(entries)-1].Hash, index: entries[len(entries)-1].Index}
	}
	w.heads[node] = h
	return h, nil
}

// nodeManifest reads all of a node's manifest entries, in chain order.
func nodeManifest(root, node string) ([]ManifestEntry, error) {
	return nodeManifestFS(os.DirFS(root), node)
}

// sortChain puts entries in append order, which each records as its index
// (the files of a node's days are read in date order, and a compaction
// appends to the manifest of the day it compacts).
func sortChain(entries []ManifestEntry) {
	slices.SortStableFunc(entries, func(a, b ManifestEntry) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
}

// cutTornTail removes a torn last line (an append cut short by a crash or a
// full disk) from the manifest at path, whose content is b, before the next
// append, which would otherwise continue it and leave a corrupt line inside
// the chain.
func cutTornTail(path string, b []byte) error {
	if len(b) == 0 || b[len(b)-1] == '\n' {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("archive: manifest %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(int64(bytes.LastIndexByte(b, '\n') + 1)); err != nil {
		return fmt.Errorf("archive: manifest %s: cut torn line: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("archive: manifest %s: cut torn line: %w", path, err)
	}
	return nil
}

// readManifest reads one manifest file. A torn last line (a crash during the
// append) is ignored: recovery re-appends that entry.
func readManifest(path string) ([]ManifestEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseManifest(path, b)
}

// parseManifest parses the content b of the manifest at path (see readManifest).
func parseManifest(path string, b []byte) ([]ManifestEntry, error) {
	var out []ManifestEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e ManifestEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if !bytes.HasSuffix(b, []byte("\n")) {
				break // torn last line
			}
			return nil, fmt.Errorf("archive: manifest %s: %w", path, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// recover completes the last commit group and removes temporary files that
// no commit record references. It returns the row logs the commit records
// say were cut.
func (w *Writer) recover() (map[string]bool, error) {
	recs, err := w.commitRecords()
	if err != nil {
		return nil, err
	}
	cut := map[string]bool{}
	for _, r := range recs {
		if r.Log != "" {
			cut[r.Log] = true
		}
	}
	keep := map[string]bool{}
	if len(recs) > 0 {
		last := recs[len(recs)-1]
		if err := w.apply(&last); err != nil {
			return nil, err
		}
		w.seq = last.Seq
		w.committed = last.Checkpoints
		if w.committed == nil {
			w.committed = map[string]flow.Checkpoint{}
		}
		for _, f := range last.Files {
			keep[f.Tmp] = true
		}
	}
	// Uncommitted leftovers of a crash: temporary data files and half-written
	// commit records.
	removed := 0
	err = filepath.WalkDir(w.cfg.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || !(strings.HasPrefix(name, tmpPrefix) || strings.HasSuffix(name, ".json.tmp")) {
			return nil
		}
		rel, _ := filepath.Rel(w.cfg.Root, p)
		if keep[filepath.ToSlash(rel)] {
			return nil
		}
		removed++
		return os.Remove(p)
	})
	if removed > 0 {
		w.log.Info("removed uncommitted files left by a crash", zap.Int("count", removed))
	}
	return cut, err
}

func (w *Writer) commitRecords() ([]commitRecord, error) {
	return readCommitRecords(w.cfg.Root)
}

// readCommitRecords reads the commit records of root, oldest first.
func readCommitRecords(root string) ([]commitRecord, error) {
	dir := filepath.Join(root, commitsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "commit-") && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var out []commitRecord
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		var r commitRecord
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("archive: commit record %s: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// pruneCommitRecords keeps the last few commit records (the manifests are the
// permanent record; only the newest record is needed for recovery).
func (w *Writer) pruneCommitRecords() {
	dir := filepath.Join(w.cfg.Root, commitsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "commit-") && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for len(names) > keepCommitRecords {
		_ = os.Remove(filepath.Join(dir, names[0]))
		names = names[1:]
	}
}

// Close commits what is open and releases the writer. Safe to call twice.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	err := w.flush()
	w.closed = true
	w.closeLog()
	w.unlock()
	return err
}

// Commits counts the durable commits of this writer: cuts (Seq) and, with
// Config.Log, fsyncs of the row log. It does not take the writer's mutex:
// a sink reads it around every Write.
func (w *Writer) Commits() uint64 {
	return w.commits.Load()
}
