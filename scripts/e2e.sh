#!/usr/bin/env bash
# End-to-end: run the demo with the built binary, render its HTML report in
# headless Chromium (Debian's chromium, installed here if missing), and keep a
# screenshot in out/report.png. `make e2e` runs it after `make build`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
bin=${FLOWAUDIT:-bin/flowaudit}   # the binary under test (make e2e builds bin/flowaudit)
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" demo --dir "$work" --rate 0.5
report="$work/report-2026-01.html"
profile=$(mktemp -d)
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync "--user-data-dir=$profile")
chromium "${flags[@]}" --dump-dom "file://$report" > out/report-dom.html 2>/dev/null
for title in "Findings" "Collection coverage" "Verdict totals" "Denied traffic" "Privileged paths" "Integrity" "Control mapping" "Sign-off"; do
  grep -q "$title" out/report-dom.html || { echo "e2e: rendered report lacks section '$title'"; exit 1; }
done
chromium "${flags[@]}" --window-size=1280,2400 --screenshot="$PWD/out/report.png" "file://$report" 2>/dev/null
size=$(stat -c %s out/report.png)
[ "$size" -gt 20000 ] || { echo "e2e: screenshot too small ($size bytes)"; exit 1; }
echo "e2e: report rendered; screenshot out/report.png ($size bytes)"
