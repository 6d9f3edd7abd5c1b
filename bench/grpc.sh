#!/usr/bin/env bash
# The daemon following the agent's socket against following events.log, for
# the same flows at the same rate (issue #31): in one run, alternately,
#   socket: Cilium v1.18.4's agent-side observer on a unix socket
#           (test/compat/cmd/hubble-agent), fed in real time with gen's
#           flows, read by `flowaudit run --source unix://…`;
#   file:   `flowaudit gen --realtime` writing the same flows (same seed,
#           no lost_events or agent_event lines) through lumberjack
#           (10 MiB x 5), read by `flowaudit run --source file:…`;
# each with every field and with the docs-example mask. For each run: the
# daemon's CPU (utime+stime from /proc/PID/stat) and peak RSS (VmHWM from
# /proc/PID/status), read once it has caught up and before it is stopped;
# the rate the feeder held; the flows the daemon kept; Hubble's lost events
# (the observer's ring overrun by a reader that falls behind).
# Then per mask the medians and the median of the per-pair ratios
# socket/file (runs made one after the other).
# Usage: RATE=20000 SECS=30 RUNS=3 bench/grpc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-20000}
SECS=${SECS:-30}
RUNS=${RUNS:-3}
SEED=${SEED:-7}
# The agent's ring (--hubble-event-buffer-capacity): Cilium's default 4,095
# lasts 0.2 s at 20k flows/s, less than a reader on a loaded machine may
# wait for a core; 65,535 (the most Cilium allows) lasts 3.3 s.
RING=${RING:-65535}
DOCMASK=time,source.namespace,source.pod_name,destination.namespace,destination.pod_name,l4,IP,node_name,is_reply,verdict,drop_reason_desc
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
go build -o "$WORK/flowaudit" ./cmd/flowaudit
(cd test/compat && CGO_ENABLED=0 go build -o "$WORK/hubble-agent" ./cmd/hubble-agent)
FA=$WORK/flowaudit
TICK=$(getconf CLK_TCK)

# free_port: a loopback TCP port nothing listens on (this machine is shared).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

metric() { curl -s "127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {print s + 0}'; }

# caught_up: the daemon's lines read did not change for 2 s.
caught_up() {
  local last=-1 now
  for _ in $(seq 120); do
    kill -0 "$pid" || { echo "the daemon exited:"; cat "$dir/run.log"; return 1; } >&2
    now=$(metric flowaudit_ingest_lines_total)
    [ "$now" = "$last" ] && return 0
    last=$now; sleep 2
  done
  echo "the daemon did not catch up" >&2; return 1
}

# one MODE MASKNAME: one run; appends "mode mask cpu_s hwm_kib kept lost fedrate" to $WORK/results.
one() {
  local mode=$1 maskname=$2 mask=() dir src pid feeder fedrate
  [ "$maskname" = docs ] && mask=(--fieldmask "$DOCMASK")
  dir=$(mktemp -d "$WORK/run.XXXX"); mkdir -p "$dir/hubble"
  PORT=$(free_port)
  if [ "$mode" = socket ]; then
    "$WORK/hubble-agent" -socket "$dir/hubble.sock" -rate "$RATE" -seconds "$SECS" -seed "$SEED" -ring "$RING" > "$dir/agent.out" &
    feeder=$!
    for _ in $(seq 100); do [ -S "$dir/hubble.sock" ] && break; sleep 0.1; done
    src=unix://$dir/hubble.sock
  else
    src=file:$dir/hubble/events.log
  fi
  "$FA" run --source "$src" "${mask[@]}" --archive "$dir/archive" --node prod-kr1/node-01 \
    --listen "127.0.0.1:$PORT" --log-level warn --stats-interval 10s 2>"$dir/run.log" &
  pid=$!
  if [ "$mode" = socket ]; then
    # The agent feeds once the daemon has opened its stream, then says what it fed.
    until grep -q '^fed ' "$dir/agent.out"; do
      kill -0 "$pid" || { echo "the daemon exited:"; cat "$dir/run.log"; return 1; } >&2
      sleep 1
    done
    fedrate=$(awk '/^fed / {print $7}' "$dir/agent.out")
  else
    sleep 1
    local t0 t1
    t0=$(date +%s.%N)
    "$FA" gen --realtime --nodes 1 --rate "$RATE" --duration "${SECS}s" --seed "$SEED" --lost-events-every -1 --agent-events-every -1 \
      --out "$dir/hubble/events.log" --max-size-mb 10 --max-backups 5
    t1=$(date +%s.%N)
    # gen's lines over its wall time (lumberjack has deleted most of them by now).
    fedrate=$(awk -v l="$((RATE * SECS))" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", l / (b - a)}')
  fi
  caught_up
  local ut st hwm kept lost
  read -r ut st < <(awk '{print $14, $15}' "/proc/$pid/stat")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
  kept=$(metric flowaudit_pipeline_flows_kept_total)
  lost=$(metric flowaudit_pipeline_lost_events_total)
  kill -TERM "$pid"; wait "$pid" || true
  [ -n "${feeder:-}" ] && { kill -TERM "$feeder"; wait "$feeder" || true; }
  local cpu
  cpu=$(awk -v u="$ut" -v s="$st" -v t="$TICK" 'BEGIN {printf "%.2f", (u + s) / t}')
  printf '%-6s %-5s cpu %6.2f s  VmHWM %4d MiB  kept %8d  lost %6d  feeder held %6d flows/s\n' "$mode" "$maskname" "$cpu" $((hwm / 1024)) "$kept" "$lost" "$fedrate"
  echo "$mode $maskname $cpu $hwm $kept $lost $fedrate" >> "$WORK/results"
  rm -rf "$dir"
}

echo "rate $RATE flows/s for $SECS s, $RUNS runs each, alternating; the agent's ring $RING; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
  for m in all docs; do
    if [ $((i % 2)) = 1 ]; then one socket "$m"; one file "$m"; else one file "$m"; one socket "$m"; fi
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# Per mask: medians, and the median of the per-pair ratios socket/file.
for m in all docs; do
  awk -v m="$m" '
    $2 == m && $1 == "socket" {sc[++ns] = $3; sr[ns] = $4; sk[ns] = $5}
    $2 == m && $1 == "file" {fc[++nf] = $3; fr[nf] = $4; fk[nf] = $5}
    function med(a, n,  i, j, t, b) { for (i = 1; i <= n; i++) b[i] = a[i]; for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) {t = b[i]; b[i] = b[j]; b[j] = t}; return b[int((n + 1) / 2)] }
    END {
      for (i = 1; i <= ns; i++) {cr[i] = sc[i] / fc[i]; rr[i] = sr[i] / fr[i]; us[i] = 1e6 * sc[i] / sk[i]; uf[i] = 1e6 * fc[i] / fk[i]}
      printf "%-5s median CPU socket %.2f s (%.1f us/flow), file %.2f s (%.1f us/flow): socket/file %.2f; median VmHWM socket %d MiB, file %d MiB: socket/file %.2f\n",
        m, med(sc, ns), med(us, ns), med(fc, nf), med(uf, nf), med(cr, ns), med(sr, ns) / 1024, med(fr, nf) / 1024, med(rr, ns)
    }' "$WORK/results"
done
