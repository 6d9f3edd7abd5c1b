package report

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flowaudit/flowaudit/pkg/archive"
)

// Excluded is a data file whose rows the report's numbers leave out, and
// why: the manifests do not vouch for it (an extra file, an altered entry),
// or it is missing or damaged.
type Excluded struct {
	// Path is as in integrity.findings: relative to the archive root, or
	// prefixed with its root when the report reads several.
	Path  string `json:"path"`
	Table string `json:"table"`
	// Kind is the integrity finding (missing, truncated, modified, rows,
	// extra, chain, signature), or unreadable: the file matched its entry
	// but could not be decoded.
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
	// Rows are the rows its manifest entry records (an extra file: the
	// rows its Parquet footer announces), when known.
	Rows *int64 `json:"rows,omitempty"`
}

type fileKey struct{ root, path string }

// selection is the files a report counts, and the DuckDB sources that read
// the same files. The month's files count when Verify found them intact
// (hashed: the report verifies the month anyway, so every counted byte is
// one the manifests vouch for, at no extra read). The previous month's
// flows and stats, read only for the month over month (and to mark denied
// groups new), count when their entry vouches for them and their size
// matches: hashing a second month would double the report's reading for a
// comparison, and that month's own report hashed them. The rest of the archive is checked the same cheap way, only
// to know whether the printed SQL may read the tables by a glob.
type selection struct {
	roots              []string
	from, to, prevFrom time.Time
	nodes              []string
	month, hist        map[fileKey]archive.Vouched
	// files are those read: flows of [prevFrom, to), stats of [from, to).
	files    []archive.FileInfo
	excluded []Excluded
}

func newSelection(o Options, from, to, prevFrom time.Time, month, hist *archive.VerifyReport) *selection {
	s := &selection{roots: o.Archives, from: from, to: to, prevFrom: prevFrom, nodes: o.Nodes}
	index := func(vs []archive.Vouched) map[fileKey]archive.Vouched {
		m := make(map[fileKey]archive.Vouched, len(vs))
		for _, v := range vs {
			m[fileKey{v.Root, v.Path}] = v
		}
		return m
	}
	s.month, s.hist = index(month.Intact), index(hist.Intact)
	for _, v := range month.Intact {
		s.files = append(s.files, v.FileInfo)
	}
	for _, v := range hist.Intact {
		if s.previousOnly(v.FileInfo) || s.earlierLosses(v.FileInfo) {
			s.files = append(s.files, v.FileInfo)
		}
	}
	slices.SortStableFunc(s.files, func(a, b archive.FileInfo) int {
		if a.Root != b.Root {
			return slices.Index(s.roots, a.Root) - slices.Index(s.roots, b.Root)
		}
		return strings.Compare(a.Path, b.Path)
	})
	for _, u := range month.Unvouched {
		s.exclude(u.FileInfo, u.Kind, u.What, u.Rows)
	}
	for _, u := range hist.Unvouched {
		if s.previousOnly(u.FileInfo) || s.earlierLosses(u.FileInfo) {
			s.exclude(u.FileInfo, u.Kind, u.What, u.Rows)
		}
	}
	return s
}

// previousOnly reports whether f is a flows or stats file of the previous
// month's partitions that is not in the month's.
func (s *selection) previousOnly(f archive.FileInfo) bool {
	return (f.Table == "flows" || f.Table == "stats") && f.InRange(s.prevFrom, s.from) && !f.InRange(s.from, s.to)
}

// earlierLosses reports whether f is a losses file of a date before the
// month's: a gap is filed under the date of its start, so one that began
// earlier can reach into the month (archive.Scanner.ScanLosses).
func (s *selection) earlierLosses(f archive.FileInfo) bool {
	return f.Table == "losses" && f.InRange(time.Time{}, s.from) && !f.InRange(s.from, s.to)
}

// lossSource is the DuckDB read_parquet of the losses files the report
// read, by their list (the table is small), or "" when it read none.
func (s *selection) lossSource() string {
	var paths []string
	for _, f := range s.files {
		if f.Table == "losses" {
			paths = append(paths, "'"+sqlString(f.Root+"/"+f.Path)+"'")
		}
	}
	if len(paths) == 0 {
		return ""
	}
	return fmt.Sprintf("read_parquet([%s], hive_partitioning=true)", strings.Join(paths, ", "))
}

// exclude records that f's rows are not counted, unless f is out of the
// report's scope or holds no rows of its own: a compaction's input (its
// rows are in the output) or a file that is not Parquet.
func (s *selection) exclude(f archive.FileInfo, kind, what string, rows *int64) {
	if kind == "compacted" || !strings.HasSuffix(f.Path, ".parquet") ||
		(len(s.nodes) > 0 && f.Node != "" && !slices.Contains(s.nodes, f.Node)) {
		return
	}
	if s.previousOnly(f) {
		what = "previous month, read only for the month over month: " + what
	}
	path := f.Path
	if len(s.roots) > 1 {
		path = filepath.ToSlash(filepath.Join(f.Root, f.Path))
	}
	s.excluded = append(s.excluded, Excluded{Path: path, Table: f.Table, Kind: kind, Reason: what, Rows: rows})
}

// scan runs scan over the selected files. A file that cannot be decoded,
// although it matched its entry, is excluded and the scan runs again
// without it: a partly read file is never counted.
func (s *selection) scan(ctx context.Context, scan func([]archive.FileInfo) error) error {
	for {
		err := scan(s.files)
		var se *archive.ScanError
		if err == nil || ctx.Err() != nil || !errors.As(err, &se) {
			return err
		}
		k := fileKey{se.File.Root, se.File.Path}
		i := slices.IndexFunc(s.files, func(f archive.FileInfo) bool { return fileKey{f.Root, f.Path} == k })
		if i < 0 {
			return err // not a file of the selection: no progress to make
		}
		s.files = slices.Delete(s.files, i, i+1)
		var rows *int64
		if v, ok := s.month[k]; ok {
			rows = &v.Rows
		} else if v, ok := s.hist[k]; ok {
			rows = &v.Rows
		}
		s.exclude(se.File, "unreadable", "matches its manifest entry but cannot be decoded: "+se.Err.Error(), rows)
	}
}

// globPattern is the files of a table DuckDB reads by a glob: those the
// scanner reads (archive.TableGlob), never a writer's temporary file.
func globPattern(root, table string) string {
	return root + "/" + archive.TableGlob(table)
}

// source is the DuckDB read_parquet of the table's files the report read:
// by a glob per root when the glob reads the same rows, else by the list of
// the files.
func (s *selection) source(table string) string {
	var read []archive.FileInfo
	for _, f := range s.files {
		if f.Table == table {
			read = append(read, f)
		}
	}
	if len(read) == 0 || s.globReadsSame(table, read) {
		if len(s.roots) == 1 {
			return fmt.Sprintf("read_parquet('%s', hive_partitioning=true)", sqlString(globPattern(s.roots[0], table)))
		}
		globs := make([]string, len(s.roots))
		for i, r := range s.roots {
			globs[i] = "'" + sqlString(globPattern(r, table)) + "'"
		}
		return fmt.Sprintf("read_parquet([%s], hive_partitioning=true)", strings.Join(globs, ", "))
	}
	paths := make([]string, len(read))
	for i, f := range read {
		paths[i] = "'" + sqlString(f.Root+"/"+f.Path) + "'"
	}
	return fmt.Sprintf("read_parquet([%s], hive_partitioning=true)", strings.Join(paths, ", "))
}

// globReadsSame reports whether the table's glob over every root reads
// exactly read within the report's partitions, and outside them only files
// whose entries vouch for them (their rows are outside the report's
// times, which the queries' WHERE leaves out).
func (s *selection) globReadsSame(table string, read []archive.FileInfo) bool {
	lo := s.from
	if table == "flows" || table == "stats" {
		lo = s.prevFrom
	}
	want := make(map[fileKey]bool, len(read))
	for _, f := range read {
		want[fileKey{f.Root, f.Path}] = true
	}
	seen := 0
	for _, root := range s.roots {
		// DuckDB would take the root's own glob characters as a pattern.
		if strings.ContainsAny(root, "*?[]{}\\") {
			return false
		}
		fsys, err := archive.RootFS(root)
		if err != nil {
			return false
		}
		matches, err := fs.Glob(fsys, archive.TableGlob(table))
		if err != nil {
			return false
		}
		for _, rel := range matches {
			k := fileKey{root, rel}
			if want[k] {
				seen++
				continue
			}
			if archive.FileInfoAt(root, rel).InRange(lo, s.to) {
				return false // the report does not count it
			}
			if _, ok := s.hist[k]; !ok {
				return false // no entry vouches for it: it may hold rows of the month
			}
		}
	}
	return seen == len(read)
}

// oldestSource is the DuckDB read_parquet of flows files that hold the
// oldest flow the manifests vouch for: the flows glob when it reads only
// files that entries vouch for (then it is source's), else the list of the
// vouched files of the oldest date partition (a date partition holds the
// flows of its UTC day).
func (s *selection) oldestSource() string {
	if src := s.source("flows"); strings.Contains(src, "/"+archive.TableGlob("flows")+"'") {
		return src
	}
	oldest := ""
	for _, v := range s.hist {
		if v.Table == "flows" && v.Rows > 0 && (oldest == "" || v.Date < oldest) {
			oldest = v.Date
		}
	}
	var paths []string
	for _, v := range s.hist {
		if v.Table == "flows" && v.Rows > 0 && v.Date == oldest {
			paths = append(paths, "'"+sqlString(v.Root+"/"+v.Path)+"'")
		}
	}
	slices.Sort(paths)
	return fmt.Sprintf("read_parquet([%s], hive_partitioning=true)", strings.Join(paths, ", "))
}
