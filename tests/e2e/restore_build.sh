#!/usr/bin/env bash
# End-to-end: restore to dissimilar hardware (issue 6; docs/restore-build.md).
#   - the debian-bios-ahci fixture (AHCI-only initramfs) is backed up into an
#     encrypted store;
#   - its profile (collected offline from the image) is diffed against the
#     recorded virtio-blk-net target (virtio disk and NIC, 3 GiB disk) into a
#     plan; a UEFI target and a plan for another backup are refused, and
#     nothing is stored for them;
#   - `cairn-media restore build` makes the customized image: kind
#     "customized", parent the backup, most chunks shared, the backup itself
#     untouched (manifest bytes and verify);
#   - the backup as it is, booted on the target's hardware, does NOT boot
#     (stuck in the initramfs: the test can fail); the customized image
#     reaches the fixture's marker with root on vda, the 3 GiB disk, the
#     static address on enp0s2, and its root file system grown and clean
#     (e2fsck -fn);
#   - the same backup for an NVMe + UEFI target with a 50% larger disk: a
#     new EFI System Partition and GRUB for x86_64-efi; it boots under OVMF,
#     root grown, e2fsck -fn clean;
#   - the virtio target with a 1.5 GiB disk: the root partition and file
#     system shrink; the image is 1.5 GiB, e2fsck -fn clean, and it boots;
#     a 512 MiB disk is refused by the build (the data does not fit), and
#     nothing is stored.
# Usage: restore_build.sh CAIRN-AGENT CAIRN-MEDIA CAIRN-PROFILE
#                         CAIRN-NBD-EXPORT CAIRN-BOOT-CHECK FIXTURE.raw
#                         PROFILES-DIR
# Exit 77 (skip): not root, or a tool is missing.
set -euo pipefail
AGENT=$(realpath "$1")
MEDIA=$(realpath "$2")
PROFILE=$(realpath "$3")
EXPORT=$(realpath "$4")
BOOTCHECK=$(realpath "$5")
FIXTURE=$(realpath "$6")
PROFILES=$(realpath "$7")
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (loop devices for e2fsck)"; exit 77; }
for tool in nbdkit nbdcopy qemu-img qemu-nbd qemu-system-x86_64 losetup e2fsck dumpe2fs python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
[ -f "$FIXTURE" ] || { echo "FAIL: fixture $FIXTURE missing" >&2; exit 1; }
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-restore-build-e2e-XXXXXX")
EXPORT_PID=""
LOOP=""
cleanup() {
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
  [ -n "$EXPORT_PID" ] && kill "$EXPORT_PID" 2>/dev/null || true
  [ -n "$EXPORT_PID" ] && wait "$EXPORT_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
jget() {  # jget FILE KEY[.KEY...]
  python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if not isinstance(v, (dict, list)) else json.dumps(v))' "$1" "$2"
}
# expect_exit CODE PATTERN CMD...: CMD must exit CODE with PATTERN in its output.
expect_exit() {
  local want=$1 pattern=$2; shift 2
  set +e; out=$("$@" 2>&1); local got=$?; set -e
  [ "$got" -eq "$want" ] || fail "expected exit $want, got $got: $* -> $out"
  echo "$out" | grep -q -- "$pattern" || fail "output lacks '$pattern': $out"
}

# --- backup ---------------------------------------------------------------
"$MEDIA" store init --store repo >/dev/null
"$MEDIA" key generate --out data.key >/dev/null
"$AGENT" backup --store repo --source "$FIXTURE" --name pc1 --id src1 \
  --key-file data.key --quiet
ok "backed up $(basename "$FIXTURE") as src1 (encrypted)"
sha256sum repo/manifests/src1* > manifest.sha

# --- plan -----------------------------------------------------------------
"$PROFILE" collect --image "$FIXTURE" --format raw --out src.pb >/dev/null
for shape in virtio-blk-net uefi-nvme; do
  "$PROFILE" collect --root "$PROFILES/$shape" --out "$shape.pb" >/dev/null
done
# The recorded UEFI + NVMe machine with a 50% larger disk (3 GiB).
"$PROFILE" collect --root "$PROFILES/uefi-nvme" --json --out uefi-nvme.json >/dev/null
python3 - uefi-nvme.json uefi-nvme-3g.json <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
for d in p["disks"]:
    d["size_bytes"] = str(3 << 30)
json.dump(p, open(sys.argv[2], "w"))
EOF
"$PROFILE" plan --source src.pb --target virtio-blk-net.pb --backup src1 \
  --target-name lab-virtio --out plan.json > plan.txt
grep -q "Ready to build." plan.txt || fail "plan not ready: $(cat plan.txt)"
grep -q "virtio_blk" plan.json || fail "plan does not add virtio_blk: $(cat plan.json)"
grep -q "grow the disk" plan.txt || fail "plan does not grow the disk"
ok "plan: $(grep -c '^  [0-9]\.' plan.txt) steps, ready"

set +e
"$PROFILE" plan --source src.pb --target uefi-nvme.pb --backup src1 --out uefi.json > uefi.txt
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "UEFI plan: expected exit 1 (blockers), got $rc"
grep -q "EFI System Partition" uefi.txt || fail "UEFI plan does not say the ESP has no room"
expect_exit 5 "blockers" "$MEDIA" restore build --store repo --backup src1 \
  --plan uefi.json --id refused1 --key-file data.key
python3 - plan.json other.json <<'EOF'
import json, sys
p = json.load(open(sys.argv[1])); p["source_backup_id"] = "nosuch"
json.dump(p, open(sys.argv[2], "w"))
EOF
expect_exit 2 "was made for backup" "$MEDIA" restore build --store repo \
  --backup src1 --plan other.json --id refused2 --key-file data.key
expect_exit 3 "nosuch" "$MEDIA" restore build --store repo --backup nosuch \
  --plan other.json --id refused3 --key-file data.key
[ -z "$(ls repo/manifests | grep refused || true)" ] || fail "a refused build stored a manifest"
ok "refused: UEFI target without room for an ESP (exit 5), plan for another backup (2), unknown backup (3)"

# --- build ----------------------------------------------------------------
"$MEDIA" restore build --store repo --backup src1 --plan plan.json \
  --id src1-virtio --key-file data.key --json > build.json
cat build.json
[ "$(jget build.json image_size)" -eq $((3 << 30)) ] || fail "image size is not 3 GiB"
chunks=$(jget build.json chunks)
reused=$(jget build.json chunks_reused)
new=$(jget build.json chunks_new)
[ "$reused" -gt 0 ] || fail "no chunk shared with the backup"
[ $((new * 4)) -lt "$chunks" ] || fail "$new of $chunks chunks are new: too many"
grep -q '"initramfs"' build.json || fail "no initramfs step in the report"
grep -q '"grow"' build.json || fail "no grow step in the report"
grep -q 'initrd.img-' build.json || fail "the initramfs is not among the changed files"
ok "built src1-virtio: $chunks chunks, $reused shared, $new new ($(jget build.json new_stored_bytes) bytes stored)"
expect_exit 2 "already exists" "$MEDIA" restore build --store repo --backup src1 \
  --plan plan.json --id src1-virtio --key-file data.key

"$MEDIA" store show --store repo --backup src1-virtio --json > show.json
[ "$(jget show.json kind)" = "customized" ] || fail "kind is $(jget show.json kind)"
[ "$(jget show.json parent_id)" = "src1" ] || fail "parent is $(jget show.json parent_id)"
sha256sum -c --quiet manifest.sha || fail "the backup's manifest changed"
"$MEDIA" store verify --store repo --key-file data.key >/dev/null \
  || fail "store verify failed after the build"
ok "stored as kind customized, parent src1; backup unchanged; store verifies"

# --- export both and boot on the target's hardware -------------------------
start_export() {  # start_export BACKUP: sets URI and EXPORT_PID
  "$EXPORT" --json --store repo --backup "$1" --key-file data.key >"$1.export.json" 2>"$1.export.err" &
  EXPORT_PID=$!
  for _ in $(seq 300); do
    grep -q '^}' "$1.export.json" 2>/dev/null && break
    kill -0 "$EXPORT_PID" 2>/dev/null || fail "export of $1 exited: $(cat "$1.export.err")"
    sleep 0.1
  done
  URI=$(jget "$1.export.json" uri)
}
stop_export() { kill -TERM "$EXPORT_PID"; wait "$EXPORT_PID" || true; EXPORT_PID=""; }

start_export src1-virtio
nbdcopy "$URI" custom.raw
stop_export
start_export src1
nbdcopy "$URI" orig.raw
stop_export
ok "exported the backup and the customized image"

TARGET=(--firmware bios --bus virtio-blk --nic virtio-net --mac 52:54:00:12:34:56 --timeout 400)
set +e
"$BOOTCHECK" --disk orig.raw --disk-size 3G "${TARGET[@]}" --json > boot-orig.json
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "the uncustomized backup booted on virtio (exit $rc): $(cat boot-orig.json)"
[ "$(jget boot-orig.json outcome)" = "stuck_in_initramfs" ] \
  || fail "uncustomized: expected stuck_in_initramfs, got $(jget boot-orig.json outcome)"
ok "the backup as it is does not boot on the target: $(jget boot-orig.json outcome)"

MARKER="CAIRN-BOOT-OK debian-bios-ahci"
set +e
"$BOOTCHECK" --disk custom.raw "${TARGET[@]}" --marker "$MARKER" --json > boot-custom.json
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "the customized image did not boot: $(cat boot-custom.json)"
[ "$(jget boot-custom.json guest_info.root_disk)" = "vda" ] \
  || fail "root disk is $(jget boot-custom.json guest_info.root_disk)"
[ "$(jget boot-custom.json guest_info.disk_bytes)" -eq $((3 << 30)) ] \
  || fail "disk is $(jget boot-custom.json guest_info.disk_bytes) bytes"
[ "$(jget boot-custom.json guest_info.ipv4)" = "enp0s2=192.0.2.10/24" ] \
  || fail "network: $(jget boot-custom.json guest_info.ipv4)"
ok "the customized image boots on virtio-blk + virtio-net: root vda, 3 GiB, ipv4 enp0s2=192.0.2.10/24 ($(jget boot-custom.json elapsed_seconds) s)"

# --- the grown root file system -------------------------------------------
# check_root_fs IMAGE [grown|shrunk]: partition 1 (root) is clean under
# e2fsck -fn and larger than the source's 2 GiB disk (grown, the default),
# or inside the image and its partition (shrunk); sets FS_BYTES.
check_root_fs() {
  local expect=${2:-grown}
  local geometry
  geometry=$(python3 - "$1" <<'EOF'
import subprocess, sys, json
out = subprocess.run(["sfdisk", "--json", sys.argv[1]], capture_output=True, text=True, check=True).stdout
p = json.loads(out)["partitiontable"]["partitions"][0]
print(p["start"] * 512, p["size"] * 512)
EOF
)
  local image_bytes
  image_bytes=$(stat -c %s "$1")
  set -- "$1" $geometry
  LOOP=$(losetup --find --show --read-only --offset "$2" --sizelimit "$3" "$1")
  e2fsck -fn "$LOOP" > fsck.txt 2>&1 || fail "e2fsck -fn of $1: $(cat fsck.txt)"
  local blocks bsize
  blocks=$(dumpe2fs -h "$LOOP" 2>/dev/null | awk -F: '/^Block count/ {print $2}' | tr -d ' ')
  bsize=$(dumpe2fs -h "$LOOP" 2>/dev/null | awk -F: '/^Block size/ {print $2}' | tr -d ' ')
  losetup -d "$LOOP"; LOOP=""
  FS_BYTES=$((blocks * bsize))
  if [ "$expect" = grown ]; then
    [ "$FS_BYTES" -gt $((2 << 30)) ] || fail "root file system of $1 not grown: $FS_BYTES bytes"
  else
    [ $(($2 + $3)) -le "$image_bytes" ] || fail "partition 1 of $1 ends beyond the image"
    [ "$FS_BYTES" -le "$3" ] || fail "root file system of $1 ($FS_BYTES bytes) exceeds its partition ($3)"
  fi
}
check_root_fs custom.raw
ok "root file system grown to $FS_BYTES bytes, e2fsck -fn clean"
rm -f orig.raw custom.raw

# --- BIOS -> UEFI on NVMe with a 50% larger disk --------------------------
"$PROFILE" plan --source src.pb --target uefi-nvme-3g.json --backup src1 \
  --target-name lab-uefi --out uefi3.json > uefi3.txt \
  || fail "UEFI plan with room for an ESP not ready: $(cat uefi3.txt)"
grep -q '"esp_bytes"' uefi3.json || fail "UEFI plan creates no ESP"
"$MEDIA" restore build --store repo --backup src1 --plan uefi3.json \
  --id src1-uefi --key-file data.key --json > build-uefi.json
grep -q '"esp"' build-uefi.json || fail "no esp step: $(cat build-uefi.json)"
grep -q 'BOOTX64.EFI' build-uefi.json || fail "no removable-path GRUB: $(cat build-uefi.json)"
ok "built src1-uefi: $(jget build-uefi.json chunks_new) new chunks ($(jget build-uefi.json new_stored_bytes) bytes stored)"
start_export src1-uefi
nbdcopy "$URI" uefi.raw
stop_export
python3 - uefi.raw <<'EOF' || fail "no EFI System Partition in the image"
import subprocess, sys, json
t = json.loads(subprocess.run(["sfdisk", "--json", sys.argv[1]], capture_output=True,
                              text=True, check=True).stdout)["partitiontable"]
assert any(p.get("type") in ("ef", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") for p in t["partitions"]), t
EOF
set +e
"$BOOTCHECK" --disk uefi.raw --firmware uefi --bus nvme --nic e1000 \
  --mac 52:54:00:ab:cd:02 --timeout 400 --marker "$MARKER" --json > boot-uefi.json
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "the UEFI image did not boot: $(cat boot-uefi.json)"
[ "$(jget boot-uefi.json guest_info.firmware)" = "uefi" ] || fail "not booted by UEFI"
[ "$(jget boot-uefi.json guest_info.root_disk)" = "nvme0n1" ] \
  || fail "root disk is $(jget boot-uefi.json guest_info.root_disk)"
check_root_fs uefi.raw
ok "BIOS -> UEFI: boots under OVMF on NVMe, root grown to $FS_BYTES bytes, e2fsck -fn clean ($(jget boot-uefi.json elapsed_seconds) s)"
rm -f uefi.raw

# --- a smaller disk: shrink when the data fits ----------------------------
# The virtio target with a 1.5 GiB disk: the root (about 0.8 GB used,
# resize2fs -P about 1.1 GiB) shrinks. With 512 MiB the plan cannot know
# how full the root is, so the build refuses it and stores nothing.
"$PROFILE" collect --root "$PROFILES/virtio-blk-net" --json --out virtio.json >/dev/null
python3 - virtio.json virtio-1g5.json virtio-512m.json <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
for out, size in ((sys.argv[2], 3 << 29), (sys.argv[3], 512 << 20)):
    for d in p["disks"]:
        d["size_bytes"] = str(size)
    json.dump(p, open(out, "w"))
EOF
"$PROFILE" plan --source src.pb --target virtio-512m.json --backup src1 \
  --target-name lab-tiny --out tiny.json > tiny.txt \
  || fail "plan for a 512 MiB disk not ready: $(cat tiny.txt)"
expect_exit 5 "too small" "$MEDIA" restore build --store repo --backup src1 \
  --plan tiny.json --id src1-tiny --key-file data.key
echo "$out" | grep -q "resize2fs -P" || fail "refusal does not name the minimum: $out"
[ -z "$(ls repo/manifests | grep tiny || true)" ] || fail "the refused shrink stored a manifest"
ok "512 MiB target: build refused (exit 5), nothing stored: $(echo "$out" | tail -1 | cut -c1-200)"
"$PROFILE" plan --source src.pb --target virtio-1g5.json --backup src1 \
  --target-name lab-small --out shrink.json > shrink.txt \
  || fail "plan for a 1.5 GiB disk not ready: $(cat shrink.txt)"
grep -q "shrink the disk from $((2 << 30)) to $((3 << 29)) bytes" shrink.txt \
  || fail "plan does not shrink the disk: $(cat shrink.txt)"
"$MEDIA" restore build --store repo --backup src1 --plan shrink.json \
  --id src1-small --key-file data.key --json > build-small.json \
  || fail "the shrink build failed: $(cat build-small.json)"
[ "$(jget build-small.json image_size)" -eq $((3 << 29)) ] || fail "image size is not 1.5 GiB"
grep -q '"shrink"' build-small.json || fail "no shrink step: $(cat build-small.json)"
grep -q '"shrink-disk"' build-small.json || fail "no shrink-disk step: $(cat build-small.json)"
grep -q '"initramfs"' build-small.json || fail "no initramfs step with the shrink"
ok "built src1-small: $(jget build-small.json chunks_new) new chunks ($(jget build-small.json new_stored_bytes) bytes stored)"
start_export src1-small
nbdcopy "$URI" small.raw
stop_export
[ "$(stat -c %s small.raw)" -eq $((3 << 29)) ] || fail "exported image is $(stat -c %s small.raw) bytes"
check_root_fs small.raw shrunk
set +e
"$BOOTCHECK" --disk small.raw "${TARGET[@]}" --marker "$MARKER" --json > boot-small.json
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "the shrunk image did not boot: $(cat boot-small.json)"
[ "$(jget boot-small.json guest_info.root_disk)" = "vda" ] \
  || fail "root disk is $(jget boot-small.json guest_info.root_disk)"
[ "$(jget boot-small.json guest_info.disk_bytes)" -eq $((3 << 29)) ] \
  || fail "disk is $(jget boot-small.json guest_info.disk_bytes) bytes"
ok "shrunk to 1.5 GiB: root file system $FS_BYTES bytes, e2fsck -fn clean, boots on virtio with root on vda ($(jget boot-small.json elapsed_seconds) s)"
sha256sum -c --quiet manifest.sha || fail "the backup's manifest changed"
echo "PASS restore_build"
