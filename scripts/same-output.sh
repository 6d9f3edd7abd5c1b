#!/usr/bin/env bash
# Shows that a change of the code changes no output: builds flowaudit at BASE
# (default main) and from the working tree, runs both on the same generated
# input, and compares
#   - `flowaudit filter` output, byte for byte, for filters over every
#     FlowFilter dimension, a denylist, CEL and field masks;
#   - the Parquet files `flowaudit import` writes (flows, stats, losses),
#     byte for byte, and the manifests with the random part of file names and
#     the hashes over them set aside;
#   - `flowaudit report --format json` over those archives (without its
#     generation time, the chain heads, which hash the file names, and the
#     random part of the file names its queries list);
#   - the daemon (`flowaudit run --source file:`) following the input until
#     it has read every line: the report over its archive, as above (its
#     files are cut by batch timing, so only their contents can compare).
# It prints one line a comparison and exits 1 if any differs.
#
#   scripts/same-output.sh                  # main vs the working tree, 200,000 lines
#   BASE=v0.3.0 LINES=1000000 scripts/same-output.sh
#   JOBS=filter,import scripts/same-output.sh   # skip the daemon
#   KEEP=1 scripts/same-output.sh              # keep the work directory
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-main}
LINES=${LINES:-200000}
JOBS=${JOBS:-filter,import,run}
WORK=$(mktemp -d /tmp/flowaudit-same.XXXXXX)
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$WORK"' EXIT; else echo "# work dir: $WORK"; fi

# Both binaries alike but for the code: no VCS stamp, the same version.
build() { # dir out
  (cd "$1" && CGO_ENABLED=0 go build -buildvcs=false -trimpath \
    -ldflags '-X github.com/flowaudit/flowaudit/internal/buildinfo.Version=same-output' -o "$2" ./cmd/flowaudit)
}
mkdir "$WORK/base-src"
git archive "$BASE" | tar -x -C "$WORK/base-src"
build "$WORK/base-src" "$WORK/base"
build . "$WORK/head"
echo "# $BASE ($(git rev-parse --short "$BASE")) vs the working tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ', modified')), $LINES lines"

IN="$WORK/events.log"
"$WORK/head" gen --seed 1 --nodes 3 --rate 1000 --count "$LINES" --start 2026-01-01T00:00:00Z \
  --lost-events-every 3000 --agent-events-every 2000 > "$IN"

fail=0
same() { # what a b
  if cmp -s "$2" "$3"; then
    echo "same     $1"
  else
    echo "DIFFERS  $1"
    diff "$2" "$3" | head -n 6 | cut -c1-200 | sed 's/^/         /'
    fail=1
  fi
}

if [[ ,$JOBS, == *,filter,* ]]; then
  while IFS='|' read -r name args; do
    [ -n "$name" ] || continue
    for v in base head; do
      # shellcheck disable=SC2086
      eval "\"$WORK/$v\" filter $args -o \"$WORK/filter.$v\" \"$IN\"" 2>"$WORK/filter.$v.err" || echo "exit $?" >>"$WORK/filter.$v"
      cat "$WORK/filter.$v.err" >>"$WORK/filter.$v"
    done
    same "filter $name ($(wc -l <"$WORK/filter.head") lines)" "$WORK/filter.base" "$WORK/filter.head"
  done <<'EOF'
all|
docmask|--fieldmask time,source.namespace,source.pod_name,destination.namespace,destination.pod_name,l4,IP,node_name,is_reply,verdict,drop_reason_desc
verdicts|--allowlist '{"verdict":["DROPPED","AUDIT"]}{"reply":[true],"event_type":[{"type":1}]}'
identities and ips|--allowlist '{"source_identity":[2,3,4]}{"destination_ip":["10.0.0.0/9"],"ip_version":["IPv4"]}{"source_ip_xlated":["1.1.1.1"]}'
k8s|--allowlist '{"source_pod":["payments/"]}{"destination_service":["core/"]}{"source_workload":[{"kind":"Deployment"}]}{"destination_cluster_name":["prod-kr1"]}'
labels|--allowlist '{"source_label":["k8s:app"]}{"destination_label":["k8s:tier in (data,backend)"]}{"node_labels":["kubernetes.io/os=linux"]}' --denylist '{"source_label":["k8s:app=prometheus"]}'
l4|--allowlist '{"protocol":["udp","icmpv4"]}{"destination_port":["443","5432"]}{"tcp_flags":[{"SYN":true}]}{"source_port":["53"]}'
l7|--allowlist '{"dns_query":["\\.kr\\.$"]}{"http_status_code":["5+","404"]}{"http_method":["post"],"http_path":["^/api/"]}{"http_url":["https?://"]}{"destination_fqdn":["*.amazonaws.com"]}'
node and trace|--allowlist '{"node_name":["prod-kr1/node-0*"],"traffic_direction":["INGRESS"]}{"trace_id":["x"]}{"interface":[{"name":"eth0"}]}{"uuid":["x"]}{"drop_reason_desc":["POLICY_DENIED"]}'
denylist masked|--denylist '{"source_pod":["kube-system/"]}{"destination_pod":["kube-system/"]}' --fieldmask time,node_name,verdict,source,destination,l7
cel|--allowlist '{"experimental":{"cel_expression":["_flow.verdict == Verdict.DROPPED || has(_flow.l7.http)"]}}'
EOF
fi

# parts lists an archive's files (the random part of a file name cut off)
# with their hashes, the manifests without the hashes that cover file names.
parts() { # root
  (cd "$1" && find . -name '*.parquet' -type f | sort | while read -r f; do
    printf '%s %s\n' "$(sha256sum <"$f" | cut -c1-64)" "$(echo "$f" | sed -E 's/-[0-9a-f]{12}\.parquet$/.parquet/')"
  done | sort -k2)
  find "$1/manifests" -name '*.jsonl' -type f | sort | while read -r m; do
    echo "${m#"$1"/}"
    jq -c 'del(.hash, .prev, .time) | .path |= sub("-[0-9a-f]{12}\\.parquet$"; ".parquet")' "$m"
  done
}
report() { # root out
  (cd "$(dirname "$1")" && "$WORK/$3" report --archive "$(basename "$1")" --month 2026-01 --format json) |
    jq 'del(.generated, .integrity.chain_heads)' | sed -E 's/-[0-9a-f]{12}\.parquet/.parquet/g' >"$2"
}

if [[ ,$JOBS, == *,import,* ]]; then
  while IFS='|' read -r name args; do
    [ -n "$name" ] || continue
    for v in base head; do
      mkdir -p "$WORK/import.$v/$name"
      eval "\"$WORK/$v\" import --progress never --archive \"$WORK/import.$v/$name/archive\" $args \"$IN\"" >"$WORK/import.$v.out" 2>&1
      sed "s#$WORK/import.$v#ROOT#g" "$WORK/import.$v.out" >"$WORK/import.$v.log"
      parts "$WORK/import.$v/$name/archive" >"$WORK/parts.$v"
      report "$WORK/import.$v/$name/archive" "$WORK/report.$v" "$v"
    done
    same "import $name: summary" "$WORK/import.base.log" "$WORK/import.head.log"
    same "import $name: Parquet files and manifests ($(grep -c parquet "$WORK/parts.head") files)" "$WORK/parts.base" "$WORK/parts.head"
    same "import $name: report JSON" "$WORK/report.base" "$WORK/report.head"
  done <<'EOF'
all|
filtered|--allowlist '{"verdict":["DROPPED","AUDIT"]}{"destination_port":["443"]}{"source_label":["k8s:app"]}' --denylist '{"source_pod":["kube-system/"]}' --fieldmask time,node_name,verdict,source,destination,l4,IP,l7,is_reply,drop_reason_desc
EOF
fi

if [[ ,$JOBS, == *,run,* ]]; then
  want=$(wc -l <"$IN")
  for v in base head; do
    # The same paths for both: the source's id (its path) goes into the
    # archive's config hash.
    rm -rf "$WORK/run"
    mkdir -p "$WORK/run/hubble"
    cp "$IN" "$WORK/run/hubble/events.log"
    port=$((19000 + RANDOM % 1000))
    "$WORK/$v" run --source "file:$WORK/run/hubble/events.log" --archive "$WORK/run/archive" --node n1 \
      --listen "127.0.0.1:$port" --log-level warn --verify-interval 0 --compaction=false >"$WORK/run.$v.log" 2>&1 &
    pid=$!
    got=0
    for _ in $(seq 1 600); do
      got=$(curl -fs "http://127.0.0.1:$port/metrics" 2>/dev/null | awk '/^flowaudit_ingest_lines_total/{s+=$2} END{printf "%d", s}') || true
      [ "${got:-0}" -ge "$want" ] && break
      sleep 0.5
    done
    kill -TERM "$pid"
    wait "$pid" || true
    [ "${got:-0}" -ge "$want" ] || { echo "run $v: read $got of $want lines"; fail=1; }
    report "$WORK/run/archive" "$WORK/report.$v" "$v"
  done
  same "run file: report JSON" "$WORK/report.base" "$WORK/report.head"
fi

exit $fail
