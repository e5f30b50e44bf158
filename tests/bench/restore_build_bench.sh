#!/usr/bin/env bash
# restore_build_bench.sh: restore build figures (issue 6;
# docs/restore-build.md). Whole processes, one machine, one run:
#
#   tests/bench/restore_build_bench.sh [--bin-dir build] [--image FIXTURE]
#       [--target-shape virtio-blk-net] [--workdir /var/tmp] [--rounds 1]
#
# 1. The FIXTURE (default: debian-bios-ahci) is backed up into an encrypted
#    store; its profile is collected offline and planned against the
#    recorded TARGET shape (virtio-blk-net: virtio disk and NIC, 3 GiB).
# 2. `cairn-media restore build --json`: time by phase (plan, export,
#    appliance launch, edits, initramfs, shutdown, commit), chunks shared
#    and new bytes stored as a share of the image.
# 3. Peers on the same machine in the same run:
#      virt-customize  the same edits without Cairn: a qcow2 overlay over the
#                      raw image, the plan's modules appended to
#                      /etc/initramfs-tools/modules, update-initramfs -u -k
#                      KVER (no grow, no store, no commit)
#      launch          a bare libguestfs appliance launch (guestfish --ro run)
# The best of ROUNDS is reported for each.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$HERE/../../build
IMAGE=/var/cache/cairn/fixtures/debian-bios-ahci.raw
SHAPE=virtio-blk-net
WORKDIR=/var/tmp
ROUNDS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN=$2; shift 2 ;;
    --image) IMAGE=$2; shift 2 ;;
    --target-shape) SHAPE=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BIN=$(realpath "$BIN")
PROFILES=$(realpath "$HERE/../data/profiles")
export CAIRN_NBD_PLUGIN=$BIN/nbdkit-cairn-plugin.so
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
for tool in virt-customize guestfish qemu-img python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
W=$(mktemp -d "$WORKDIR/cairn-rb-bench-XXXXXX")
trap 'rm -rf "$W"' EXIT
cd "$W"
now() { date +%s.%N; }
best() { python3 -c 'import sys; print(min(float(x) for x in sys.argv[1:]))' "$@"; }

"$BIN/media_agent/cairn-media" store init --store repo >/dev/null
"$BIN/media_agent/cairn-media" key generate --out data.key >/dev/null
"$BIN/agent/cairn-agent" backup --store repo --source "$IMAGE" --name pc1 \
  --id src1 --key-file data.key --quiet >/dev/null
t0=$(now)
"$BIN/cairn-profile" collect --image "$IMAGE" --format raw --out src.pb >/dev/null
"$BIN/cairn-profile" collect --root "$PROFILES/$SHAPE" --out tgt.pb >/dev/null
"$BIN/cairn-profile" plan --source src.pb --target tgt.pb --backup src1 \
  --out plan.json >/dev/null
plan_s=$(python3 -c "print($(now) - $t0)")
KVER=$(python3 -c 'import json; print(json.load(open("plan.json"))["kernel_version"])')
MODULES=$(python3 -c 'import json; print(" ".join(json.load(open("plan.json")).get("initramfs_modules", [])))')

builds=() ; peers=() ; launches=()
for r in $(seq "$ROUNDS"); do
  t0=$(now)
  "$BIN/media_agent/cairn-media" restore build --store repo --backup src1 \
    --plan plan.json --id "img$r" --key-file data.key --json > "build$r.json"
  builds+=("$(python3 -c "print($(now) - $t0)")")

  qemu-img create -q -f qcow2 -b "$IMAGE" -F raw ov.qcow2 3G
  args=()
  for m in $MODULES; do args+=(--append-line "/etc/initramfs-tools/modules:$m"); done
  t0=$(now)
  virt-customize -q -a ov.qcow2 "${args[@]}" \
    --run-command "update-initramfs -u -k $KVER" >/dev/null
  peers+=("$(python3 -c "print($(now) - $t0)")")
  rm -f ov.qcow2

  t0=$(now)
  guestfish --ro -a "$IMAGE" run >/dev/null
  launches+=("$(python3 -c "print($(now) - $t0)")")
done
B=$(best "${builds[@]}"); P=$(best "${peers[@]}"); L=$(best "${launches[@]}")
python3 - build1.json "$plan_s" "$B" "$P" "$L" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
plan, build, peer, launch = (float(x) for x in sys.argv[2:6])
s = j["seconds"]
print(f"restore build of the fixture for the target ({j['image_size'] >> 20} MiB image)")
print(f"  plan (offline profile + diff)   {plan:7.1f} s")
for k in ("export", "launch", "edits", "initramfs", "shutdown", "commit"):
    print(f"  {k:32s}{s[k]:7.1f} s")
print(f"  total restore build              {build:7.1f} s")
print(f"  chunks: {j['chunks']} ({j['chunks_reused']} shared unread, {j['chunks_read']} read, "
      f"{j['chunks_new']} new); new bytes stored {j['new_stored_bytes']} = "
      f"{100.0 * j['new_stored_bytes'] / j['image_size']:.2f}% of the image")
print(f"peers: virt-customize (same initramfs edit, no store) {peer:.1f} s; "
      f"bare appliance launch {launch:.1f} s")
print(f"ratios: build / virt-customize = {build / peer:.2f}; "
      f"build / launch = {build / launch:.2f}")
EOF
