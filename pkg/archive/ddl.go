package archive

import (
	"fmt"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// DDL returns the CREATE TABLE statements that declare the archive's
// tables (flows, stats, losses) at location (s3://bucket/prefix, or a path)
// for engine "athena" (Hive DDL, partition projection on date and node) or
// "trino" (the Hive connector). They are generated from the schemas the
// writer writes, so they cannot drift from them.
func DDL(engine, location, database string) (string, error) {
	location = strings.TrimSuffix(location, "/")
	var b strings.Builder
	for _, t := range []struct {
		name   string
		schema *parquet.Schema
	}{{"flows", parquet.SchemaOf(FlowRow{})}, {"stats", parquet.SchemaOf(StatRow{})}, {"losses", parquet.SchemaOf(LossRow{})}} {
		var cols []string
		for _, f := range t.schema.Fields() {
			typ, err := sqlType(engine, f)
			if err != nil {
				return "", fmt.Errorf("archive: DDL of %s.%s: %w", t.name, f.Name(), err)
			}
			cols = append(cols, fmt.Sprintf("  %s %s", quoteIdent(engine, f.Name()), typ))
		}
		table := t.name
		if database != "" {
			table = database + "." + t.name
		}
		loc := location + "/" + t.name + "/"
		switch engine {
		case "athena":
			fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s (\n%s\n)\nPARTITIONED BY (`date` string, `node` string)\nSTORED AS PARQUET\nLOCATION '%s'\n", table, strings.Join(cols, ",\n"), loc)
			fmt.Fprintf(&b, "TBLPROPERTIES (\n  'projection.enabled' = 'true',\n  'projection.date.type' = 'date',\n  'projection.date.format' = 'yyyy-MM-dd',\n  'projection.date.range' = '2020-01-01,NOW',\n  'projection.date.interval' = '1',\n  'projection.date.interval.unit' = 'DAYS',\n  'projection.node.type' = 'injected',\n  'storage.location.template' = '%sdate=${date}/node=${node}/'\n);\n\n", loc)
		case "trino":
			fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n%s,\n  \"date\" varchar,\n  node varchar\n)\nWITH (\n  format = 'PARQUET',\n  external_location = '%s',\n  partitioned_by = ARRAY['date', 'node']\n);\n", table, strings.Join(cols, ",\n"), loc)
			fmt.Fprintf(&b, "CALL system.sync_partition_metadata('%s', '%s', 'ADD');\n\n", schemaOf(database), t.name)
		default:
			return "", fmt.Errorf("archive: DDL: engine %q: want athena or trino", engine)
		}
	}
	return b.String(), nil
}

func isList(v format.LogicalTypeValue) bool {
	_, ok := v.(*format.ListType)
	return ok
}

func schemaOf(database string) string {
	if database == "" {
		return "default"
	}
	return database
}

func quoteIdent(engine, name string) string {
	if engine == "athena" {
		return "`" + name + "`"
	}
	return `"` + name + `"`
}

// sqlType maps a Parquet field to the engine's type: unsigned integers to
// the next wider signed type (neither engine has unsigned ones), timestamps
// to timestamp, lists to arrays, groups to rows (structs).
func sqlType(engine string, f parquet.Field) (string, error) {
	if !f.Leaf() {
		if lt := f.Type().LogicalType(); lt != nil && isList(lt.Value) {
			elem := f.Fields()[0].Fields()[0] // list.element
			t, err := sqlType(engine, elem)
			if err != nil {
				return "", err
			}
			if engine == "athena" {
				return "array<" + t + ">", nil
			}
			return "array(" + t + ")", nil
		}
		var parts []string
		for _, c := range f.Fields() {
			t, err := sqlType(engine, c)
			if err != nil {
				return "", err
			}
			if engine == "athena" {
				parts = append(parts, c.Name()+":"+t)
			} else {
				parts = append(parts, quoteIdent(engine, c.Name())+" "+t)
			}
		}
		if engine == "athena" {
			return "struct<" + strings.Join(parts, ",") + ">", nil
		}
		return "row(" + strings.Join(parts, ", ") + ")", nil
	}
	if lt := f.Type().LogicalType(); lt != nil {
		switch v := lt.Value.(type) {
		case *format.TimestampType:
			return "timestamp", nil
		case *format.StringType, *format.EnumType:
			if engine == "athena" {
				return "string", nil
			}
			return "varchar", nil
		case *format.IntType:
			switch {
			case v.BitWidth <= 16 && !v.IsSigned, v.BitWidth <= 32 && v.IsSigned:
				return "int", nil
			case v.BitWidth <= 32, v.IsSigned, engine == "athena":
				// Athena reads an unsigned 64-bit column as bigint: a
				// value above 2^63 (a socket cookie) reads negative.
				return "bigint", nil
			default:
				return "decimal(20,0)", nil // Trino's mapping of UINT_64
			}
		}
	}
	switch f.Type().Kind() {
	case parquet.Boolean:
		return "boolean", nil
	case parquet.Int32:
		return "int", nil
	case parquet.Int64:
		return "bigint", nil
	case parquet.Double:
		return "double", nil
	case parquet.ByteArray:
		if engine == "athena" {
			return "string", nil
		}
		return "varchar", nil
	}
	return "", fmt.Errorf("no type for %v", f.Type())
}
