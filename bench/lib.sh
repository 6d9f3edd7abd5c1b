# Shared by the bench scripts (sourced). Needs WORK (a scratch directory)
# and RUNS.

# measure NAME CMD...: RUNS runs of CMD; prints min/median/max seconds and
# max RSS, and lines/s at the median when LINES is set; leaves the median in
# $WORK/last_median.
measure() {
  local name=$1; shift
  local times=() rss=0 sorted min med max
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/stderr.txt" || { cat "$WORK/stderr.txt"; return 1; }
    read -r t m < "$WORK/time.txt"
    times+=("$t"); [ "$m" -gt "$rss" ] && rss=$m
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  min=$(echo "$sorted" | head -1); max=$(echo "$sorted" | tail -1)
  med=$(echo "$sorted" | sed -n "$(( (RUNS + 1) / 2 ))p")
  printf '%-44s min %7.2fs  median %7.2fs  max %7.2fs  maxRSS %5d MiB' "$name" "$min" "$med" "$max" $((rss / 1024))
  if [ -n "${LINES:-}" ]; then
    printf '  (%.0f lines/s at median)' "$(echo "$LINES / $med" | bc -l)"
  fi
  printf '\n'
  echo "$med" > "$WORK/last_median"
}
