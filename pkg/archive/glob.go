package archive

import "path"

// TableGlob is the pattern, relative to an archive root and slash-separated,
// of exactly the data files of table that a Scanner reads: part-*.parquet in
// its date= and node= partitions, never a writer's temporary file, a row
// log or a manifest. It is how readers outside this package that take a
// glob (DuckDB's read_parquet in the report's printed queries) name a
// table's files without knowing the layout.
func TableGlob(table string) string {
	return path.Join(table, "date=*", "node=*", "part-*.parquet")
}

// FileInfoAt is the FileInfo of the file at rel (slash-separated, relative
// to root, as TableGlob matches it): its table, date and node read from the
// path as the scanner reads them.
func FileInfoAt(root, rel string) FileInfo { return fileInfoOf(root, rel) }
