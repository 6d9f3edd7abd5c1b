#!/usr/bin/env bash
# Side-by-side, whole-process comparisons in one run (bench/README.md records
# the results). Every job runs with GOMAXPROCS=1 / DuckDB threads=1, RUNS times,
# the baseline and flowaudit alternately; the script prints min/median/max wall
# time and max RSS, the ratio of the medians and the median of the ratios of
# runs made one after the other, and checks that flowaudit's output equals the
# baseline's byte for byte.
#
#   bench/compare.sh            # 1M generated lines, 5 runs
#   LINES=200000 RUNS=3 bench/compare.sh
#   JOBS=import bench/compare.sh   # only one part: filter or import
#   JOBS=parallel bench/compare.sh # filter --parallel 1 vs 2 on 2 CPUs (the
#                                  # one job that is not GOMAXPROCS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${LINES:-1000000}
RUNS=${RUNS:-5}
JOBS=${JOBS:-filter,import}
WORK=${WORK:-$(mktemp -d /tmp/flowaudit-bench.XXXXXX)}
DOCMASK=time,source.namespace,source.pod_name,destination.namespace,destination.pod_name,l4,IP,node_name,is_reply,verdict,drop_reason_desc
export GOMAXPROCS=1

echo "# machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# go: $(go version | cut -d' ' -f3), lines: $LINES, runs: $RUNS, work dir: $WORK"

make -s build
(cd test/compat && go build -o "$WORK/cilium-export" ./cmd/cilium-export && go build -o "$WORK/duckdb-sql" ./cmd/duckdb-sql)
FA=bin/flowaudit
IN="$WORK/events.log"
if [ ! -s "$IN" ]; then
  $FA gen --seed 1 --nodes 3 --rate 1000 --count "$LINES" --start 2026-01-01T00:00:00Z > "$IN"
fi
echo "# input: $(wc -l < "$IN") lines, $(du -m "$IN" | cut -f1) MiB"

# shellcheck source=bench/lib.sh
source bench/lib.sh
ratio() { echo "scale=1; $1 / $2" | bc -l; }

if [[ ,$JOBS, == *,filter,* ]]; then
echo
echo "## flowaudit filter vs Cilium's exporter code (protojson + filters.Apply + fieldmask.Copy + json.Encoder)"
for job in "docmask|--fieldmask $DOCMASK|-fieldmask $DOCMASK" \
           "allow DROPPED,ERROR|--allowlist {\"verdict\":[\"DROPPED\",\"ERROR\"]}|-allowlist {\"verdict\":[\"DROPPED\",\"ERROR\"]}" \
           "nomask|--output -|-o -"; do
  IFS='|' read -r name fa ci <<<"$job"
  # shellcheck disable=SC2086
  $FA filter $fa -o "$WORK/fa.out" "$IN" 2>/dev/null || true
  # shellcheck disable=SC2086
  "$WORK/cilium-export" $ci -o "$WORK/ci.out" "$IN" 2>/dev/null
  if cmp -s "$WORK/fa.out" "$WORK/ci.out"; then same="byte-identical"; else same="OUTPUT DIFFERS"; fi
  # shellcheck disable=SC2206
  A=("$WORK/cilium-export" $ci -o /dev/null "$IN"); B=($FA filter $fa -o /dev/null "$IN")
  measure_pair "cilium exporter code, $name" "flowaudit filter, $name"
  c=$(cat "$WORK/last_median_a"); f=$(cat "$WORK/last_median")
  echo "  => speed-up $(ratio "$c" "$f")x at the medians, $(ratio "$(cat "$WORK/last_ratio")" 1)x the median pair, output $same ($(wc -l < "$WORK/fa.out") lines)"
done
fi

if [[ ,$JOBS, == *,import,* ]]; then
echo
echo "## flowaudit import (committed, verified Parquet) vs DuckDB read_json -> Parquet (threads=1, zstd)"
rm -rf "$WORK/arch"
A=("$WORK/duckdb-sql" -threads 1 "COPY (SELECT * FROM read_json('$IN', format='newline_delimited')) TO '$WORK/duck.parquet' (FORMAT parquet, COMPRESSION zstd)")
B=(sh -c "rm -rf '$WORK/arch' && $FA import --progress never --archive '$WORK/arch' '$IN'")
measure_pair "duckdb read_json -> parquet, all fields" "flowaudit import, all fields"
d=$(cat "$WORK/last_median_a"); f=$(cat "$WORK/last_median")
fa_bytes=$(du -cb "$WORK"/arch/flows/*/*/*.parquet | tail -1 | cut -f1)
dk_bytes=$(stat -c %s "$WORK/duck.parquet")
echo "  => speed-up $(ratio "$d" "$f")x at the medians, $(ratio "$(cat "$WORK/last_ratio")" 1)x the median pair; bytes/flow flowaudit $((fa_bytes / LINES)), duckdb $((dk_bytes / LINES))"

A=("$WORK/duckdb-sql" -threads 1 "COPY (SELECT flow.time, flow.source.namespace, flow.source.pod_name, flow.destination.namespace, flow.destination.pod_name, flow.l4, flow.IP, flow.node_name, flow.is_reply, flow.verdict, flow.drop_reason_desc FROM read_json('$IN', format='newline_delimited') WHERE flow IS NOT NULL) TO '$WORK/duck2.parquet' (FORMAT parquet, COMPRESSION zstd)")
B=(sh -c "rm -rf '$WORK/arch2' && $FA import --progress never --fieldmask $DOCMASK --archive '$WORK/arch2' '$IN'")
measure_pair "duckdb read_json -> parquet, docs-example mask" "flowaudit import, docs-example mask"
d=$(cat "$WORK/last_median_a"); f=$(cat "$WORK/last_median")
fa_bytes=$(du -cb "$WORK"/arch2/flows/*/*/*.parquet | tail -1 | cut -f1)
dk_bytes=$(stat -c %s "$WORK/duck2.parquet")
echo "  => speed-up $(ratio "$d" "$f")x at the medians, $(ratio "$(cat "$WORK/last_ratio")" 1)x the median pair; bytes/flow flowaudit $((fa_bytes / LINES)), duckdb $((dk_bytes / LINES))"
fi

if [[ ,$JOBS, == *,parallel,* ]]; then
echo
echo "## flowaudit filter on 2 CPUs (GOMAXPROCS=2): one exporter vs two on consecutive chunks"
for job in "docmask|--fieldmask $DOCMASK" "allow DROPPED,ERROR|--allowlist {\"verdict\":[\"DROPPED\",\"ERROR\"]}" "nomask|--output -"; do
  IFS='|' read -r name fa <<<"$job"
  # shellcheck disable=SC2086
  GOMAXPROCS=2 $FA filter $fa --parallel 1 -o "$WORK/p1.out" "$IN" 2>/dev/null || true
  # shellcheck disable=SC2086
  GOMAXPROCS=2 $FA filter $fa --parallel 2 -o "$WORK/p2.out" "$IN" 2>/dev/null || true
  if cmp -s "$WORK/p1.out" "$WORK/p2.out"; then same="byte-identical"; else same="OUTPUT DIFFERS"; fi
  # shellcheck disable=SC2086
  measure "flowaudit filter --parallel 1, $name" env GOMAXPROCS=2 $FA filter $fa --parallel 1 -o /dev/null "$IN"; a=$(cat "$WORK/last_median")
  # shellcheck disable=SC2086
  measure "flowaudit filter --parallel 2, $name" env GOMAXPROCS=2 $FA filter $fa --parallel 2 -o /dev/null "$IN"; b=$(cat "$WORK/last_median")
  echo "  => speed-up $(ratio "$a" "$b")x, output $same"
done
fi
