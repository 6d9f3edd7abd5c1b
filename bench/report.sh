#!/usr/bin/env bash
# The monthly report side by side with DuckDB: a generated month of FLOWS
# flows (3 nodes) is imported once; then, for 1 and 2 threads, RUNS runs of
# `flowaudit report --format json` (GOMAXPROCS=N, --parallel N) and RUNS
# runs of DuckDB (threads=N) executing every query the report prints beside
# its numbers, all in one process. Usage: FLOWS=2000000 RUNS=3 bench/report.sh
# ARCHIVE=DIR keeps the generated archive in DIR (generated when DIR does not
# exist yet) so that later runs reuse it (50M flows take ~20 minutes to make).
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${FLOWS:-2000000}
RUNS=${RUNS:-3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
go build -o "$WORK/flowaudit" ./cmd/flowaudit
(cd test/compat && go build -o "$WORK/duckdb-sql" ./cmd/duckdb-sql)
FA=$WORK/flowaudit
echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
# FLOWS over January, generated and imported in parts of at most 5M flows
# (2.3 KB each as JSON), each part a slice of the month with its own seed.
PARTS=$(( (FLOWS + 4999999) / 5000000 ))
PER=$(( FLOWS / PARTS ))
RATE=$(echo "$FLOWS / (3 * 31 * 86400)" | bc -l) # flows per second per node
ARCHIVE=${ARCHIVE:-$WORK/archive}
if [ ! -e "$ARCHIVE" ]; then
  for i in $(seq 0 $((PARTS - 1))); do
    start=$(date -u -d "@$(( $(date -u -d 2026-01-01 +%s) + i * 31 * 86400 / PARTS ))" +%Y-%m-%dT%H:%M:%SZ)
    "$FA" gen --seed $((2 + i)) --nodes 3 --rate "$RATE" --count "$PER" --start "$start" > "$WORK/ev-$i.log"
    "$FA" import --progress never --archive "$ARCHIVE.tmp" "$WORK/ev-$i.log" >/dev/null
    rm "$WORK/ev-$i.log"
  done
  mv "$ARCHIVE.tmp" "$ARCHIVE"
fi
"$FA" report --month 2026-01 --archive "$ARCHIVE" --format json --out "$WORK/report.json"
echo "# archive: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_flows"])' "$WORK/report.json") flows, $(du -sm "$ARCHIVE" | cut -f1) MiB"
mapfile -t QUERIES < <(python3 -c 'import json,sys; [print(q["sql"].replace("\n", " ")) for q in json.load(open(sys.argv[1]))["queries"]]' "$WORK/report.json")
echo "# DuckDB runs the report's ${#QUERIES[@]} printed queries"

# shellcheck source=bench/lib.sh
source bench/lib.sh
for n in 1 2; do
  measure "flowaudit report, $n thread(s)" env GOMAXPROCS=$n "$FA" report --month 2026-01 --archive "$ARCHIVE" --format json --parallel $n --out "$WORK/r.json"
  measure "duckdb, the same queries, threads=$n" "$WORK/duckdb-sql" -threads $n "${QUERIES[@]}"
done
