#!/usr/bin/env bash
# An archive in object storage: a generated month of FLOWS flows (3 nodes) is
# imported, shipped to a local versitygw (the S3 server the tests run; on
# the same machine, so the figures are flowaudit's CPU and request pattern,
# not a network's bandwidth), and then `flowaudit report` and `verify` read
# the bucket in place and the directory, alternately, RUNS times each.
# Usage: FLOWS=2000000 RUNS=3 bench/s3.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${FLOWS:-2000000}
RUNS=${RUNS:-3}
WORK=$(mktemp -d)
trap 'kill "$GW" 2>/dev/null || true; rm -rf "$WORK"' EXIT
go build -o "$WORK/flowaudit" ./cmd/flowaudit
VERSITYGW=$(sed -n 's/^const Version = "\(.*\)"/\1/p' internal/s3test/s3test.go)
GOBIN="$WORK" CGO_ENABLED=0 GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW"
FA=$WORK/flowaudit
echo "# machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
mkdir -p "$WORK/s3/data/audit" "$WORK/s3/meta" "$WORK/s3/versions"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$WORK/versitygw" --access bench --secret bench-secret --port "127.0.0.1:$PORT" --quiet \
  posix --sidecar "$WORK/s3/meta" --versioning-dir "$WORK/s3/versions" "$WORK/s3/data" &
GW=$!
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
until curl -s "$AWS_ENDPOINT_URL" >/dev/null; do sleep 0.1; done

# FLOWS over January in parts of at most 5M flows, as bench/report.sh.
PARTS=$(( (FLOWS + 4999999) / 5000000 ))
PER=$(( FLOWS / PARTS ))
RATE=$(echo "$FLOWS / (3 * 31 * 86400)" | bc -l)
ARCHIVE=$WORK/archive
for i in $(seq 0 $((PARTS - 1))); do
  start=$(date -u -d "@$(( $(date -u -d 2026-01-01 +%s) + i * 31 * 86400 / PARTS ))" +%Y-%m-%dT%H:%M:%SZ)
  "$FA" gen --seed $((2 + i)) --nodes 3 --rate "$RATE" --count "$PER" --start "$start" > "$WORK/ev-$i.log"
  "$FA" import --progress never --archive "$ARCHIVE" "$WORK/ev-$i.log" >/dev/null
  rm "$WORK/ev-$i.log"
done
echo "# archive: $FLOWS flows, $(du -sm "$ARCHIVE" | cut -f1) MiB in $(find "$ARCHIVE" -name 'part-*.parquet' | wc -l) files"

# shellcheck source=bench/lib.sh
source bench/lib.sh
/usr/bin/time -f '%e %U %S %M' -o "$WORK/ship.txt" "$FA" ship --archive "$ARCHIVE" --to s3://audit/bench >/dev/null
read -r T U S M < "$WORK/ship.txt"
printf '%-44s %7.2fs wall, %.2fs CPU, maxRSS %d MiB\n' "flowaudit ship (the whole archive)" "$T" "$(echo "$U + $S" | bc -l)" $((M / 1024))

for n in 1 2; do
  A=(env GOMAXPROCS=$n "$FA" report --month 2026-01 --archive s3://audit/bench --format json --parallel $n --out "$WORK/r3.json")
  B=(env GOMAXPROCS=$n "$FA" report --month 2026-01 --archive "$ARCHIVE" --format json --parallel $n --out "$WORK/rl.json")
  measure_pair "report of the bucket, $n thread(s)" "report of the directory, $n thread(s)"
  printf '%-44s %.2f×\n' "bucket / directory (median of pairs)" "$(cat "$WORK/last_ratio")"
done
A=("$FA" verify --archive s3://audit/bench)
B=("$FA" verify --archive "$ARCHIVE")
measure_pair "verify of the bucket" "verify of the directory"
printf '%-44s %.2f×\n' "bucket / directory (median of pairs)" "$(cat "$WORK/last_ratio")"
