#!/usr/bin/env bash
# browse_bench.sh: file-level browse figures (issue 7; docs/browse.md),
# whole processes on loopback: cairn-server (embedded media agent, encrypted
# store, --no-catalogue so both browse paths can be timed), cairn-agent,
# cairnctl. Figures: docs/performance.md, "Browse".
#
#   tests/bench/browse_bench.sh [--bin-dir build] [--image FIXTURE]
#       [--backups 30] [--big-mib 1024] [--rounds 3] [--workdir /var/tmp]
#
# 1. Time to the first listing of / of a fresh backup of FIXTURE
#    (default: the debian-bios-ahci fixture):
#      ls-mount-first   no catalogue yet: nbdkit + nbdfuse + loop + mount,
#                       then one directory read live
#      catalogue-build  `browse catalogue`: walk and store the catalogue
#      ls-catalogue     the server restarted (nothing in memory): the first
#                       `browse ls /` loads and decrypts the catalogue
#    peers: loop-mount   mount -o ro,loop of the raw image + ls + umount
#           guestfish    guestfish --ro -i ls / (libguestfs appliance, TCG)
# 2. Searching a file name across BACKUPS backups of FIXTURE (incrementals,
#    each catalogued): `browse search CLIENT hostname`; peer: `restic find
#    hostname` over BACKUPS snapshots of the same tree (loop-mounted).
# 3. `browse get` of a BIG-MIB random file from a backup of an ext4 image,
#    to tmpfs; peer: cp of the same file from a read-only loop mount of the
#    raw image (page cache warm for both).
# Each timed step runs ROUNDS times; the best time is reported, with ratios
# against the peers of the same run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$HERE/../../build
IMAGE=/var/cache/cairn/fixtures/debian-bios-ahci.raw
BACKUPS=30
BIG_MIB=1024
ROUNDS=3
WORKDIR=/var/tmp
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN=$2; shift 2 ;;
    --image) IMAGE=$2; shift 2 ;;
    --backups) BACKUPS=$2; shift 2 ;;
    --big-mib) BIG_MIB=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN=$(realpath "$BIN")
SERVER_BIN=$BIN/server/cairn-server
AGENT_BIN=$BIN/agent/cairn-agent
CTL_BIN=$BIN/cli/cairnctl
export CAIRN_NBD_PLUGIN=$BIN/nbdkit-cairn-plugin.so
for f in "$SERVER_BIN" "$AGENT_BIN" "$CTL_BIN" "$CAIRN_NBD_PLUGIN" "$IMAGE"; do
  [ -e "$f" ] || { echo "missing $f" >&2; exit 2; }
done
for t in nbdkit nbdfuse restic guestfish; do
  command -v $t >/dev/null || { echo "missing $t" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "needs root (mounts)" >&2; exit 2; }
IMAGE=$(realpath "$IMAGE")

export NET_WORKBASE=$WORKDIR
# shellcheck source=../e2e/lib_network.sh
. "$HERE/../e2e/lib_network.sh"
net_setup browse-bench
SHM=$(mktemp -d /dev/shm/cairn-browse-bench-XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
bench_cleanup() {
  mountpoint -q "$MNT" && umount "$MNT" || true
  rm -rf "$SHM"
  net_cleanup
}
trap bench_cleanup EXIT

declare -A BEST
timed() {  # timed NAME COMMAND...: runs once, keeps the best time
  local name=$1; shift
  local t0 t1 t
  t0=$(date +%s.%N)
  "$@" > /dev/null
  t1=$(date +%s.%N)
  t=$(echo "$t1 - $t0" | bc -l)
  printf '%-18s %7.3f s\n' "$name" "$t" >&2
  if [ -z "${BEST[$name]:-}" ] || [ "$(echo "$t < ${BEST[$name]}" | bc -l)" = 1 ]; then
    BEST[$name]=$t
  fi
}
ratio() { echo "scale=2; ${BEST[$1]} / ${BEST[$2]}" | bc -l; }
first_partition_offset() {
  local start
  start=$(sfdisk --json "$1" | awk -F'[:,]' '/"start"/ { gsub(/ /, "", $2); print $2; exit }')
  echo $((start * 512))
}

echo "# $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg); image $IMAGE" >&2
net_server_init --encrypt
net_server_start --no-catalogue
CLIENT=$(net_enroll bench-pc "$WORK/agent")
net_agent_start "$WORK/agent" agent.log --heartbeat-interval 2
wait_until 30 client_connected "$CLIENT" || fail "agent did not connect"
backup() {  # backup SOURCE [--incremental] -> prints the backup id
  ctl --json backup start --client "$CLIENT" --source "$1" "${@:2}" --wait \
    | json_field backup_id
}
restart_server() {
  stop_pid "$SERVER_PID" TERM
  net_server_start --no-catalogue
  wait_until 30 client_connected "$CLIENT" || fail "agent did not reconnect"
}

# ---- 1. first listing ------------------------------------------------------
OFFSET=$(first_partition_offset "$IMAGE")
for r in $(seq "$ROUNDS"); do
  B=$(backup "$IMAGE")
  [ -n "$B" ] || fail "backup failed"
  timed ls-mount-first ctl browse ls "$B:/"
  timed catalogue-build ctl browse catalogue "$B" --rebuild
  restart_server
  timed ls-catalogue ctl browse ls "$B:/"
  timed loop-mount bash -c "mount -o ro,loop,noload,offset=$OFFSET '$IMAGE' '$MNT' && ls -la '$MNT' && umount '$MNT'"
done
timed guestfish env LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg \
  guestfish --ro -a "$IMAGE" -i ls /

# ---- 2. search across BACKUPS backups --------------------------------------
have=$(ctl --json backups list --client "$CLIENT" | grep -c '"backup_id"')
while [ "$have" -lt "$BACKUPS" ]; do
  B=$(backup "$IMAGE" --incremental)
  [ -n "$B" ] || fail "incremental backup failed"
  have=$((have + 1))
done
for id in $(ctl --json backups list --client "$CLIENT" | sed -n 's/.*"backup_id": "\([^"]*\)".*/\1/p'); do
  [ -f "$WORK/repo/catalogues/$id.cfc" ] || ctl browse catalogue "$id" > /dev/null
done
export RESTIC_REPOSITORY=$WORK/restic RESTIC_PASSWORD=bench
restic init -q
mount -o ro,loop,noload,offset="$OFFSET" "$IMAGE" "$MNT"
for _ in $(seq "$BACKUPS"); do restic backup -q "$MNT" > /dev/null; done
umount "$MNT"
for r in $(seq "$ROUNDS"); do
  timed search-cairn ctl browse search "$CLIENT" hostname
  timed search-restic restic find -q hostname
done

# ---- 3. browse get of a big file ---------------------------------------------
mkdir -p "$WORK/big-src"
head -c "$((BIG_MIB << 20))" /dev/urandom > "$WORK/big-src/big.bin"
truncate -s "$((BIG_MIB * 2 + 256))M" "$WORK/big.img"
mkfs.ext4 -q -F -d "$WORK/big-src" "$WORK/big.img"
rm -rf "$WORK/big-src"
BIG=$(backup "$WORK/big.img")
ctl browse catalogue "$BIG" > /dev/null
mount -o ro,loop,noload "$WORK/big.img" "$MNT"
cat "$MNT/big.bin" > /dev/null
for r in $(seq "$ROUNDS"); do
  timed get-cairn ctl browse get "$BIG:/big.bin" --to "$SHM/got.bin"
  cmp -s "$SHM/got.bin" "$MNT/big.bin" || fail "browse get is not byte-exact"
  rm -f "$SHM/got.bin"
  timed get-cp cp "$MNT/big.bin" "$SHM/cp.bin"
  rm -f "$SHM/cp.bin"
done
umount "$MNT"

echo
printf '%-18s %9s\n' step "best s"
for s in ls-mount-first catalogue-build ls-catalogue loop-mount guestfish \
         search-cairn search-restic get-cairn get-cp; do
  printf '%-18s %9.3f\n' "$s" "${BEST[$s]}"
done
echo
echo "ls-mount-first / loop-mount:     $(ratio ls-mount-first loop-mount)x time"
echo "ls-mount-first / guestfish:      $(ratio ls-mount-first guestfish)x time"
echo "ls-catalogue / loop-mount:       $(ratio ls-catalogue loop-mount)x time"
echo "search-cairn / search-restic:    $(ratio search-cairn search-restic)x time ($BACKUPS backups)"
echo "get-cairn / get-cp:              $(ratio get-cairn get-cp)x time ($BIG_MIB MiB)"
echo "get-cairn throughput:            $(echo "scale=0; $BIG_MIB / ${BEST[get-cairn]}" | bc -l) MiB/s"
echo "get-cp throughput:               $(echo "scale=0; $BIG_MIB / ${BEST[get-cp]}" | bc -l) MiB/s"
