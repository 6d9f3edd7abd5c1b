// Command duckdb-sql runs SQL statements with DuckDB (the Go bindings this
// module already needs) and prints each result as tab-separated values. The
// benchmarks use it as the DuckDB side of their side-by-side runs, and it is
// handy where the duckdb CLI is not installed:
//
//	go run ./cmd/duckdb-sql -threads 1 "SELECT count(*) FROM read_parquet('a/flows/**/*.parquet', hive_partitioning=true)"
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	threads := flag.Int("threads", 0, "SET threads (0: DuckDB's default)")
	timing := flag.Bool("timing", false, "print each statement's wall time on stderr")
	flag.Parse()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		fail(err)
	}
	defer db.Close()
	if *threads > 0 {
		if _, err := db.Exec(fmt.Sprintf("SET threads=%d", *threads)); err != nil {
			fail(err)
		}
	}
	for _, q := range flag.Args() {
		start := time.Now()
		rows, err := db.Query(q)
		if err != nil {
			fail(fmt.Errorf("%s: %w", q, err))
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				fail(err)
			}
			s := make([]string, len(vals))
			for i, v := range vals {
				s[i] = fmt.Sprint(v)
			}
			fmt.Println(strings.Join(s, "\t"))
		}
		if err := rows.Err(); err != nil {
			fail(err)
		}
		rows.Close()
		if *timing {
			fmt.Fprintf(os.Stderr, "%.3fs\t%s\n", time.Since(start).Seconds(), q)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "duckdb-sql:", err)
	os.Exit(1)
}
