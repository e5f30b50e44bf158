#!/usr/bin/env bash
# network_bench.sh: a backup of the benchmark image through the network path
# (cairn-server with its embedded media agent + cairn-agent over mutual TLS
# on loopback, `cairnctl backup start --wait`, timed from the start command
# to the job's end) as a ratio against the storage core's local ingest of the
# same image (`cairn-agent backup --store`, target >= 0.8) and against
# `restic backup` to a local repository. Plain and encrypted policies. Also a
# network restore (compared with the image). Method: tests/bench/README.md,
# figures: docs/performance.md ("Network path").
#
# usage: network_bench.sh [--image PATH | --size SIZE] [--workdir DIR]
#                         [--bin-dir DIR] [--cache cold|warm] [--rounds N]
#                         [--nice N] [--peers all|none] [--json-out FILE]
#                         [--net-threads N] [--step-timeout SEC] [--keep]
#
#   --image PATH   image to back up (default: make-usr-image.sh's cached
#                  $CAIRN_BENCH_CACHE/usr-SIZE.img, default
#                  /var/tmp/cairn-bench/usr-2G.img)
#   --size SIZE    size of that default image (default 2G)
#   --workdir DIR  where repositories, daemons' state and the restored image
#                  go (a fresh subdirectory, removed at exit; default /var/tmp)
#   --bin-dir DIR  Cairn build directory (default build-release, else build)
#   --cache cold   (default) sync + drop_caches before every timed step, for
#                  every tool (needs root); warm: read the input once first
#   --rounds N     repeat everything N times (default 1); odd rounds run Cairn
#                  local first, even rounds the network path first. Medians.
#   --nice N       every timed step (and the two daemons) under nice -n N
#   --peers none   skip restic
#   --net-threads N  `cairn-agent run --threads N` for the network steps
#                  (default: the daemon's own, one per core)
#
# Ratios: Cairn network throughput / peer throughput = peer seconds /
# network seconds; above 1 means the network path is faster. The daemons
# start (and the agent connects) before the timed step; each network step
# uses a fresh server state directory and store. Peak RSS: /usr/bin/time -v
# for one-shot tools, VmHWM for the daemons (read before they stop).
# Not run by ctest: run it by hand.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

IMAGE="" SIZE=2G WORKBASE=/var/tmp BIN_DIR="" CACHE=cold ROUNDS=1 NICE=0 PEERS=all
JSON_OUT="" STEP_TIMEOUT=1800 KEEP=0 NET_THREADS=""
die() { echo "network_bench: $*" >&2; exit 1; }
# shellcheck source=tests/bench/lib_bench.sh
. "$(dirname "$0")/lib_bench.sh"
while [ $# -gt 0 ]; do
  case "$1" in
    --image) IMAGE=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --workdir) WORKBASE=$2; shift 2 ;;
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --nice) NICE=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --json-out) JSON_OUT=$2; shift 2 ;;
    --step-timeout) STEP_TIMEOUT=$2; shift 2 ;;
    --net-threads) NET_THREADS=$2; shift 2 ;;
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
    if [ -x "$d/server/cairn-server" ]; then BIN_DIR=$d; break; fi
  done
fi
SERVER_BIN="$BIN_DIR/server/cairn-server"
AGENT_BIN="$BIN_DIR/agent/cairn-agent"
CTL_BIN="$BIN_DIR/cli/cairnctl"
MEDIA_BIN="$BIN_DIR/media_agent/cairn-media"
for b in "$SERVER_BIN" "$AGENT_BIN" "$CTL_BIN" "$MEDIA_BIN"; do
  [ -x "$b" ] || die "no $b (build first, or --bin-dir)"
done
for tool in /usr/bin/time timeout cmp awk; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh)"
done
[ "$PEERS" = none ] || command -v restic >/dev/null || die "restic is missing"
if [ "$CACHE" = cold ]; then
  { sync && echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null ||
    die "--cache cold needs root (writes /proc/sys/vm/drop_caches); use --cache warm"
fi

if [ -z "$IMAGE" ]; then
  IMAGE="${CAIRN_BENCH_CACHE:-/var/tmp/cairn-bench}/usr-$SIZE.img"
  "$HERE/make-usr-image.sh" "$IMAGE" "$SIZE"
fi
[ -f "$IMAGE" ] || die "no image at $IMAGE"
IMAGE=$(cd "$(dirname "$IMAGE")" && pwd)/$(basename "$IMAGE")
IMG_BYTES=$(stat -c %s "$IMAGE")

# The daemons' helpers (port, enrollment, start/stop, cleanup trap).
# shellcheck source=../e2e/lib_network.sh
. "$ROOT/tests/e2e/lib_network.sh"
mkdir -p "$WORKBASE"
NET_WORKBASE=$WORKBASE
net_setup network-bench
W=$WORK
[ "$KEEP" = 1 ] && export KEEP_WORK=1
mkdir -p "$W/logs"
RESULTS="$W/results.tsv"   # round name wall_s cpu_s rss_kib(max) extra_rss_kib
: > "$RESULTS"
export RESTIC_PASSWORD=cairn-bench RESTIC_CACHE_DIR="$W/restic-cache"

record() {  # record NAME WALL CPU RSS_KIB [EXTRA_RSS_KIB]
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$1" "$2" "$3" "$4" "${5:-0}" >> "$RESULTS"
  printf '  r%s %-22s %8.2f s  %8.1f MB/s  rss %7.1f MiB%s\n' "$ROUND" "$1" "$2" \
    "$(awk -v b="$IMG_BYTES" -v s="$2" 'BEGIN { print b / s / 1e6 }')" \
    "$(awk -v k="$4" 'BEGIN { print k / 1024 }')" \
    "$([ "${5:-0}" != 0 ] && awk -v k="$5" 'BEGIN { printf " (agent %.1f MiB)", k / 1024 }')" >&2
}
# timed NAME -- CMD...: a one-shot tool under /usr/bin/time -v.
timed() {
  local name=$1; shift 2
  prepare_cache "$IMAGE"
  local log="$W/logs/r$ROUND-$name" t0 t1 rc=0
  t0=$(date +%s%N)
  /usr/bin/time -v -o "$log.time" nice -n "$NICE" timeout "$STEP_TIMEOUT" "$@" \
    > "$log.out" 2> "$log.err" || rc=$?
  t1=$(date +%s%N)
  [ "$rc" -eq 0 ] || { tail -n 20 "$log.err" "$log.out" >&2; die "step $name failed (exit $rc)"; }
  local cpu rss
  cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {print u + s}' "$log.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log.time")
  record "$name" "$(elapsed_s "$t0" "$t1")" "$cpu" "$rss"
}
proc_cpu_s() {  # user+sys seconds of a live process
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

run_local() {
  "$MEDIA_BIN" store init --store "$W/local-plain" > /dev/null
  timed local_plain -- "$AGENT_BIN" backup --store "$W/local-plain" --source "$IMAGE" \
    --name bench --json --quiet
  rm -rf "$W/local-plain"
  "$MEDIA_BIN" key generate --out "$W/data.key" > /dev/null
  "$MEDIA_BIN" store init --store "$W/local-key" > /dev/null
  timed local_key -- "$AGENT_BIN" backup --store "$W/local-key" --source "$IMAGE" \
    --name bench --key-file "$W/data.key" --json --quiet
  rm -rf "$W/local-key" "$W/data.key"
}

# net_step NAME [--encrypt]: fresh server + agent, timed backup --wait (and,
# for the plain policy, a timed restore compared with the image).
net_step() {
  local name=$1; shift
  rm -rf "$W/server" "$W/repo" "$W/agent" "$W"/agent.enroll.json
  NET_SERVER_STARTS=0
  net_server_init "$@" > /dev/null
  net_server_start
  local client
  client=$(net_enroll bench "$W/agent")
  net_agent_start "$W/agent" "$W/logs/r$ROUND-$name-agent.log" \
    ${NET_THREADS:+--threads "$NET_THREADS"}
  renice -n "$NICE" -p "$SERVER_PID" "$AGENT_PID" > /dev/null 2>&1 || true
  wait_until 30 client_connected "$client" || die "the agent did not connect"
  local s0 a0 t0 t1 s1 a1
  prepare_cache "$IMAGE"
  s0=$(proc_cpu_s "$SERVER_PID"); a0=$(proc_cpu_s "$AGENT_PID")
  t0=$(date +%s%N)
  timeout "$STEP_TIMEOUT" "$CTL_BIN" --server "$ADDR" --cred-dir "$W/server/admin" --json \
    backup start --client "$client" --source "$IMAGE" --wait > "$W/logs/r$ROUND-$name.out" ||
    die "network backup failed: $(cat "$W/logs/r$ROUND-$name.out")"
  t1=$(date +%s%N)
  s1=$(proc_cpu_s "$SERVER_PID"); a1=$(proc_cpu_s "$AGENT_PID")
  record "$name" "$(elapsed_s "$t0" "$t1")" \
    "$(awk -v a="$s0" -v b="$s1" -v c="$a0" -v d="$a1" 'BEGIN { print b - a + d - c }')" \
    "$(peak_rss_kib "$SERVER_PID")" "$(peak_rss_kib "$AGENT_PID")"
  if [ "$name" = net_plain ]; then
    local id
    id=$(json_field backup_id < "$W/logs/r$ROUND-$name.out")
    prepare_cache
    t0=$(date +%s%N)
    timeout "$STEP_TIMEOUT" "$CTL_BIN" --server "$ADDR" --cred-dir "$W/server/admin" --json \
      restore start --backup "$id" --target "$W/restored.img" --wait > "$W/logs/r$ROUND-restore.out" ||
      die "network restore failed: $(cat "$W/logs/r$ROUND-restore.out")"
    t1=$(date +%s%N)
    record net_restore_plain "$(elapsed_s "$t0" "$t1")" \
      0 "$(peak_rss_kib "$SERVER_PID")" "$(peak_rss_kib "$AGENT_PID")"
    cmp -s "$IMAGE" "$W/restored.img" || die "the network restore differs from the image"
    rm -f "$W/restored.img"
  fi
  stop_pid "$AGENT_PID" TERM
  stop_pid "$SERVER_PID" TERM
  [ "$STOP_RC" -eq 0 ] || die "cairn-server exited $STOP_RC"
  rm -rf "$W/server" "$W/repo" "$W/agent"
}
run_net() { net_step net_plain; net_step net_key --encrypt; }

run_restic() {
  restic init --repo "$W/restic" -q > /dev/null
  timed restic_first -- restic backup --repo "$W/restic" -q "$IMAGE"
  rm -rf "$W/restic" "$W/restic-cache"
}

echo "network_bench: image $IMAGE ($IMG_BYTES bytes), bins $BIN_DIR, work dir $W," \
     "cache $CACHE, nice $NICE, $ROUNDS round(s), agent threads ${NET_THREADS:-default}, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  if [ $((ROUND % 2)) = 1 ]; then run_local; run_net; else run_net; run_local; fi
  [ "$PEERS" = all ] && run_restic
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# agg NAME COLUMN median|min|max (3 wall, 4 cpu, 5 rss, 6 agent rss)
agg() { bench_agg "$RESULTS" "$@"; }

echo
echo "Cairn network benchmark - $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, cache $CACHE, nice $NICE, $ROUNDS round(s)"
echo "image: $IMAGE ($IMG_BYTES bytes); load at start $LOAD_START, at end $LOAD_END"
echo
printf '| %-18s | %8s | %15s | %8s | %8s | %9s | %9s |\n' step seconds range "MB/s" "CPU s" "RSS MiB" "agent MiB"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' -------------------- ---------- ----------------- ---------- ---------- ----------- -----------
STEPS=$(awk -F'\t' '!seen[$2]++ { print $2 }' "$RESULTS")
for s in $STEPS; do
  med=$(agg "$s" 3 median)
  printf '| %-18s | %8.2f | %15s | %8.1f | %8.2f | %9.1f | %9s |\n' "$s" "$med" \
    "$(agg "$s" 3 min)-$(agg "$s" 3 max)" "$(awk -v b="$IMG_BYTES" -v t="$med" 'BEGIN { print b / t / 1e6 }')" \
    "$(agg "$s" 4 median)" "$(awk -v k="$(agg "$s" 5 max)" 'BEGIN { print k / 1024 }')" \
    "$(awk -v k="$(agg "$s" 6 max)" 'BEGIN { if (k > 0) printf "%.1f", k / 1024; else print "-" }')"
done
echo
echo "(network rows: RSS = cairn-server incl. embedded media, agent = cairn-agent daemon; CPU = both)"
echo
echo "ratio = peer seconds / network seconds (medians); >= target is met"
printf '| %-46s | %6s | %7s | %4s |\n' comparison ratio target met
printf '|%s|%s|%s|%s|\n' ------------------------------------------------ -------- --------- ------
RATIO_JSON=""
for row in "network backup, plain vs local ingest, plain|local_plain|net_plain|0.8" \
           "network backup, encrypted vs local ingest, encrypted|local_key|net_key|0.8" \
           "network backup, plain vs restic backup (local repo)|restic_first|net_plain|" \
           "network backup, encrypted vs restic backup (local repo)|restic_first|net_key|"; do
  IFS='|' read -r label peer mine target <<< "$row"
  r=$(div "$(agg "$peer" 3 median)" "$(agg "$mine" 3 median)")
  [ "$r" = - ] && continue
  met=""
  [ -n "$target" ] && met=$(awk -v r="$r" -v t="$target" 'BEGIN { print (r >= t) ? "yes" : "NO" }')
  printf '| %-46s | %6s | %7s | %4s |\n' "$label" "$r" "${target:+>= $target}" "$met"
  RATIO_JSON+="${RATIO_JSON:+, }{\"what\": \"$label\", \"ratio\": $r, \"target\": ${target:-null}}"
done
if [ -n "$JSON_OUT" ]; then
  {
    echo "{\"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"nproc\": $(nproc), \"cache\": \"$CACHE\", \"rounds\": $ROUNDS,"
    echo " \"image_bytes\": $IMG_BYTES, \"load_start\": \"$LOAD_START\", \"load_end\": \"$LOAD_END\","
    echo " \"steps\": {"
    first=1
    for s in $STEPS; do
      [ $first = 1 ] || echo ","
      first=0
      printf '  "%s": {"seconds": %s, "cpu_s": %s, "rss_kib": %s, "agent_rss_kib": %s}' "$s" \
        "$(agg "$s" 3 median)" "$(agg "$s" 4 median)" "$(agg "$s" 5 max)" "$(agg "$s" 6 max)"
    done
    echo
    echo " },"
    echo " \"ratios\": [$RATIO_JSON]}"
  } > "$JSON_OUT"
  echo "network_bench: wrote $JSON_OUT" >&2
fi
