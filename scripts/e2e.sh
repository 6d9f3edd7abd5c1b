#!/usr/bin/env bash
# End-to-end: run the demo with the built binary (a generated month of three
# nodes), render its report in headless Chromium in English and Korean, print
# each to PDF and check the printed pages: the findings summary on page 1 (one
# status per finding of the report's JSON), the manifest chain heads and the
# page number in every page's footer. Debian's chromium, poppler-utils and a
# Korean font are installed here if missing. Screenshots and PDFs are kept in
# out/. `make e2e` runs it after `make build`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
bin=${FLOWAUDIT:-bin/flowaudit}   # the binary under test (make e2e builds bin/flowaudit)
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pdftotext >/dev/null 2>&1 || need+=(poppler-utils)
command -v python3 >/dev/null 2>&1 || need+=(python3)
fc-list :lang=ko 2>/dev/null | grep -q . || need+=(fonts-nanum)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
profile=$(mktemp -d)
if [ -n "${E2E_DEMO:-}" ]; then   # a directory an earlier `flowaudit demo --dir` wrote: checks only
  work=$E2E_DEMO
  trap 'rm -rf "$profile"' EXIT
else
  work=$(mktemp -d)
  trap 'rm -rf "$work" "$profile"' EXIT
  "$bin" demo --dir "$work"
fi
checks=(--month 2026-01 --archive "$work/archive" --zones "$work/zones.yaml" --coverage-target 99.9 --retention-min 12mo)
"$bin" report "${checks[@]}" --format json --out "$work/report.json"
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync "--user-data-dir=$profile")

# The findings' statuses as the JSON gives them: "holds violated not_evaluated" counts.
read -r holds violated unevaluated < <(python3 -c '
import json,sys
f=json.load(open(sys.argv[1]))["findings"]
print(*[sum(x["status"]==s for x in f) for s in ("holds","violated","not_evaluated")])' "$work/report.json")
heads=$(python3 -c '
import json,sys
h=json.load(open(sys.argv[1]))["integrity"]["chain_heads"]
print(" ".join(v[:16] for k,v in sorted(h.items())))' "$work/report.json")

for lang in en ko; do
  html="$work/report-$lang.html"
  "$bin" report "${checks[@]}" --format html --lang "$lang" --out "$html"
  chromium "${flags[@]}" --dump-dom "file://$html" > "out/report-$lang-dom.html" 2>/dev/null
  case $lang in
    en) titles=("Findings" "Collection coverage" "Verdict totals" "Denied traffic" "Privileged paths" "Integrity" "Control mapping" "Sign-off")
        status=("holds" "VIOLATED" "not evaluated") ;;
    ko) titles=("점검 결과 요약" "수집 커버리지" "판정별 합계" "차단된 트래픽" "특권 경로" "무결성" "통제 항목" "승인")
        status=("충족" "위반" "평가 안 됨") ;;
  esac
  for t in "${titles[@]}"; do
    grep -q "$t" "out/report-$lang-dom.html" || { echo "e2e: $lang: rendered report lacks section '$t'"; exit 1; }
  done
  chromium "${flags[@]}" --window-size=1280,2400 --screenshot="$PWD/out/report-$lang.png" "file://$html" 2>/dev/null
  size=$(stat -c %s "out/report-$lang.png")
  [ "$size" -gt 20000 ] || { echo "e2e: $lang: screenshot too small ($size bytes)"; exit 1; }
  chromium "${flags[@]}" --no-pdf-header-footer --print-to-pdf="$PWD/out/report-$lang.pdf" "file://$html" 2>/dev/null
  pages=$(pdfinfo "out/report-$lang.pdf" | awk '/^Pages:/{print $2}')
  [ "$pages" -gt 5 ] || { echo "e2e: $lang: the PDF has $pages pages, want a page per section"; exit 1; }
  page1=$(pdftotext -layout -f 1 -l 1 "out/report-$lang.pdf" - | tr -s ' ')
  grep -q "1\. ${titles[0]}" <<<"$page1" || { echo "e2e: $lang: page 1 lacks the findings summary '1. ${titles[0]}'"; echo "$page1"; exit 1; }
  # Every finding's row is on page 1: its status is printed there.
  i=0
  for want in "$holds" "$violated" "$unevaluated"; do
    got=$(grep -o "${status[$i]}" <<<"$page1" | wc -l)
    [ "$got" -ge "$want" ] || { echo "e2e: $lang: page 1 shows '${status[$i]}' $got times, the report has $want such findings"; echo "$page1"; exit 1; }
    i=$((i+1))
  done
  # Every page's footer (its last line): the chain heads the report was
  # computed from, and the page number at its end.
  for p in 1 "$pages"; do
    footer=$(pdftotext -layout -f "$p" -l "$p" "out/report-$lang.pdf" - | tr -d '\f' | grep -v '^[[:space:]]*$' | tail -1)
    for h in $heads; do
      grep -q "$h" <<<"$footer" || { echo "e2e: $lang: page $p's footer lacks chain head $h: $footer"; exit 1; }
    done
    [[ $footer =~ [[:space:]]$p[[:space:]]*$ ]] || { echo "e2e: $lang: page $p's footer does not end with its number: $footer"; exit 1; }
  done
  pdftoppm -f 1 -l 1 -r 70 -png "out/report-$lang.pdf" "out/report-$lang-page"
  echo "e2e: $lang: rendered, $pages pages printed; page 1 holds the $((holds+violated+unevaluated)) findings; chain heads in the footer"
done
echo "e2e: screenshots and PDFs in out/"
