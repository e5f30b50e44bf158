# Shared helpers of the whole-process benchmark harnesses
# (ingest_bench.sh, network_bench.sh). Source it; it defines functions only.
#
# Needs: CACHE (cold|warm) set by the caller.

# prepare_cache PATH...: the same cache state before every timed step.
# cold: drop the page cache; warm: read every given file (or directory tree).
prepare_cache() {
  sync
  if [ "$CACHE" = cold ]; then
    echo 3 > /proc/sys/vm/drop_caches
  else
    local f
    for f in "$@"; do
      if [ -d "$f" ]; then find "$f" -type f -exec cat {} + > /dev/null
      elif [ -f "$f" ]; then cat "$f" > /dev/null; fi
    done
  fi
  return 0
}

# elapsed_s T0_NS T1_NS: seconds between two `date +%s%N` readings.
elapsed_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# bench_agg RESULTS NAME COLUMN median|min|max|all: aggregate a column of a
# tab-separated results file (column 2 = step name) over the rounds, in
# round order for "all". COLUMN 8 means column 4 + column 5.
bench_agg() {
  awk -F'\t' -v n="$2" -v c="$3" -v f="$4" '
    $2 == n { v[k++] = (c == 8) ? $4 + $5 : $c }
    END {
      if (k == 0) exit
      if (f == "all") { s = v[0]; for (i = 1; i < k; i++) s = s "," v[i]; print s; exit }
      for (i = 0; i < k; i++) for (j = i + 1; j < k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      if (f == "min") print v[0]
      else if (f == "max") print v[k - 1]
      else print (k % 2) ? v[int(k / 2)] : (v[k / 2 - 1] + v[k / 2]) / 2
    }' "$1"
}

# div A B: A / B to two decimals, "-" when B is not positive or A is empty.
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "-" }'; }
