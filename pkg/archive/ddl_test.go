package archive

import (
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// TestDDLDeclaresEveryColumn: the DDL of each engine declares every column
// of the three tables, with the partition columns and the location.
func TestDDLDeclaresEveryColumn(t *testing.T) {
	for _, engine := range []string{"athena", "trino"} {
		ddl, err := DDL(engine, "s3://audit/prod-kr1/", "flowaudit")
		if err != nil {
			t.Fatal(err)
		}
		stmts := strings.Split(ddl, "CREATE ")
		if len(stmts) != 4 {
			t.Fatalf("%s: %d statements", engine, len(stmts)-1)
		}
		for i, rows := range []any{FlowRow{}, StatRow{}, LossRow{}} {
			stmt := stmts[i+1]
			for _, f := range parquet.SchemaOf(rows).Fields() {
				q := `"` + f.Name() + `"`
				if engine == "athena" {
					q = "`" + f.Name() + "`"
				}
				if !strings.Contains(stmt, "\n  "+q+" ") {
					t.Errorf("%s: %s is not declared:\n%s", engine, f.Name(), stmt)
				}
			}
			if !strings.Contains(stmt, "s3://audit/prod-kr1/"+[]string{"flows", "stats", "losses"}[i]+"/") || !strings.Contains(stmt, "date") {
				t.Errorf("%s: location or partitions missing:\n%s", engine, stmt)
			}
		}
		if strings.Contains(ddl, "`source_workloads` array<struct<name:string,kind:string>>") != (engine == "athena") {
			t.Errorf("%s: workloads type", engine)
		}
	}
	if _, err := DDL("hive", "s3://x", ""); err == nil {
		t.Error("engine hive accepted")
	}
}
