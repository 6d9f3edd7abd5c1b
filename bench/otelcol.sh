#!/usr/bin/env bash
# flowaudit beside the OpenTelemetry Collector (issue #33): both follow the
# same events.log that `flowaudit gen --realtime` writes through lumberjack
# with Cilium's default rotation (10 MiB x 5) at RATE lines/s for SECS
# seconds, in alternating runs (one program at a time, the generator beside
# it), for two jobs:
#   filter  keep the DROPPED and ERROR flows (flowaudit: --allowlist;
#           the collector: bench/otelcol/filter.yaml, a filter operator)
#   all     keep every line (bench/otelcol/all.yaml)
# Both keep every field (FIELDMASK=... gives flowaudit a field mask). The
# collector is built once with the collector builder from
# bench/otelcol/builder.yaml (filelog receiver, file_storage, batch, file
# exporter with zstd) into a cache directory named after that manifest's lines.
#
# Per run and program, from /proc: CPU (utime + stime) from its start until it
# has read everything it will (no CPU for 3 s after the generator ended) and
# peak RSS (VmHWM); lines written (the generator's, counted on a simulated
# run of the same seed: the output is deterministic), lines read
# (flowaudit: flowaudit_ingest_lines_total; the collector: its records when
# it keeps every line, estimated from the share of the allowlist's flows it
# wrote under the filter, marked "~"), records written (flowaudit: the
# archive's flows, `flowaudit report`; the collector: the records in its
# output files, bench/otelcol/otlpcount) and the lines lost to rotation
# (written - read). A program that falls behind the exporter by more than
# its backups hold loses lines and spends no CPU on them, so CPU per line
# read compares the work, CPU the cost on the node.
#
# Usage: RATE=20000 SECS=60 RUNS=3 JOBS=filter,all bench/otelcol.sh
#   OTELCOL=/path/to/otelcol  use that collector instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
RATE=${RATE:-20000}
SECS=${SECS:-60}
RUNS=${RUNS:-3}
JOBS=${JOBS:-filter,all}
SEED=${SEED:-7}
FIELDMASK=${FIELDMASK:-}
ALLOW='{"verdict":["DROPPED","ERROR"]}'
BUILDER=go.opentelemetry.io/collector/cmd/builder@v0.165.0
WORK=$(mktemp -d /tmp/flowaudit-otelcol.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

if [ -z "${OTELCOL:-}" ]; then
  sum=$(grep -v '^#' bench/otelcol/builder.yaml | sha256sum | cut -c1-12) # comments need no rebuild
  dir=${XDG_CACHE_HOME:-$HOME/.cache}/flowaudit-bench/otelcol-$sum
  OTELCOL=$dir/otelcol-flowaudit-bench
  if [ ! -x "$OTELCOL" ]; then
    echo "# building the collector into $dir ($BUILDER)"
    (cd "$WORK" && go run "$BUILDER" --config "$ROOT/bench/otelcol/builder.yaml" --output-path "$dir" >"$WORK/builder.log" 2>&1) ||
      { tail -40 "$WORK/builder.log"; echo "the collector builder failed (whole log: rerun with the command above)" >&2; exit 1; }
  fi
fi
go build -o "$WORK/flowaudit" ./cmd/flowaudit
go build -o "$WORK/otlpcount" ./bench/otelcol/otlpcount
FA=$WORK/flowaudit

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo "# $("$OTELCOL" --version 2>&1 | head -1); flowaudit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo +changes)"
echo "# rate ${RATE} lines/s for ${SECS} s, seed $SEED, runs $RUNS, jobs $JOBS, flowaudit field mask: ${FIELDMASK:-none}"

# The lines the generator writes and the flows the allowlist keeps, from a
# simulated run of the same seed (the same lines, with other timestamps).
"$FA" gen --seed "$SEED" --nodes 1 --rate "$RATE" --duration "${SECS}s" > "$WORK/expected.log"
WRITTEN=$(wc -l < "$WORK/expected.log")
FLOWS=$(grep -c '^{"flow":' "$WORK/expected.log")
KEEP_FILTER=$("$FA" filter --allowlist "$ALLOW" "$WORK/expected.log" | wc -l)
rm -f "$WORK/expected.log"
echo "# lines written per run: $WRITTEN, flows $FLOWS (the rest lost_events and agent_event lines), of which the allowlist keeps $KEEP_FILTER"

ticks=$(getconf CLK_TCK)
# free_port: a TCP port nobody listens on (the machine is shared).
free_port() {
  local p
  for p in $(seq 19968 20968); do
    ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
  echo "no free port in 19968-20968" >&2; return 1
}
cpu_of() { awk -v t="$ticks" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat"; }

# run SIDE JOB I: one run; appends a line to $WORK/results.
run() {
  local side=$1 job=$2 i=$3 d="$WORK/run" pid c0 c1 idle hwm read out lost expect
  rm -rf "$d"; mkdir -p "$d/hubble" "$d/storage" "$d/out"
  local port; port=$(free_port)
  if [ "$side" = flowaudit ]; then
    local args=(run --source "file:$d/hubble/events.log" --archive "$d/archive" --node bench
      --listen "127.0.0.1:$port" --log-level warn --stats-interval 10s)
    [ "$job" = filter ] && args+=(--allowlist "$ALLOW")
    [ -n "$FIELDMASK" ] && args+=(--fieldmask "$FIELDMASK")
    "$FA" "${args[@]}" 2>"$d/log" &
  else
    OTELCOL_STORAGE=$d/storage OTELCOL_EVENTS_LOG=$d/hubble/events.log OTELCOL_OUT=$d/out \
      OTELCOL_METRICS_PORT=$port "$OTELCOL" --config "bench/otelcol/$job.yaml" 2>"$d/log" &
  fi
  pid=$!
  sleep 2
  kill -0 "$pid" 2>/dev/null || { cat "$d/log"; echo "$side did not start" >&2; exit 1; }
  local load0; load0=$(cut -d' ' -f1 /proc/loadavg)
  local t0; t0=$(date +%s.%N)
  "$FA" gen --realtime --seed "$SEED" --nodes 1 --rate "$RATE" --duration "${SECS}s" \
    --out "$d/hubble/events.log" --max-size-mb 10 --max-backups 5
  local tgen; tgen=$(echo "$(date +%s.%N) - $t0" | bc -l)
  # Until it has read what it will: no CPU used for 3 s in a row (at most 5 min).
  c1=$(cpu_of "$pid"); idle=0
  for _ in $(seq 300); do
    sleep 1; c0=$c1; c1=$(cpu_of "$pid")
    if [ "$(echo "$c1 - $c0 < 0.03" | bc -l)" = 1 ]; then idle=$((idle + 1)); [ $idle -ge 3 ] && break; else idle=0; fi
  done
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  if [ "$side" = flowaudit ]; then
    curl -s "127.0.0.1:$port/metrics" > "$d/metrics"
    read=$(awk '/^flowaudit_ingest_lines_total/ {s+=$2} END {print s+0}' "$d/metrics")
  else
    curl -s "127.0.0.1:$port/metrics" > "$d/metrics"
  fi
  kill -TERM "$pid"; wait "$pid" || true
  if [ "$side" = flowaudit ]; then
    out=$("$FA" report --archive "$d/archive" --month "$(date -u +%Y-%m)" --format json 2>/dev/null | jq .total_flows)
  else
    out=$("$WORK/otlpcount" "$d"/out/* | cut -d' ' -f1)
  fi
  # Records each should write: the collector keeps every line it parses, the
  # archive flows only (its stats table counts the other events).
  if [ "$job" = filter ]; then expect=$KEEP_FILTER; elif [ "$side" = flowaudit ]; then expect=$FLOWS; else expect=$WRITTEN; fi
  # The collector's lines read: with every line kept, its records; with the
  # filter, estimated from the share of the allowlist's flows it wrote (the
  # generator spreads drops evenly over the stream), marked "~".
  local est=""
  if [ "$side" = otelcol ]; then
    if [ "$job" = all ]; then read=$out; else read=$(( (WRITTEN * out + KEEP_FILTER / 2) / KEEP_FILTER )); est="~"; fi
  fi
  lost=$((WRITTEN - read))
  echo "$job $side $i $c1 $hwm $read $out $expect $lost $tgen $load0 $est" | tee -a "$WORK/results" |
    awk -v secs="$SECS" -v w="$WRITTEN" '{ printf "%-6s %-9s run %d: CPU %6.2f s = %5.1f%% of a core, %5.2f us/line read; peak RSS %4.0f MiB; lines read %s%d of %d, lost to rotation %s%d; records written %d of %d; generator took %.0f s, load %s\n",
      $1, $2, $3, $4, 100 * $4 / secs, 1e6 * $4 / ($6 > 0 ? $6 : 1), $5 / 1024, $12, $6, w, $12, $9, $7, $8, $10, $11 }'
  rm -rf "$d"
}

for i in $(seq "$RUNS"); do
  for job in ${JOBS//,/ }; do
    # Alternate which program runs first, so a slow spell falls on both.
    if [ $((i % 2)) = 1 ]; then order="flowaudit otelcol"; else order="otelcol flowaudit"; fi
    for side in $order; do run "$side" "$job" "$i"; done
  done
done

echo
echo "# the collector's / flowaudit's CPU, and CPU per line read, by job: ratios of each run's pair, min / median / max"
for job in ${JOBS//,/ }; do
  for what in cpu line; do
    awk -v job="$job" -v what="$what" '$1 == job { c = $4; if (what == "line") c = $4 / ($6 > 0 ? $6 : 1); cpu[$2 "," $3] = c; n[$3] = 1 } END {
      for (i in n) if (cpu["flowaudit," i] > 0) print cpu["otelcol," i] / cpu["flowaudit," i] }' "$WORK/results" |
      sort -g | awk -v job="$job" -v what="$what" '{ r[NR] = $1 } END {
        if (NR) printf "%-6s %-13s %.1fx / %.1fx / %.1fx (goal: >= 15x)\n", job, what == "cpu" ? "CPU" : "CPU per line", r[1], r[int((NR + 1) / 2)], r[NR] }'
  done
done
