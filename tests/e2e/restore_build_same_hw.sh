#!/usr/bin/env bash
# End-to-end proof (issue 6; docs/restore-build.md, "Tests and proofs"): the
# debian-uefi-gpt fixture restored onto its OWN hardware model (q35, OVMF,
# AHCI disk on ICH9, e1000 NIC at 00:02.0 with the fixture's source MAC
# 52:54:00:c0:ff:ee, 2 GiB disk; recorded tree tests/data/profiles/
# uefi-ahci-e1000) boots, and the customized image differs from the backup
# only where the plan changed something:
#   - the fixture is backed up into an encrypted store, its profile is
#     collected offline from the image, and the plan against its own
#     hardware profile is printed; it must be ready (no blockers);
#   - `cairn-media restore build` makes the customized image; the backup and
#     the customized image are exported to raw files;
#   - a plan that changes nothing (what same hardware should give): the build
#     starts no appliance, reports no changed file and stores no new chunk,
#     and `qemu-img compare` finds the two images identical;
#   - a plan that changes something: the partition table and every byte
#     outside the partitions are unchanged, every partition whose file
#     system holds none of the build's changed_files is byte-identical
#     (`qemu-img compare` per partition), and in a changed file system the
#     files that differ (content, type, link target, mode, owner) are a
#     subset of changed_files plus the explicit list below;
#   - the customized image reaches the fixture's marker under OVMF on the
#     own hardware model (root on sda, enp0s2 with the static address), and
#     e2fsck -fn of its ext4 file systems (root, /boot) is clean;
#   - so that the confinement check runs even when the planner (rightly)
#     changes nothing, the plan hand-edited to add e1000 to the initramfs is
#     built too: it must differ from the backup, only in the files its
#     report lists (root and /boot; the ESP, the GPT and the gaps
#     byte-identical), and boot the same way.
# Usage: restore_build_same_hw.sh CAIRN-AGENT CAIRN-MEDIA CAIRN-PROFILE
#                                 CAIRN-NBD-EXPORT CAIRN-BOOT-CHECK
#                                 FIXTURE.raw PROFILES-DIR
# Exit 77 (skip): not root, or a tool is missing.
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib_e2e.sh"
AGENT=$(realpath "$1")
MEDIA=$(realpath "$2")
PROFILE=$(realpath "$3")
EXPORT=$(realpath "$4")
BOOTCHECK=$(realpath "$5")
FIXTURE=$(realpath "$6")
PROFILES=$(realpath "$7")
SHAPE=uefi-ahci-e1000
MARKER="CAIRN-BOOT-OK debian-uefi-gpt"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (loop devices, read-only mounts)"; exit 77; }
for tool in nbdkit nbdcopy qemu-img qemu-nbd qemu-system-x86_64 losetup mount \
            umount e2fsck blkid sfdisk mcopy python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
[ -f "$FIXTURE" ] || { echo "FAIL: fixture $FIXTURE missing" >&2; exit 1; }
[ -d "$PROFILES/$SHAPE" ] || { echo "FAIL: recorded profile $PROFILES/$SHAPE missing" >&2; exit 1; }
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}

# No file outside the build report's changed_files may differ: none is
# rewritten alongside them here (update-initramfs on this image writes only
# /boot/initrd.img-KVER and keeps no state under /var/lib/initramfs-tools).
# A tool that did would have to be listed here explicitly, with the reason.

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-restore-same-hw-e2e-XXXXXX")
EXPORT_PID=""
MOUNTS=()
LOOPS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || true; done
  for i in "${LOOPS[@]}"; do losetup -d "$i" 2>/dev/null || true; done
  [ -n "$EXPORT_PID" ] && kill "$EXPORT_PID" 2>/dev/null || true
  [ -n "$EXPORT_PID" ] && wait "$EXPORT_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"


# --- backup, profiles, plan ------------------------------------------------
"$MEDIA" store init --store repo >/dev/null
"$MEDIA" key generate --out data.key >/dev/null
"$AGENT" backup --store repo --source "$FIXTURE" --name uefi1 --id src1 \
  --key-file data.key --quiet
ok "backed up $(basename "$FIXTURE") as src1 (encrypted)"

"$PROFILE" collect --image "$FIXTURE" --format raw --out src.pb >/dev/null
"$PROFILE" collect --root "$PROFILES/$SHAPE" --out own.pb >/dev/null
set +e
"$PROFILE" plan --source src.pb --target own.pb --backup src1 \
  --target-name own-hardware --out plan.json > plan.txt 2>&1
rc=$?
set -e
echo "----- plan against its own hardware model ($SHAPE) -----"
cat plan.txt
echo "-----"
[ "$rc" -eq 0 ] || fail "plan exited $rc (blockers?)"
grep -q "Ready to build." plan.txt || fail "plan not ready"
ok "plan: ready, $(jget plan.json steps | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') step(s)"

# --- build ----------------------------------------------------------------
"$MEDIA" restore build --store repo --backup src1 --plan plan.json \
  --id src1-own --key-file data.key --json > build.json
cat build.json
"$MEDIA" store show --store repo --backup src1-own --json > show.json
[ "$(jget show.json kind)" = "customized" ] || fail "kind is $(jget show.json kind)"
[ "$(jget show.json parent_id)" = "src1" ] || fail "parent is $(jget show.json parent_id)"
ok "built src1-own: $(jget build.json chunks) chunks, $(jget build.json chunks_new) new"

# --- export both ----------------------------------------------------------
start_export src1-own
nbdcopy "$URI" custom.raw
stop_export
start_export src1
nbdcopy "$URI" orig.raw
stop_export
qemu-img compare -f raw -F raw "$FIXTURE" orig.raw >/dev/null \
  || fail "the exported backup differs from the fixture it was made from"
ok "exported the backup (identical to the fixture) and the customized image"

# --- helpers for the comparison --------------------------------------------
# partitions IMAGE: "NUMBER START_BYTES SIZE_BYTES" per partition, sorted.
partitions() {
  python3 - "$1" <<'EOF'
import json, re, subprocess, sys
t = json.loads(subprocess.run(["sfdisk", "--json", sys.argv[1]], capture_output=True,
                              text=True, check=True).stdout)["partitiontable"]
ss = t.get("sectorsize", 512)
for p in sorted(t["partitions"], key=lambda p: p["start"]):
    n = int(re.search(r"(\d+)$", p["node"]).group(1))
    print(n, p["start"] * ss, p["size"] * ss)
EOF
}
# same_region A B OFFSET SIZE: the byte range is identical in both raw files.
same_region() {
  qemu-img compare --image-opts \
    "driver=raw,offset=$3,size=$4,file.driver=file,file.filename=$1" \
    "driver=raw,offset=$3,size=$4,file.driver=file,file.filename=$2" >/dev/null
}
# attach IMAGE OFFSET SIZE: a read-only loop device for the range; sets LOOP.
attach() {
  LOOP=$(losetup --find --show --read-only --offset "$2" --sizelimit "$3" "$1")
  LOOPS+=("$LOOP")
}
detach_all() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}"; done
  MOUNTS=()
  for i in "${LOOPS[@]}"; do losetup -d "$i"; done
  LOOPS=()
}
# tree_diff A B: paths (relative, with a leading /) whose type, content, link
# target, mode or owner differ, or that exist on one side only.
tree_diff() {
  python3 - "$1" "$2" <<'EOF'
import filecmp, os, stat, sys
a, b = sys.argv[1], sys.argv[2]
def walk(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            out["/" + os.path.relpath(p, root)] = p
    return out
ta, tb = walk(a), walk(b)
for rel in sorted(set(ta) | set(tb)):
    if rel not in ta or rel not in tb:
        print(rel); continue
    sa, sb = os.lstat(ta[rel]), os.lstat(tb[rel])
    if (stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode) or sa.st_mode != sb.st_mode
            or sa.st_uid != sb.st_uid or sa.st_gid != sb.st_gid):
        print(rel); continue
    if stat.S_ISLNK(sa.st_mode):
        if os.readlink(ta[rel]) != os.readlink(tb[rel]): print(rel)
    elif stat.S_ISREG(sa.st_mode):
        if sa.st_size != sb.st_size or not filecmp.cmp(ta[rel], tb[rel], shallow=False):
            print(rel)
    elif stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode):
        if sa.st_rdev != sb.st_rdev: print(rel)
EOF
}

# check_confined ORIG CUSTOM BUILD_JSON: the difference between the two raw
# images is confined to what the build reports having changed (see the
# header). Prints what it checked.
check_confined() {
  local orig=$1 custom=$2 report=$3
  [ "$(stat -c %s "$orig")" -eq "$(stat -c %s "$custom")" ] \
    || fail "the disk size changed on its own hardware model"
  # The table as sfdisk reads it (label id, LBA range, each partition's
  # start, size, type, GUID and name), with the file name taken out.
  sfdisk --dump "$orig" | sed "/^device:/d; s|^$orig|IMG|" > table-orig.txt
  sfdisk --dump "$custom" | sed "/^device:/d; s|^$custom|IMG|" > table-custom.txt
  diff -u table-orig.txt table-custom.txt || fail "the partition table changed"
  # Every byte outside the partitions: protective MBR, GPT headers and
  # entries at both ends, gaps.
  local size pos=0 n start len
  size=$(stat -c %s "$orig")
  partitions "$orig" > parts.txt
  while read -r n start len; do
    if [ "$start" -gt "$pos" ]; then
      same_region "$orig" "$custom" "$pos" $((start - pos)) \
        || fail "bytes $pos..$start (outside any partition) differ"
    fi
    pos=$((start + len))
  done < parts.txt
  if [ "$size" -gt "$pos" ]; then
    same_region "$orig" "$custom" "$pos" $((size - pos)) \
      || fail "bytes $pos..$size (outside any partition) differ"
  fi
  ok "partition table and every byte outside the partitions unchanged"

  # Mount points of the partitions, from the backup's own fstab (by UUID).
  local root_part=""
  declare -A mp_of=()
  declare -A uuid_of=()
  declare -A type_of=()
  while read -r n start len; do
    attach "$orig" "$start" "$len"
    uuid_of[$n]=$(blkid -p -s UUID -o value "$LOOP" || true)
    type_of[$n]=$(blkid -p -s TYPE -o value "$LOOP" || true)
    if [ "${type_of[$n]}" = ext4 ] && [ -z "$root_part" ]; then
      mkdir -p "probe$n"
      mount -o ro,noload "$LOOP" "probe$n"; MOUNTS+=("$WORK/probe$n")
      if [ -f "probe$n/etc/fstab" ]; then
        root_part=$n
        cp "probe$n/etc/fstab" fstab
      fi
    fi
    detach_all
  done < parts.txt
  [ -n "$root_part" ] || fail "no partition holds /etc/fstab"
  while read -r n start len; do
    mp_of[$n]=$(awk -v u="UUID=${uuid_of[$n]}" '$1 == u {print $2}' fstab)
    [ "$n" = "$root_part" ] && mp_of[$n]=/
  done < parts.txt

  # The file system each changed file lives on: the longest mount point
  # that prefixes it.
  python3 - "$report" > changed.txt <<'EOF'
import json, sys
for f in json.load(open(sys.argv[1]))["changed_files"]:
    print(f)
EOF
  owner_of() {  # owner_of GUEST_PATH: partition number
    local best="" best_len=-1 p m
    for p in "${!mp_of[@]}"; do
      m=${mp_of[$p]}
      [ -n "$m" ] || continue
      if [ "$m" = / ] || [ "$1" = "$m" ] || [[ "$1" == "$m"/* ]]; then
        if [ ${#m} -gt $best_len ]; then best=$p; best_len=${#m}; fi
      fi
    done
    echo "$best"
  }
  declare -A touched=()
  local f p
  while read -r f; do
    [ -n "$f" ] || continue
    p=$(owner_of "$f")
    [ -n "$p" ] || fail "changed file $f is on no partition of the disk"
    touched[$p]=1
  done < changed.txt

  while read -r n start len; do
    if [ -z "${touched[$n]:-}" ]; then
      same_region "$orig" "$custom" "$start" "$len" \
        || fail "partition $n (${mp_of[$n]:-not mounted}, ${type_of[$n]}) was not touched by the build but differs"
      ok "partition $n (${mp_of[$n]:-not mounted}, ${type_of[$n]}): byte-identical"
      continue
    fi
    # A changed file system: compare its files.
    local mp=${mp_of[$n]}
    mkdir -p "a$n" "b$n"
    case "${type_of[$n]}" in
      ext2|ext3|ext4|xfs|btrfs)
        attach "$orig" "$start" "$len"
        mount -o ro,noload "$LOOP" "a$n"; MOUNTS+=("$WORK/a$n")
        attach "$custom" "$start" "$len"
        mount -o ro,noload "$LOOP" "b$n"; MOUNTS+=("$WORK/b$n")
        ;;
      vfat)
        # This host cannot mount vfat: copy the trees out with mtools.
        mcopy -s -p -n -i "$orig@@$start" ::/ "a$n/"
        mcopy -s -p -n -i "$custom@@$start" ::/ "b$n/"
        ;;
      *) fail "partition $n: cannot compare file system '${type_of[$n]}'" ;;
    esac
    tree_diff "a$n" "b$n" > "diff$n.txt"
    detach_all
    local rel guest bad=""
    while read -r rel; do
      [ -n "$rel" ] || continue
      if [ "$mp" = / ]; then guest=$rel; else guest=$mp$rel; fi
      if grep -qxF -- "$guest" changed.txt; then continue; fi
      bad+=" $guest"
    done < "diff$n.txt"
    [ -z "$bad" ] || fail "partition $n ($mp): files differ that the build does not report:$bad"
    ok "partition $n ($mp, ${type_of[$n]}): $(grep -c . "diff$n.txt" || true) path(s) differ, all reported by the build"
  done < parts.txt
}

# boot_and_fsck IMAGE: IMAGE reaches the fixture's marker under OVMF on the
# own hardware model, and e2fsck -fn of its ext4 file systems is clean.
boot_and_fsck() {
  local img=$1 rc checked=0 n start len
  set +e
  "$BOOTCHECK" --disk "$img" --firmware uefi --bus ahci --nic e1000 \
    --mac 52:54:00:c0:ff:ee --timeout 400 --marker "$MARKER" --json > "$img.boot.json"
  rc=$?
  set -e
  [ "$rc" -eq 0 ] || fail "$img did not boot on its own hardware: $(cat "$img.boot.json")"
  [ "$(jget "$img.boot.json" guest_info.firmware)" = "uefi" ] || fail "$img: not booted by UEFI"
  [ "$(jget "$img.boot.json" guest_info.root_disk)" = "sda" ] \
    || fail "$img: root disk is $(jget "$img.boot.json" guest_info.root_disk)"
  [ "$(jget "$img.boot.json" guest_info.ipv4)" = "enp0s2=192.0.2.10/24" ] \
    || fail "$img: network: $(jget "$img.boot.json" guest_info.ipv4)"
  ok "$img boots under OVMF on AHCI + e1000: root sda, ipv4 enp0s2=192.0.2.10/24 ($(jget "$img.boot.json" elapsed_seconds) s)"
  while read -r n start len; do
    attach "$img" "$start" "$len"
    if [ "$(blkid -p -s TYPE -o value "$LOOP" || true)" = ext4 ]; then
      e2fsck -fn "$LOOP" > "fsck$n.txt" 2>&1 || fail "e2fsck -fn of $img partition $n: $(cat "fsck$n.txt")"
      checked=$((checked + 1))
    fi
    detach_all
  done < <(partitions "$img")
  [ "$checked" -ge 2 ] || fail "$img: expected root and /boot (ext4), checked $checked"
  ok "$img: e2fsck -fn clean on $checked ext4 file systems (root, /boot)"
}

# --- the plan for its own hardware ------------------------------------------
nothing=$(python3 - build.json <<'EOF2'
import json, sys
r = json.load(open(sys.argv[1]))
print("yes" if [s["step"] for s in r["steps"]] == ["nothing"] else "no")
EOF2
)
if [ "$nothing" = yes ]; then
  [ "$(jget build.json changed_files)" = "[]" ] || fail "no-op build reports changed files"
  [ "$(jget build.json chunks_new)" -eq 0 ] || fail "no-op build stored $(jget build.json chunks_new) new chunks"
  python3 -c 'import json,sys; sys.exit(0 if json.load(open("build.json"))["seconds"]["launch"] == 0 else 1)' \
    || fail "no-op build launched an appliance"
  grep -q "nothing to change" plan.txt || fail "the build did nothing, but the plan has steps"
  qemu-img compare -f raw -F raw orig.raw custom.raw \
    || fail "the plan changes nothing, but the images differ"
  ok "the plan changes nothing: no appliance, no changed file, no new chunk; qemu-img compare: identical"
else
  echo "the plan changes something on its own hardware model: the difference must be confined to it"
  qemu-img compare -f raw -F raw orig.raw custom.raw || true
  check_confined orig.raw custom.raw build.json
fi
boot_and_fsck custom.raw
rm -f custom.raw

# --- a plan that does change something, on the same hardware -----------------
# The confinement check above only runs when the planner changes something;
# exercise it (and the appliance's edits on this GPT/UEFI layout) with the
# plan hand-edited to add e1000 (the NIC's driver, in the module tree but not
# in the AHCI-only initramfs) to the initramfs: the build mounts root and
# /boot read-write and rebuilds the initramfs; nothing else may differ.
python3 - plan.json plan-e1000.json <<'EOF2'
import json, sys
p = json.load(open(sys.argv[1]))
p["initramfs_modules"] = ["e1000"]
p["rebuild_initramfs"] = True
p["steps"] = ["add e1000 to the initramfs of kernel %s and rebuild it" % p["kernel_version"]]
json.dump(p, open(sys.argv[2], "w"), indent=1)
EOF2
"$MEDIA" restore build --store repo --backup src1 --plan plan-e1000.json \
  --id src1-e1000 --key-file data.key --json > build-e1000.json
cat build-e1000.json
grep -q '"initramfs"' build-e1000.json || fail "no initramfs step in the report"
grep -q 'initrd.img-' build-e1000.json || fail "the initramfs is not among the changed files"
start_export src1-e1000
nbdcopy "$URI" e1000.raw
stop_export
set +e
qemu-img compare -f raw -F raw orig.raw e1000.raw
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "qemu-img compare: expected a difference (exit 1), got $rc"
check_confined orig.raw e1000.raw build-e1000.json
boot_and_fsck e1000.raw
echo "PASS restore_build_same_hw"
