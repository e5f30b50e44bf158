#!/usr/bin/env bash
# ingest_bench.sh: whole-process throughput and peak-RSS comparison of Cairn
# against restic, borg and zstd on one real disk image, on this machine, in
# this run. Method and figures: docs/performance.md.
#
# usage: ingest_bench.sh [--image PATH | --size SIZE] [--workdir DIR]
#                        [--json-out FILE] [--bin-dir DIR] [--cache cold|warm]
#                        [--peers all|none] [--threads N] [--nice N]
#                        [--rounds N] [--step-timeout SEC] [--keep]
#
#   --image PATH     image to back up (default: an ext4 image of SIZE filled
#                    from /usr by make-usr-image.sh, cached under
#                    $CAIRN_BENCH_CACHE, default /var/tmp/cairn-bench)
#   --size SIZE      size of that default image (default 2G)
#   --workdir DIR    where repositories and restored images go (a fresh
#                    subdirectory is made and removed at exit; default
#                    /var/tmp). Needs about 3x the image size free.
#   --json-out FILE  also write every figure as JSON
#   --bin-dir DIR    Cairn build directory holding agent/cairn-agent and
#                    media_agent/cairn-media (default build-release, else build)
#   --cache cold     (default) `sync; echo 3 > /proc/sys/vm/drop_caches`
#                    before every timed step, for every tool: each step reads
#                    its input from disk. Needs root.
#   --cache warm     instead read the step's input once (cat > /dev/null)
#                    before timing, so every tool starts with it cached.
#   --peers none     only Cairn (for instance the RSS check on a big image)
#   --threads N      passed to cairn-agent (default: its own, one per core)
#   --nice N         run every timed step (every tool alike) under `nice -n N`;
#                    a negative N shields the measurement from other work on a
#                    shared machine (needs root). Default 0.
#   --rounds N       repeat the whole comparison N times (default 1); odd
#                    rounds run Cairn first, even rounds the peers first. The
#                    report gives each step's median (and range), and ratios
#                    of medians: on a shared machine use 3 or more.
#   --keep           keep the work directory
#
# Every timed step runs under `/usr/bin/time -v` (peak RSS, CPU time) and
# `timeout` (--step-timeout, default 1800 s), so the run always ends. Wall
# time is measured around it with nanosecond clock reads. Throughput is
# image bytes / wall seconds (MB = 10^6 bytes); a ratio is Cairn's
# throughput over the peer's (= peer seconds / Cairn seconds), so above 1
# means Cairn is faster. Every restore is compared with the image (cmp).
#
# Not run by ctest (minutes long, and performance is measured, never
# asserted): run it by hand.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

IMAGE="" SIZE=2G WORKBASE=/var/tmp JSON_OUT="" BIN_DIR="" CACHE=cold PEERS=all
THREADS="" STEP_TIMEOUT=1800 KEEP=0 NICE=0 ROUNDS=1
die() { echo "ingest_bench: $*" >&2; exit 1; }
# shellcheck source=tests/bench/lib_bench.sh
. "$(dirname "$0")/lib_bench.sh"
while [ $# -gt 0 ]; do
  case "$1" in
    --image) IMAGE=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --workdir) WORKBASE=$2; shift 2 ;;
    --json-out) JSON_OUT=$2; shift 2 ;;
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --nice) NICE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --step-timeout) STEP_TIMEOUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
case "$CACHE" in cold|warm) ;; *) die "--cache must be cold or warm" ;; esac
case "$PEERS" in all|none) ;; *) die "--peers must be all or none" ;; esac
case "$ROUNDS" in ''|*[!0-9]*|0) die "--rounds must be a positive integer" ;; esac

if [ -z "$BIN_DIR" ]; then
  for d in "$ROOT/build-release" "$ROOT/build"; do
    if [ -x "$d/agent/cairn-agent" ]; then BIN_DIR=$d; break; fi
  done
fi
AGENT="$BIN_DIR/agent/cairn-agent"
MEDIA="$BIN_DIR/media_agent/cairn-media"
[ -x "$AGENT" ] && [ -x "$MEDIA" ] || die "no cairn-agent/cairn-media under '$BIN_DIR' (build first, or --bin-dir)"
for tool in /usr/bin/time timeout cmp awk; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh)"
done
if [ "$PEERS" = all ]; then
  for tool in restic borg zstd; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh)"
  done
fi
if [ "$CACHE" = cold ]; then
  { sync && echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null ||
    die "--cache cold needs root (writes /proc/sys/vm/drop_caches); use --cache warm"
fi

if [ -z "$IMAGE" ]; then
  CACHE_DIR=${CAIRN_BENCH_CACHE:-/var/tmp/cairn-bench}
  IMAGE="$CACHE_DIR/usr-$SIZE.img"
  "$HERE/make-usr-image.sh" "$IMAGE" "$SIZE"
fi
[ -f "$IMAGE" ] || die "no image at $IMAGE"
IMAGE=$(cd "$(dirname "$IMAGE")" && pwd)/$(basename "$IMAGE")
IMG_BYTES=$(stat -c %s "$IMAGE")

mkdir -p "$WORKBASE"
W=$(mktemp -d "$WORKBASE/cairn-ingest-bench.XXXXXX")
cleanup() {
  if [ "$KEEP" = 1 ]; then echo "ingest_bench: kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$W/logs"
RESULTS="$W/results.tsv"   # round  name  wall_s  user_s  sys_s  maxrss_kb  load1
ROUND=1
: > "$RESULTS"

export RESTIC_PASSWORD=cairn-bench RESTIC_CACHE_DIR="$W/restic-cache"
export BORG_PASSPHRASE=cairn-bench BORG_BASE_DIR="$W/borg-base"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
THREAD_ARGS=()
[ -n "$THREADS" ] && THREAD_ARGS=(--threads "$THREADS")


# timed NAME INPUTS -- CMD...: runs CMD with the cache prepared for INPUTS
# (space-separated paths), records wall/user/sys/peak RSS under ROUND, NAME.
# Logs: $W/logs/rROUND-NAME.{out,err,time}.
timed() {
  local name=$1 inputs=$2; shift 3
  # shellcheck disable=SC2086
  prepare_cache $inputs
  local load t0 t1 rc=0
  load=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s%N)
  local log="$W/logs/r$ROUND-$name"
  /usr/bin/time -v -o "$log.time" nice -n "$NICE" timeout "$STEP_TIMEOUT" "$@" \
    > "$log.out" 2> "$log.err" || rc=$?
  t1=$(date +%s%N)
  if [ "$rc" -ne 0 ]; then
    echo "ingest_bench: step $name failed (exit $rc): $*" >&2
    tail -n 20 "$log.err" "$log.out" >&2 || true
    exit 1
  fi
  local user sys rss
  user=$(awk -F': ' '/User time/ {print $2}' "$log.time")
  sys=$(awk -F': ' '/System time/ {print $2}' "$log.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log.time")
  local wall
  wall=$(elapsed_s "$t0" "$t1")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$name" "$wall" "$user" "$sys" "$rss" "$load" \
    >> "$RESULTS"
  printf '  r%s %-28s %8.2f s  %8.1f MB/s  rss %6.1f MiB  (load %s)\n' "$ROUND" "$name" "$wall" \
    "$(awk -v b="$IMG_BYTES" -v s="$wall" 'BEGIN { print b / s / 1e6 }')" \
    "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$load" >&2
}

# json_field STEP KEY: a top-level scalar from cairn's --json output of STEP
# in this round.
json_field() {
  sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" \
    "$W/logs/r$ROUND-$1.out" | head -n 1
}

same_as_image() {  # same_as_image FILE STEP
  if ! cmp -s "$IMAGE" "$1"; then
    echo "ingest_bench: $2 did not restore the image byte for byte ($1)" >&2
    exit 1
  fi
}


CAIRN_PLAIN_REPO=0 CAIRN_KEY_REPO=0 CAIRN_PLAIN_STORED=0
RESTIC_REPO=0 BORG_NONE_REPO=0 BORG_KEY_REPO=0 ZSTD_BYTES=0

run_cairn() {
  "$MEDIA" store init --store "$W/cairn-plain" > /dev/null
  timed cairn_first_plain "$IMAGE" -- \
    "$AGENT" backup --store "$W/cairn-plain" --source "$IMAGE" --name bench --json --quiet \
    "${THREAD_ARGS[@]}"
  local plain_id key_id
  plain_id=$(json_field cairn_first_plain backup_id)
  CAIRN_PLAIN_STORED=$(json_field cairn_first_plain new_stored_bytes)
  # Second ingest of the unchanged image: an image file whose size, inode,
  # mtime and ctime match the parent's is not read again (like restic's and
  # borg's second runs).
  timed cairn_second_plain "$IMAGE $W/cairn-plain" -- \
    "$AGENT" backup --store "$W/cairn-plain" --source "$IMAGE" --name bench --incremental \
    --json --quiet "${THREAD_ARGS[@]}"
  [ "$(json_field cairn_second_plain chunks_new)" = 0 ] ||
    die "second cairn ingest of the unchanged image stored new chunks"
  # The same, made to read and hash the whole image again (as restic --force).
  timed cairn_second_reread_plain "$IMAGE $W/cairn-plain" -- \
    "$AGENT" backup --store "$W/cairn-plain" --source "$IMAGE" --name bench --incremental \
    --force-read --json --quiet "${THREAD_ARGS[@]}"
  [ "$(json_field cairn_second_reread_plain chunks_new)" = 0 ] ||
    die "re-read cairn ingest of the unchanged image stored new chunks"
  timed cairn_restore_plain "$W/cairn-plain" -- \
    "$AGENT" restore --store "$W/cairn-plain" --backup "$plain_id" --target "$W/restored.img" \
    --json --quiet "${THREAD_ARGS[@]}"
  same_as_image "$W/restored.img" cairn_restore_plain
  rm -f "$W/restored.img"

  "$MEDIA" key generate --out "$W/data.key" > /dev/null
  "$MEDIA" store init --store "$W/cairn-key" > /dev/null
  timed cairn_first_key "$IMAGE" -- \
    "$AGENT" backup --store "$W/cairn-key" --source "$IMAGE" --name bench \
    --key-file "$W/data.key" --json --quiet "${THREAD_ARGS[@]}"
  key_id=$(json_field cairn_first_key backup_id)
  timed cairn_second_key "$IMAGE $W/cairn-key" -- \
    "$AGENT" backup --store "$W/cairn-key" --source "$IMAGE" --name bench --incremental \
    --key-file "$W/data.key" --json --quiet "${THREAD_ARGS[@]}"
  timed cairn_second_reread_key "$IMAGE $W/cairn-key" -- \
    "$AGENT" backup --store "$W/cairn-key" --source "$IMAGE" --name bench --incremental \
    --force-read --key-file "$W/data.key" --json --quiet "${THREAD_ARGS[@]}"
  timed cairn_restore_key "$W/cairn-key" -- \
    "$AGENT" restore --store "$W/cairn-key" --backup "$key_id" --target "$W/restored.img" \
    --key-file "$W/data.key" --json --quiet "${THREAD_ARGS[@]}"
  same_as_image "$W/restored.img" cairn_restore_key
  rm -f "$W/restored.img"
  CAIRN_PLAIN_REPO=$(du -sb "$W/cairn-plain" | cut -f1)
  CAIRN_KEY_REPO=$(du -sb "$W/cairn-key" | cut -f1)
  rm -rf "$W/cairn-plain" "$W/cairn-key" "$W/data.key"
}

run_peers() {
  # restic 0.14: always encrypted (AES-256-CTR + Poly1305), repository v2
  # with zstd compression ("auto"). The second run finds the first snapshot
  # as parent and skips the unchanged file by its metadata (no read);
  # --force re-reads and re-hashes it.
  restic init --repo "$W/restic" -q > /dev/null
  timed restic_first "$IMAGE" -- restic backup --repo "$W/restic" -q "$IMAGE"
  timed restic_second "$IMAGE $W/restic" -- restic backup --repo "$W/restic" -q "$IMAGE"
  timed restic_second_force "$IMAGE $W/restic" -- \
    restic backup --repo "$W/restic" -q --force "$IMAGE"
  timed restic_restore "$W/restic" -- \
    restic restore latest --repo "$W/restic" -q --target "$W/restic-out"
  same_as_image "$W/restic-out$IMAGE" restic_restore
  RESTIC_REPO=$(du -sb "$W/restic" | cut -f1)
  rm -rf "$W/restic-out" "$W/restic" "$W/restic-cache"

  # borg 1.2: single-threaded. -e none and -e repokey (AES-256-CTR +
  # HMAC-SHA256). borg keeps a file in its files cache only if it is older
  # than the newest file of the run, so a lone image would be re-read every
  # time; a small stamp file, newer than the image, goes into every archive
  # so that the second run skips the image by metadata as restic's does.
  # --files-cache=disabled re-reads and re-hashes it.
  echo stamp > "$W/stamp"
  local mode tag
  for mode in none repokey; do
    tag=$([ "$mode" = none ] && echo plain || echo key)
    borg init -e "$mode" "$W/borg-$tag" > /dev/null 2>&1
    timed "borg_first_$tag" "$IMAGE" -- \
      borg create --compression zstd,1 "$W/borg-$tag::first" "$IMAGE" "$W/stamp"
    timed "borg_second_$tag" "$IMAGE $W/borg-$tag" -- \
      borg create --compression zstd,1 "$W/borg-$tag::second" "$IMAGE" "$W/stamp"
    timed "borg_second_reread_$tag" "$IMAGE $W/borg-$tag" -- \
      borg create --compression zstd,1 --files-cache=disabled "$W/borg-$tag::third" \
      "$IMAGE" "$W/stamp"
    if [ "$mode" = none ]; then
      mkdir -p "$W/borg-out"
      timed borg_extract_plain "$W/borg-$tag" -- \
        sh -c 'cd "$1" && borg extract "$2::first" "${3#/}"' sh "$W/borg-out" "$W/borg-$tag" \
        "$IMAGE"
      same_as_image "$W/borg-out$IMAGE" borg_extract_plain
      rm -rf "$W/borg-out"
      BORG_NONE_REPO=$(du -sb "$W/borg-$tag" | cut -f1)
    else
      BORG_KEY_REPO=$(du -sb "$W/borg-$tag" | cut -f1)
    fi
    rm -rf "$W/borg-$tag"
  done
  rm -rf "$W/borg-base" "$W/stamp"

  # zstd: compression alone (no hashing, no dedup, no crypto) as a reference
  # for ingest, and `zstd -d` plus an fsync of the output (cairn-agent
  # restore fsyncs its target) as the read-back peer. Both write sparse files.
  timed zstd_compress "$IMAGE" -- zstd -1 -T0 -q -f "$IMAGE" -o "$W/image.zst"
  ZSTD_BYTES=$(stat -c %s "$W/image.zst")
  timed zstd_decompress "$W/image.zst" -- \
    sh -c 'zstd -d -q -f "$1" -o "$2" && sync "$2"' sh "$W/image.zst" "$W/zstd-out.img"
  same_as_image "$W/zstd-out.img" zstd_decompress
  rm -f "$W/image.zst" "$W/zstd-out.img"
}

echo "ingest_bench: image $IMAGE ($IMG_BYTES bytes), work dir $W, cache $CACHE," \
     "nice $NICE, $ROUNDS round(s)" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "ingest_bench: load before start: $LOAD_START" >&2
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  if [ "$PEERS" = none ]; then
    run_cairn
  elif [ $((ROUND % 2)) = 1 ]; then
    run_cairn; run_peers
  else
    run_peers; run_cairn
  fi
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Report -------------------------------------------------------------------
# agg NAME COLUMN median|min|max|all (in round order): over the rounds (columns: 3 wall,
# 4 user, 5 sys, 6 rss, 8 user+sys).
agg() { bench_agg "$RESULTS" "$@"; }
has() { [ -n "$(agg "$1" 3 median)" ]; }
mbps() { awk -v b="$IMG_BYTES" -v s="$1" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }
# Per-round ratios PEER/CAIRN, as "min-max".
ratio_range() {
  awk -F'\t' -v p="$1" -v c="$2" '
    $2 == p { ps[$1] = $3 } $2 == c { cs[$1] = $3 }
    END {
      for (r in ps) if (r in cs) { x = ps[r] / cs[r]; if (n++ == 0 || x < lo) lo = x; if (n == 1 || x > hi) hi = x }
      if (n > 1) printf "%.2f-%.2f", lo, hi; else printf "-"
    }' "$RESULTS"
}
STEPS=$(awk -F'\t' '!seen[$2]++ { print $2 }' "$RESULTS")

echo
echo "Cairn ingest benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, cache $CACHE, nice $NICE, $ROUNDS round(s)"
echo "image: $IMAGE ($IMG_BYTES bytes); load at start $LOAD_START, at end $LOAD_END"
echo "seconds and CPU s: medians over the rounds; RSS: the largest"
echo
printf '| %-26s | %8s | %15s | %8s | %8s | %9s |\n' step seconds "range" "MB/s" "CPU s" "RSS MiB"
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..28})" ---------- ----------------- ---------- ---------- -----------
for name in $STEPS; do
  printf '| %-26s | %8.2f | %15s | %8s | %8.2f | %9.1f |\n' "$name" "$(agg "$name" 3 median)" \
    "$(agg "$name" 3 min)-$(agg "$name" 3 max)" "$(mbps "$(agg "$name" 3 median)")" \
    "$(agg "$name" 8 median)" "$(awk -v k="$(agg "$name" 6 max)" 'BEGIN { print k / 1024 }')"
done

# label|peer step|cairn step|target (empty: none)
RATIOS=(
  "first ingest, no encryption vs restic (encrypted)|restic_first|cairn_first_plain|1.5"
  "first ingest, encrypted vs restic|restic_first|cairn_first_key|1.5"
  "first ingest, no encryption vs borg -e none|borg_first_plain|cairn_first_plain|"
  "first ingest, encrypted vs borg -e repokey|borg_first_key|cairn_first_key|"
  "first ingest, no encryption vs zstd -1 -T0 alone|zstd_compress|cairn_first_plain|"
  "second ingest vs restic second (both skip by metadata)|restic_second|cairn_second_plain|2"
  "second ingest, encrypted vs restic second (both skip)|restic_second|cairn_second_key|2"
  "second --force-read vs restic --force (both re-read)|restic_second_force|cairn_second_reread_plain|2"
  "second --force-read, encrypted vs restic --force|restic_second_force|cairn_second_reread_key|2"
  "second --force-read vs restic second (metadata skip)|restic_second|cairn_second_reread_plain|"
  "second ingest vs borg second (both skip by metadata)|borg_second_plain|cairn_second_plain|"
  "second --force-read vs borg --files-cache=disabled|borg_second_reread_plain|cairn_second_reread_plain|"
  "read back vs zstd -d (+fsync)|zstd_decompress|cairn_restore_plain|"
  "read back, encrypted vs zstd -d (+fsync)|zstd_decompress|cairn_restore_key|"
  "read back vs restic restore|restic_restore|cairn_restore_plain|"
  "read back vs borg extract|borg_extract_plain|cairn_restore_plain|"
)
RATIO_ROWS=()
if [ "$PEERS" = all ]; then
  echo
  echo "ratio = Cairn throughput / peer throughput = peer seconds / Cairn seconds (medians);"
  echo "CPU ratio = peer CPU seconds / Cairn CPU seconds (medians)"
  echo
  printf '| %-56s | %6s | %11s | %7s | %4s | %9s |\n' "comparison" ratio "per round" target met "CPU ratio"
  printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..58})" -------- ------------- --------- ------ -----------
  for row in "${RATIOS[@]}"; do
    IFS='|' read -r label peer mine target <<< "$row"
    has "$peer" && has "$mine" || continue
    r=$(div "$(agg "$peer" 3 median)" "$(agg "$mine" 3 median)")
    rr=$(ratio_range "$peer" "$mine")
    met=""
    if [ -n "$target" ]; then
      met=$(awk -v r="$r" -v t="$target" 'BEGIN { print (r >= t) ? "yes" : "NO" }')
    fi
    cr=$(div "$(agg "$peer" 8 median)" "$(agg "$mine" 8 median)")
    printf '| %-56s | %6s | %11s | %7s | %4s | %9s |\n' "$label" "$r" "$rr" "${target:+>= $target}" \
      "$met" "$cr"
    RATIO_ROWS+=("$label|$peer|$mine|$r|$rr|$target|$met|$cr")
  done
fi
MAX_RSS_KB=0
for s in cairn_first_plain cairn_second_plain cairn_second_reread_plain cairn_first_key \
         cairn_second_key cairn_second_reread_key; do
  k=$(agg "$s" 6 max); [ -n "$k" ] && [ "$k" -gt "$MAX_RSS_KB" ] && MAX_RSS_KB=$k
done
RSS_OK=$(awk -v k="$MAX_RSS_KB" 'BEGIN { print (k < 256 * 1024) ? "yes" : "NO" }')
echo
echo "peak RSS of cairn-agent backup: $(awk -v k="$MAX_RSS_KB" 'BEGIN { printf "%.1f", k / 1024 }') MiB (target < 256 MiB: $RSS_OK)"
echo "stored bytes (last round): cairn plain repo $CAIRN_PLAIN_REPO (chunk payloads $CAIRN_PLAIN_STORED), cairn keyed repo $CAIRN_KEY_REPO"
[ "$PEERS" = all ] &&
  echo "  restic repo $RESTIC_REPO, borg -e none repo $BORG_NONE_REPO, borg repokey repo $BORG_KEY_REPO, zstd -1 file $ZSTD_BYTES"

if [ -n "$JSON_OUT" ]; then
  {
    echo "{"
    echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"host\": {\"nproc\": $(nproc), \"cpu\": \"$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)\", \"kernel\": \"$(uname -r)\"},"
    echo "  \"load_start\": \"$LOAD_START\", \"load_end\": \"$LOAD_END\", \"cache\": \"$CACHE\", \"nice\": $NICE, \"rounds\": $ROUNDS,"
    echo "  \"image\": {\"path\": \"$IMAGE\", \"bytes\": $IMG_BYTES},"
    if [ "$PEERS" = all ]; then
      echo "  \"versions\": {\"restic\": \"$(restic version 2>/dev/null | awk '{print $2}')\", \"borg\": \"$(borg --version 2>/dev/null | awk '{print $2}')\", \"zstd\": \"$(zstd --version 2>/dev/null | sed -n 's/.*v\([0-9.]*\).*/\1/p')\"},"
    fi
    echo "  \"steps\": {"
    n=$(echo "$STEPS" | wc -l); i=0
    for name in $STEPS; do
      i=$((i + 1))
      med=$(agg "$name" 3 median)
      printf '    "%s": {"seconds": %s, "seconds_all": [%s], "mb_per_s": %s, "cpu_s": %s, "max_rss_kib": %s}%s\n' \
        "$name" "$med" "$(agg "$name" 3 all)" "$(mbps "$med")" "$(agg "$name" 8 median)" \
        "$(agg "$name" 6 max)" "$([ $i -lt "$n" ] && echo ,)"
    done
    echo "  },"
    echo "  \"ratios\": ["
    n=${#RATIO_ROWS[@]}; i=0
    for row in "${RATIO_ROWS[@]}"; do
      i=$((i + 1))
      IFS='|' read -r label peer mine r rr target met cr <<< "$row"
      printf '    {"what": "%s", "peer": "%s", "cairn": "%s", "ratio": %s, "per_round": "%s", "cpu_ratio": %s, "target": %s, "met": %s}%s\n' \
        "$label" "$peer" "$mine" "$r" "$rr" "$([ "$cr" = - ] && echo null || echo "$cr")" \
        "${target:-null}" \
        "$([ -z "$met" ] && echo null || { [ "$met" = yes ] && echo true || echo false; })" \
        "$([ $i -lt "$n" ] && echo ,)"
    done
    echo "  ],"
    echo "  \"cairn_backup_max_rss_kib\": $MAX_RSS_KB, \"rss_under_256mib\": $([ "$RSS_OK" = yes ] && echo true || echo false),"
    echo "  \"stored_bytes\": {\"cairn_plain_repo\": $CAIRN_PLAIN_REPO, \"cairn_key_repo\": $CAIRN_KEY_REPO, \"restic_repo\": $RESTIC_REPO, \"borg_none_repo\": $BORG_NONE_REPO, \"borg_repokey_repo\": $BORG_KEY_REPO, \"zstd_file\": $ZSTD_BYTES}"
    echo "}"
  } > "$JSON_OUT"
  echo "ingest_bench: wrote $JSON_OUT" >&2
fi
