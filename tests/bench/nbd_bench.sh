#!/usr/bin/env bash
# nbd_bench.sh: read throughput of a backup through the NBD export
# (cairn-nbd-export: nbdkit + the Cairn plugin) against reading the store
# directly, with qemu-img and nbdcopy on the raw image as references.
# Figures: docs/performance.md, "NBD export".
#
#   tests/bench/nbd_bench.sh [--bin-dir build] [--image PATH] [--rounds 3]
#                            [--workdir /var/tmp] [--json-out FILE]
#
# Steps, each timed per round (warm page cache: every input is read once
# before the rounds):
#   store-direct     cairn_store_read_bench: every data chunk decoded once
#                    by ImageReader, 2 threads, bytes discarded (baseline)
#   restore-tmpfs    cairn-agent restore to a file on /dev/shm
#   nbdcopy-export   nbdcopy NBD-URI null:     (the export, plain backup)
#   nbdcopy-enc      nbdcopy NBD-URI null:     (the export, encrypted backup)
#   qemu-export      qemu-img convert of the NBD URI to the null-co driver
#   nbdcopy-par, qemu-export-par  the same with --parallel-requests (plugin
#                    parallel=true: what the nbdkit 1.32 workaround costs)
#   qemu-raw         qemu-img convert of the raw image file to null-co
#   nbdcopy-raw      nbdcopy of the raw image file to null:
# Ratios printed: nbdcopy-export / store-direct (the export's overhead over
# the store), qemu-export / qemu-raw (the issue's reference), and more.
#
# Never run while the lead's network benchmark runs: waits for
# `pgrep -f network_bench.sh` to be empty first.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$HERE/../../build
IMAGE=/var/tmp/cairn-bench/usr-2G.img
ROUNDS=3
WORKDIR=/var/tmp
JSON_OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN=$2; shift 2 ;;
    --image) IMAGE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --json-out) JSON_OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN=$(realpath "$BIN")
AGENT=$BIN/agent/cairn-agent
MEDIA=$BIN/media_agent/cairn-media
EXPORT=$BIN/cairn-nbd-export
DIRECT=$BIN/tests/bench/cairn_store_read_bench
export CAIRN_NBD_PLUGIN=$BIN/nbdkit-cairn-plugin.so
for f in "$AGENT" "$MEDIA" "$EXPORT" "$DIRECT" "$CAIRN_NBD_PLUGIN"; do
  [ -e "$f" ] || { echo "missing $f: build cairn-agent cairn-media cairn-nbd-export cairn_store_read_bench" >&2; exit 2; }
done
for t in nbdcopy qemu-img nbdkit; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 2; }; done

while pgrep -f network_bench.sh >/dev/null; do
  echo "network_bench.sh is running; waiting..." >&2
  sleep 30
done

if [ ! -e "$IMAGE" ]; then
  "$HERE/make-usr-image.sh" "$IMAGE"
fi
SIZE=$(stat -c %s "$IMAGE")
WORK=$(mktemp -d "$WORKDIR/cairn-nbd-bench-XXXXXX")
SHM=$(mktemp -d /dev/shm/cairn-nbd-bench-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK" "$SHM"
}
trap cleanup EXIT

echo "# image $IMAGE ($SIZE bytes); $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$MEDIA" store init --store "$WORK/repo" >/dev/null
"$MEDIA" key generate --out "$WORK/data.key" >/dev/null
"$AGENT" backup --store "$WORK/repo" --source "$IMAGE" --name bench --id plain --quiet
"$AGENT" backup --store "$WORK/repo" --source "$IMAGE" --name bench --id enc \
  --key-file "$WORK/data.key" --quiet

start_export() {  # start_export NAME ARGS... -> sets URI (not in a subshell:
  local name=$1; shift  # PIDS must reach cleanup)
  "$EXPORT" --json --no-lock "$@" >"$WORK/$name.json" 2>"$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 300); do
    grep -q '^}' "$WORK/$name.json" 2>/dev/null && break
    sleep 0.1
  done
  URI=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uri"])' "$WORK/$name.json")
}
start_export plain --store "$WORK/repo" --backup plain
URI_PLAIN=$URI
start_export enc --store "$WORK/repo" --backup enc --key-file "$WORK/data.key"
URI_ENC=$URI
start_export par --store "$WORK/repo" --backup plain --parallel-requests
URI_PAR=$URI

declare -A CMD
CMD[store-direct]="\"$DIRECT\" \"$WORK/repo\" plain - 2 >/dev/null"
CMD[restore-tmpfs]="\"$AGENT\" restore --store \"$WORK/repo\" --backup plain --target \"$SHM/restored.img\" --quiet --threads 2 && rm -f \"$SHM/restored.img\""
CMD[nbdcopy-export]="nbdcopy \"$URI_PLAIN\" null:"
CMD[nbdcopy-enc]="nbdcopy \"$URI_ENC\" null:"
CMD[qemu-export]="qemu-img convert -n -f raw --target-image-opts \"$URI_PLAIN\" driver=null-co,size=$SIZE"
CMD[nbdcopy-par]="nbdcopy \"$URI_PAR\" null:"
CMD[qemu-export-par]="qemu-img convert -n -f raw --target-image-opts \"$URI_PAR\" driver=null-co,size=$SIZE"
CMD[qemu-raw]="qemu-img convert -n -f raw --target-image-opts \"$IMAGE\" driver=null-co,size=$SIZE"
CMD[nbdcopy-raw]="nbdcopy \"$IMAGE\" null:"
STEPS=(store-direct restore-tmpfs nbdcopy-export nbdcopy-enc qemu-export
       nbdcopy-par qemu-export-par qemu-raw nbdcopy-raw)

# Warm-up: every input read once (page cache), results not kept.
for s in "${STEPS[@]}"; do bash -c "${CMD[$s]}" >/dev/null; done

declare -A BEST
for s in "${STEPS[@]}"; do BEST[$s]=""; done
for r in $(seq "$ROUNDS"); do
  for s in "${STEPS[@]}"; do
    t0=$(date +%s.%N)
    bash -c "${CMD[$s]}" >/dev/null
    t1=$(date +%s.%N)
    t=$(echo "$t1 - $t0" | bc -l)
    printf '%-15s round %d: %6.2f s\n' "$s" "$r" "$t" >&2
    if [ -z "${BEST[$s]}" ] || [ "$(echo "$t < ${BEST[$s]}" | bc -l)" = 1 ]; then BEST[$s]=$t; fi
  done
done

mibs() { echo "scale=0; $SIZE / 1048576 / $1" | bc -l; }
ratio() { echo "scale=2; ${BEST[$1]} / ${BEST[$2]}" | bc -l; }
echo
printf '%-15s %8s %10s\n' step "best s" "MiB/s"
for s in "${STEPS[@]}"; do
  printf '%-15s %8.2f %10s\n' "$s" "${BEST[$s]}" "$(mibs "${BEST[$s]}")"
done
echo
echo "nbdcopy-export / store-direct: $(ratio nbdcopy-export store-direct)x time"
echo "nbdcopy-export / restore-tmpfs: $(ratio nbdcopy-export restore-tmpfs)x time"
echo "nbdcopy-enc / nbdcopy-export:   $(ratio nbdcopy-enc nbdcopy-export)x time"
echo "qemu-export / qemu-raw:         $(ratio qemu-export qemu-raw)x time"
echo "nbdcopy-export / nbdcopy-raw:   $(ratio nbdcopy-export nbdcopy-raw)x time"
echo "nbdcopy-export / nbdcopy-par:   $(ratio nbdcopy-export nbdcopy-par)x time"
echo "qemu-export / qemu-export-par:  $(ratio qemu-export qemu-export-par)x time"
if [ -n "$JSON_OUT" ]; then
  {
    echo "{\"image\": \"$IMAGE\", \"bytes\": $SIZE, \"rounds\": $ROUNDS, \"best_seconds\": {"
    first=1
    for s in "${STEPS[@]}"; do
      [ $first = 1 ] || echo ","
      first=0
      printf '  "%s": %.3f' "$s" "${BEST[$s]}"
    done
    echo "}}"
  } > "$JSON_OUT"
fi
