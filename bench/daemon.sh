#!/usr/bin/env bash
# The daemon under a steady load: `flowaudit gen --realtime` writes events.log
# through lumberjack (Cilium's default rotation, 10 MiB x 5) at RATE flows/s
# for SECS seconds while `flowaudit run` follows it with the docs-example
# mask; /usr/bin/time measures the daemon's CPU and peak RSS, /metrics its
# counters, and, over the middle of the run, the daemon's own
# process_cpu_seconds_total (the steady state, without start and shutdown),
# and /proc/PID/status its peak RSS (VmHWM, the daemon's own).
# ROWLOG=1 runs it with the row log (--row-log), ROWLOG=0 without it
# (--row-log=false, a commit per file); unset, with the daemon's default.
# PROFILE=FILE writes the daemon's CPU profile over that middle of the run
# to FILE (--debug-listen; read it with go tool pprof).
# FLOWAUDIT=PATH runs that binary instead of building this tree.
# Usage: RATE=5000 SECS=60 [ROWLOG=0|1] [PROFILE=cpu.pprof] [FLOWAUDIT=PATH] bench/daemon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-5000}
SECS=${SECS:-60}
ROWLOG_FLAGS=()
case "${ROWLOG:-}" in
  1) ROWLOG_FLAGS=(--row-log --max-file-rows 16777216 --max-file-bytes 1Gi) ;;
  0) ROWLOG_FLAGS=(--row-log=false) ;;
  "") ;;
  *) echo "ROWLOG must be 0, 1 or unset" >&2; exit 2 ;;
esac
DOCMASK=time,source.namespace,source.pod_name,destination.namespace,destination.pod_name,l4,IP,node_name,is_reply,verdict,drop_reason_desc
WORK=$(mktemp -d)
FAPID=
# The daemon runs under /usr/bin/time, which a signal to the job does not
# reach past: it is killed by its own pid.
trap 'kill $FAPID $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PROFILE_FLAGS=()
if [ -n "${PROFILE:-}" ]; then
  PROFILE_FLAGS=(--debug-listen 127.0.0.1:19968)
fi
if [ -n "${FLOWAUDIT:-}" ]; then
  FA=$FLOWAUDIT # another build, for runs alternating with this one's
else
  go build -o "$WORK/flowaudit" ./cmd/flowaudit
  FA=$WORK/flowaudit
fi
mkdir -p "$WORK/hubble"
# Start the daemon first: it waits for the exporter's file.
/usr/bin/time -f '%U %S %M' -o "$WORK/time" "$FA" run --source "file:$WORK/hubble/events.log" \
  --fieldmask "$DOCMASK" --archive "$WORK/archive" --node bench --listen 127.0.0.1:19967 \
  --log-level warn --stats-interval 10s ${ROWLOG_FLAGS[@]+"${ROWLOG_FLAGS[@]}"} \
  ${PROFILE_FLAGS[@]+"${PROFILE_FLAGS[@]}"} 2>"$WORK/run.log" &
RUN=$!
sleep 1
FAPID=$(pgrep -P "$RUN") # /usr/bin/time does not forward SIGTERM: signal the daemon itself
"$FA" gen --realtime --nodes 1 --rate "$RATE" --duration "${SECS}s" --out "$WORK/hubble/events.log" --max-size-mb 10 --max-backups 5 &
GEN=$!
# The steady state: the daemon's own metrics (process_cpu_seconds_total and
# the lines read) over the run's middle, 5 s after the generator starts to
# 5 s before it ends (whole seconds; SECS >= 15).
scrape() { curl -s 127.0.0.1:19967/metrics | awk -v t="$(date +%s.%N)" \
  '/^process_cpu_seconds_total/ {c=$2} /^flowaudit_ingest_lines_total/ {l+=$2} END {print t, c+0, l+0}'; }
sleep 5; read -r t0 c0 l0 < <(scrape)
if [ -n "${PROFILE:-}" ]; then
  curl -s -o "$PROFILE" "127.0.0.1:19968/debug/pprof/profile?seconds=$((SECS - 10))"
else
  sleep $((SECS - 10))
fi
read -r t1 c1 l1 < <(scrape)
wait "$GEN"
sleep 3 # the last lines
curl -s 127.0.0.1:19967/metrics > "$WORK/metrics" || true
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$FAPID/status")
kill -TERM "$FAPID"; wait "$RUN" || true
read -r user sys rss < "$WORK/time"
lines=$(awk '/^flowaudit_ingest_lines_total/ {s+=$2} END {print s+0}' "$WORK/metrics")
kept=$(awk '/^flowaudit_pipeline_flows_kept_total/ {s+=$2} END {print s+0}' "$WORK/metrics")
lost=$(awk '/^flowaudit_pipeline_lost_events_total/ {s+=$2} END {print s+0}' "$WORK/metrics")
echo "rate ${RATE}/s for ${SECS}s: lines read $lines, flows kept $kept, events the log reports lost $lost (the generator writes lost_events lines, as Hubble does)"
awk -v u="$user" -v s="$sys" -v r="$rss" -v secs="$SECS" -v l="$lines" 'BEGIN {
  printf "daemon CPU %.1f s user + %.1f s sys = %.0f%% of one core; %.1f us CPU per line; peak RSS %.0f MiB\n", u, s, 100*(u+s)/secs, 1e6*(u+s)/(l>0?l:1), r/1024 }'
awk -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v l0="$l0" -v l1="$l1" 'BEGIN {
  printf "steady state (%.0f s in the middle, /metrics): %.2f s CPU for %d lines = %.0f%% of one core; %.2f us CPU per line\n", t1-t0, c1-c0, l1-l0, 100*(c1-c0)/(t1-t0), 1e6*(c1-c0)/(l1>l0?l1-l0:1) }'
rot=$(awk '/^flowaudit_pipeline_lost_events_total\{reason="rotation_gap"/ {s+=$2} END {print s+0}' "$WORK/metrics")
echo "row log: ${ROWLOG:-default}; peak RSS (VmHWM) $((hwm / 1024)) MiB; lost to rotation $rot"
du -sh "$WORK/archive" | awk '{print "archive " $1}'; echo "flows files committed: $(find "$WORK/archive/flows" -name "*.parquet" | wc -l), stats files: $(find "$WORK/archive/stats" -name "*.parquet" | wc -l)"
echo "flows bytes per flow kept: $(find "$WORK/archive/flows" -name "part-*.parquet" -printf '%s\n' | awk -v k="$kept" '{s+=$1} END {printf "%.2f", s/(k>0?k:1)}')"
