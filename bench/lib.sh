# Shared by the bench scripts (sourced). Needs WORK (a scratch directory)
# and RUNS.

# measure NAME CMD...: RUNS runs of CMD; prints min/median/max seconds and
# max RSS, and lines/s at the median when LINES is set; leaves the median in
# $WORK/last_median.
measure() {
  local name=$1; shift
  local times=() rss=0
  for _ in $(seq "$RUNS"); do
    timed "$@" || return 1
    times+=("$T"); [ "$M" -gt "$rss" ] && rss=$M
  done
  summary "$name" "$rss" "${times[@]}"
}

# timed CMD...: runs CMD once; sets T (seconds) and M (max RSS, KiB).
timed() {
  /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/stderr.txt" || { cat "$WORK/stderr.txt"; return 1; }
  read -r T M < "$WORK/time.txt"
}

# summary NAME RSS TIME...: prints min/median/max of the times and the RSS
# as measure does; leaves the median in $WORK/last_median.
summary() {
  local name=$1 rss=$2; shift 2
  local sorted min med max
  sorted=$(printf '%s\n' "$@" | sort -n)
  min=$(echo "$sorted" | head -1); max=$(echo "$sorted" | tail -1)
  med=$(echo "$sorted" | sed -n "$(( ($# + 1) / 2 ))p")
  printf '%-44s min %7.2fs  median %7.2fs  max %7.2fs  maxRSS %5d MiB' "$name" "$min" "$med" "$max" $((rss / 1024))
  if [ -n "${LINES:-}" ]; then
    printf '  (%.0f lines/s at median)' "$(echo "$LINES / $med" | bc -l)"
  fi
  printf '\n'
  echo "$med" > "$WORK/last_median"
}

# measure_pair NAME_A NAME_B: runs the commands in the arrays A and B
# alternately, RUNS times each (A B A B ...), so that this shared machine's
# slow and fast spells fall on both sides; prints each as measure does, then
# the median of the RUNS ratios time(A)/time(B) of runs made one after the
# other. Leaves A's median in $WORK/last_median_a, B's in
# $WORK/last_median, the pairs' median ratio in $WORK/last_ratio.
measure_pair() {
  local na=$1 nb=$2 ta=() tb=() ratios=() ra=0 rb=0
  for _ in $(seq "$RUNS"); do
    timed "${A[@]}" || return 1
    ta+=("$T"); [ "$M" -gt "$ra" ] && ra=$M
    timed "${B[@]}" || return 1
    tb+=("$T"); [ "$M" -gt "$rb" ] && rb=$M
    ratios+=("$(echo "${ta[-1]} / $T" | bc -l)")
  done
  summary "$na" "$ra" "${ta[@]}"; cp "$WORK/last_median" "$WORK/last_median_a"
  summary "$nb" "$rb" "${tb[@]}"
  printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p" > "$WORK/last_ratio"
}
