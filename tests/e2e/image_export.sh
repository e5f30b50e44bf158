#!/usr/bin/env bash
# End-to-end: export to hypervisors (issue 6, "Delivery"; docs/export.md).
#   - the debian-bios-ahci fixture is backed up into an encrypted store;
#   - `cairn-media export` writes it as raw, qcow2, vmdk and vhdx: each is
#     the format asked for (qemu-img info: qcow2 compat 1.1, vmdk
#     streamOptimized, vhdx smaller than its disk, raw sparse), mode 0600,
#     with the JSON report right, and `qemu-img compare` finds it identical
#     to the fixture; the progress line reaches the CLI;
#   - refusals: unknown format (exit 2), existing destination without
#     --force (exit 2, file untouched; --force replaces it), unknown backup
#     (3), wrong key and missing key (5); none leaves a file, a temporary
#     file or a work directory behind;
#   - SIGTERM during an export: exit 143, nothing under the final name and no
#     temporary file; SIGKILL: never a file under the final name, nbdkit and
#     qemu-img end by themselves (only the hidden temporary file may remain);
#   - the store is unchanged (manifests, verify);
#   - the vmdk and the vhdx boot under QEMU (AHCI, e1000, BIOS) to the
#     fixture's marker.
# Usage: image_export.sh CAIRN-AGENT CAIRN-MEDIA CAIRN-BOOT-CHECK FIXTURE.raw
# Exit 77 (skip): a tool is missing.
set -euo pipefail
. "$(dirname "$(readlink -f "$0")")/lib_e2e.sh"
AGENT=$(realpath "$1")
MEDIA=$(realpath "$2")
BOOTCHECK=$(realpath "$3")
FIXTURE=$(realpath "$4")
for tool in nbdkit qemu-img qemu-system-x86_64 python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
[ -f "$FIXTURE" ] || { echo "FAIL: fixture $FIXTURE missing" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-image-export-e2e-XXXXXX")
BG_PID=""
cleanup() {
  [ -n "$BG_PID" ] && kill "$BG_PID" 2>/dev/null || true
  [ -n "$BG_PID" ] && wait "$BG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
# The exports' work directories (nbdkit socket, logs) go here, so the test
# can see that none is left behind.
mkdir tmp out
export TMPDIR=$WORK/tmp

# only_in_out NAME...: out/ holds exactly these files (no temporary file) and
# no work directory is left in $TMPDIR.
only_in_out() {
  local want have
  want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
  have=$(ls -A out | sort | tr '\n' ' ')
  [ "$have" = "$want" ] || fail "out/ holds '$have', expected '$want'"
  [ -z "$(ls -A tmp)" ] || fail "left in \$TMPDIR: $(ls -A tmp)"
}
EXPORT=("$MEDIA" export --store repo --backup src1 --key-file data.key)
SIZE=$(stat -c %s "$FIXTURE")

# --- backup ---------------------------------------------------------------
"$MEDIA" store init --store repo >/dev/null
"$MEDIA" key generate --out data.key >/dev/null
"$MEDIA" key generate --out other.key >/dev/null
"$AGENT" backup --store repo --source "$FIXTURE" --name pc1 --id src1 \
  --key-file data.key --quiet
ok "backed up $(basename "$FIXTURE") as src1 (encrypted)"
sha256sum repo/manifests/* > manifests.sha

# --- the four formats -----------------------------------------------------
for fmt in raw qcow2 vmdk vhdx; do
  "${EXPORT[@]}" --format "$fmt" --out "out/disk.$fmt" --json > "$fmt.json" \
    || fail "export $fmt: $(cat "$fmt.json")"
  f=out/disk.$fmt
  [ "$(jget "$fmt.json" out)" = "$WORK/$f" ] || fail "$fmt: out is $(jget "$fmt.json" out)"
  [ "$(jget "$fmt.json" format)" = "$fmt" ] || fail "$fmt: format $(jget "$fmt.json" format)"
  [ "$(jget "$fmt.json" virtual_size)" -eq "$SIZE" ] || fail "$fmt: virtual size"
  [ "$(jget "$fmt.json" file_size)" -eq "$(stat -c %s "$f")" ] || fail "$fmt: file size"
  [ "$(stat -c %a "$f")" = 600 ] || fail "$fmt: mode $(stat -c %a "$f")"
  qemu-img info --output=json "$f" > "$fmt.info"
  [ "$(jget "$fmt.info" format)" = "$fmt" ] || fail "$fmt: qemu-img info says $(jget "$fmt.info" format)"
  [ "$(jget "$fmt.info" virtual-size)" -eq "$SIZE" ] || fail "$fmt: qemu-img virtual size"
  actual=$(jget "$fmt.info" actual-size)
  case $fmt in
    qcow2) [ "$(jget "$fmt.info" format-specific.data.compat)" = 1.1 ] \
             || fail "qcow2 compat is $(jget "$fmt.info" format-specific.data.compat)" ;;
    vmdk) [ "$(jget "$fmt.info" format-specific.data.create-type)" = streamOptimized ] \
            || fail "vmdk create type is $(jget "$fmt.info" format-specific.data.create-type)" ;;
  esac
  # raw (sparse), qcow2 and vhdx (dynamic) hold only the data; vmdk compressed.
  [ "$actual" -lt $((SIZE * 3 / 4)) ] || fail "$fmt: $actual bytes allocated of $SIZE"
  qemu-img compare -q -f "$fmt" -F raw "$f" "$FIXTURE" \
    || fail "$fmt: qemu-img compare differs from the fixture"
  ok "$fmt: identical to the fixture; $(stat -c %s "$f") bytes file, $actual allocated, $(jget "$fmt.json" seconds) s ($(jget "$fmt.json" mib_per_second) MiB/s)"
done
only_in_out disk.raw disk.qcow2 disk.vmdk disk.vhdx

# --- refusals ---------------------------------------------------------------
expect_fail 2 "unknown image format" "${EXPORT[@]}" --format vhd --out out/x.vhd
expect_fail 2 "unknown image format" "${EXPORT[@]}" --format vdi --out out/x.vdi --json
sha256sum out/disk.qcow2 > qcow2.sha
expect_fail 2 "already exists" "${EXPORT[@]}" --format qcow2 --out out/disk.qcow2
expect_fail 2 "ALREADY_EXISTS" "${EXPORT[@]}" --format raw --out out/disk.qcow2 --json
sha256sum -c --quiet qcow2.sha || fail "a refused export changed the existing file"
expect_fail 3 "" "$MEDIA" export --store repo --backup nosuch --key-file data.key \
  --format qcow2 --out out/x.qcow2
expect_fail 5 "not with the given key" "$MEDIA" export --store repo --backup src1 \
  --key-file other.key --format qcow2 --out out/x.qcow2
expect_fail 5 "encrypted" "$MEDIA" export --store repo --backup src1 \
  --format qcow2 --out out/x.qcow2
expect_fail 3 "does not exist" "${EXPORT[@]}" --format raw --out nodir/x.raw
only_in_out disk.raw disk.qcow2 disk.vmdk disk.vhdx
ok "refused: unknown format (2), existing destination (2, untouched), unknown backup (3), wrong key (5), missing key (5), missing directory (3); nothing left behind"

# --force replaces (qcow2 over a raw file), with the progress on stderr.
cp --sparse=always out/disk.raw out/forced.qcow2
"${EXPORT[@]}" --format qcow2 --out out/forced.qcow2 --force > force.out 2> force.err \
  || fail "export --force: $(cat force.out force.err)"
[ "$(qemu-img info --output=json out/forced.qcow2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])')" = qcow2 ] \
  || fail "--force did not replace the file"
qemu-img compare -q -f qcow2 -F raw out/forced.qcow2 "$FIXTURE" || fail "forced export differs"
grep -Eq '^export 2\.00 GiB / 2\.00 GiB +100% .* in ' force.err \
  || fail "no final progress line on stderr: $(cat force.err)"
grep -q "exported src1 as qcow2 to $WORK/out/forced.qcow2" force.out || fail "summary: $(cat force.out)"
rm out/forced.qcow2
only_in_out disk.raw disk.qcow2 disk.vmdk disk.vhdx
ok "--force replaced an existing file; progress: $(grep -c '^export ' force.err) line(s), last: $(tail -n1 force.err)"

# --- interrupted exports ------------------------------------------------------
# wait_for_temp NAME: until qemu-img's temporary file for out/NAME exists.
wait_for_temp() {
  for _ in $(seq 300); do
    compgen -G "out/.$1.cairn-export-*" >/dev/null && return 0
    kill -0 "$BG_PID" 2>/dev/null || fail "export of $1 ended early"
    sleep 0.1
  done
  fail "no temporary file for $1 appeared"
}
# wait_for_data NAME: the temporary file holds more than 1 MiB, so qemu-img
# is mid-way through the copy (the export still runs).
wait_for_data() {
  local tmp size
  for _ in $(seq 600); do
    tmp=$(compgen -G "out/.$1.cairn-export-*" | head -1 || true)
    size=$( [ -n "$tmp" ] && stat -c %s "$tmp" 2>/dev/null || echo 0)
    [ "$size" -gt $((1 << 20)) ] && return 0
    kill -0 "$BG_PID" 2>/dev/null || fail "export of $1 ended early"
    sleep 0.1
  done
  fail "the export of $1 wrote no data within 60 s"
}
"${EXPORT[@]}" --format vmdk --out out/term.vmdk > term.out 2>&1 &
BG_PID=$!
wait_for_temp term.vmdk
wait_for_data term.vmdk
kill -TERM "$BG_PID"
set +e; wait "$BG_PID"; rc=$?; set -e
BG_PID=""
[ "$rc" -eq 143 ] || fail "SIGTERM: exit $rc, expected 143: $(cat term.out)"
grep -q "cancelled" term.out || fail "SIGTERM: $(cat term.out)"
pgrep -f "$WORK/" >/dev/null && fail "a process still runs after SIGTERM: $(pgrep -af "$WORK/")"
only_in_out disk.raw disk.qcow2 disk.vmdk disk.vhdx
ok "SIGTERM during an export: exit 143, no file, no temporary file, no process"

"${EXPORT[@]}" --format qcow2 --out out/kill.qcow2 > kill.out 2>&1 &
BG_PID=$!
wait_for_temp kill.qcow2
wait_for_data kill.qcow2
kill -KILL "$BG_PID"
wait "$BG_PID" 2>/dev/null || true
BG_PID=""
for _ in $(seq 300); do
  pgrep -f "$WORK/" >/dev/null || break
  sleep 0.1
done
pgrep -f "$WORK/" >/dev/null && fail "nbdkit or qemu-img outlived a killed export: $(pgrep -af "$WORK/")"
[ ! -e out/kill.qcow2 ] || fail "SIGKILL left a file under the final name"
leftover=$(ls -A out | grep -c '^\.kill\.qcow2\.cairn-export-' || true)
rm -f out/.kill.qcow2.cairn-export-*
rm -rf tmp/*
only_in_out disk.raw disk.qcow2 disk.vmdk disk.vhdx
ok "SIGKILL during an export: nothing under the final name, nbdkit and qemu-img gone ($leftover hidden temporary file left, as documented)"

sha256sum -c --quiet manifests.sha || fail "the store's manifests changed"
"$MEDIA" store verify --store repo --key-file data.key >/dev/null \
  || fail "store verify failed after the exports"
ok "store unchanged and verified"

# --- boot the vmdk and the vhdx ----------------------------------------------
MARKER="CAIRN-BOOT-OK debian-bios-ahci"
for fmt in vmdk vhdx; do
  set +e
  "$BOOTCHECK" --disk "out/disk.$fmt" --format "$fmt" --firmware bios --bus ahci \
    --nic e1000 --mac 52:54:00:c0:ff:ee --marker "$MARKER" --json --timeout 400 \
    > "boot-$fmt.json"
  rc=$?
  set -e
  [ "$rc" -eq 0 ] || fail "the $fmt export did not boot (exit $rc): $(cat "boot-$fmt.json")"
  ok "the $fmt export boots to the marker ($(jget "boot-$fmt.json" outcome), $(jget "boot-$fmt.json" elapsed_seconds) s)"
done
echo "PASS image_export"
