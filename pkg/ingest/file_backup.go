// Lumberjack's backups of the live file: their names, listing and sizes.

package ingest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// backupTimeFormat is lumberjack's timestamp in backup names
// (events-2006-01-02T15-04-05.000.log, UTC as Cilium configures it). Names
// in this format sort chronologically as strings.
const backupTimeFormat = "2006-01-02T15-04-05.000"

// backupFile is one lumberjack backup present in the directory.
type backupFile struct {
	ts        string // lumberjack timestamp
	plain, gz bool   // which forms exist (both while the mill compresses)
	size      int64  // plain size
	dev, ino  uint64 // plain identity
}

func (s *FileSource) plainName(ts string) string {
	return filepath.Join(s.dir, s.prefix+ts+s.ext)
}

// parseBackup recognises a backup name and returns its timestamp.
func (s *FileSource) parseBackup(name string) (ts string, gz, ok bool) {
	if !strings.HasPrefix(name, s.prefix) {
		return "", false, false
	}
	rest := name[len(s.prefix):]
	switch {
	case strings.HasSuffix(rest, s.ext+".gz"):
		rest, gz = rest[:len(rest)-len(s.ext)-3], true
	case strings.HasSuffix(rest, s.ext):
		rest = rest[:len(rest)-len(s.ext)]
	default:
		return "", false, false
	}
	if len(rest) != len(backupTimeFormat) {
		return "", false, false
	}
	if _, err := time.Parse(backupTimeFormat, rest); err != nil {
		return "", false, false
	}
	return rest, gz, true
}

// listBackups returns the backups present, oldest first (none when the
// directory does not exist).
func (s *FileSource) listBackups() ([]backupFile, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("ingest: list %s: %w", s.dir, err)
	}
	var out []backupFile
	idx := map[string]int{}
	for _, e := range ents {
		ts, gz, ok := s.parseBackup(e.Name())
		if !ok {
			continue
		}
		var b backupFile
		if !gz {
			fi, err := e.Info()
			if err != nil {
				continue // gone meanwhile
			}
			b.plain, b.size = true, fi.Size()
			b.dev, b.ino = fileIdent(fi)
		} else {
			b.gz = true
		}
		if i, ok := idx[ts]; ok {
			o := &out[i]
			if b.plain {
				o.plain, o.size, o.dev, o.ino = true, b.size, b.dev, b.ino
			}
			o.gz = o.gz || b.gz
			continue
		}
		b.ts = ts
		idx[ts] = len(out)
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ts < out[j].ts })
	return out, nil
}

// statBackup looks a backup up by name.
func (s *FileSource) statBackup(ts string) (backupFile, bool) {
	if fi, err := os.Stat(s.plainName(ts)); err == nil {
		dev, ino := fileIdent(fi)
		return backupFile{ts: ts, plain: true, size: fi.Size(), dev: dev, ino: ino}, true
	}
	if _, err := os.Stat(s.plainName(ts) + ".gz"); err == nil {
		return backupFile{ts: ts, gz: true}, true
	}
	return backupFile{}, false
}

// gzContentSize reads the uncompressed size from a complete single-member
// gzip file's trailer (ISIZE, modulo 4 GiB: far above lumberjack sizes).
func gzContentSize(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < 18+8 {
		return 0, false
	}
	var tr [4]byte
	if _, err := f.ReadAt(tr[:], fi.Size()-4); err != nil {
		return 0, false
	}
	return int64(uint32(tr[0]) | uint32(tr[1])<<8 | uint32(tr[2])<<16 | uint32(tr[3])<<24), true
}
