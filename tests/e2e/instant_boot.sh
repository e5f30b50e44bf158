#!/usr/bin/env bash
# End-to-end: instant boot (issue 6, "Delivery"; docs/instant-boot.md).
#   - the debian-bios-ahci fixture is backed up into an encrypted store;
#   - refusals: an existing --overlay without --force (exit 2, file
#     untouched), an unknown backup (exit 3), a missing key (exit 5); none
#     leaves an overlay, a temporary file or a work directory behind;
#   - `cairn-media instant-boot --disk-bus ahci --serial LOG --json` boots
#     the backup from its NBD export: the fixture's marker appears on the
#     serial console while the background copy runs, the copy completes
#     ("stream-complete"), the guest powers itself off after the marker and
#     the command ends with exit 0 and a summary; the overlay is a qcow2 with
#     no backing file (qemu-img info), mode 0600, the export's nbdkit and
#     QEMU are gone, the store lock is free (store verify opens the store);
#   - the overlay alone (no export, no store) boots to the marker again
#     under cairn-boot-check;
#   - a damaged chunk in a copy of the store: the copy fails with
#     "stream-error" (QEMU's message), the VM keeps running until stopped,
#     exit 4 (DataLoss), the overlay keeps its backing file;
#   - SIGTERM while a second instant boot runs: the VM is quit over QMP, the
#     command exits 143 (the copy had not completed: the overlay still
#     names the export), no process is left.
# Usage: instant_boot.sh CAIRN-AGENT CAIRN-MEDIA CAIRN-BOOT-CHECK FIXTURE.raw
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

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-instant-boot-e2e-XXXXXX")
BG_PID=""
cleanup() {
  [ -n "$BG_PID" ] && kill "$BG_PID" 2>/dev/null || true
  [ -n "$BG_PID" ] && wait "$BG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
# The commands' work directories (sockets, logs) go here, so the test can
# see that none is left behind.
mkdir tmp vm
export TMPDIR=$WORK/tmp

fail() {
  echo "FAIL: $*" >&2
  for f in events.jsonl boot.err serial.log; do
    [ -f "$f" ] && { echo "--- $f (end)" >&2; tail -n 30 "$f" >&2; }
  done
  exit 1
}
# event FILE NAME: the last JSON line of FILE whose "event" is NAME (empty
# if none).
event() {
  python3 -c '
import json, sys
last = ""
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    j = json.loads(line)  # every stdout line must be one JSON object
    if j.get("event") == sys.argv[2]:
        last = line
print(last)' "$1" "$2"
}
nothing_left() {  # nothing_left NAME...: vm/ holds exactly these; tmp/ empty
  local want have
  want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
  have=$(ls -A vm | sort | tr '\n' ' ')
  [ "$have" = "$want" ] || fail "vm/ holds '$have', expected '$want'"
  [ -z "$(ls -A tmp)" ] || fail "left in \$TMPDIR: $(ls -A tmp)"
  if pgrep -f "$WORK/" >/dev/null; then
    fail "a process still runs: $(pgrep -af "$WORK/")"
  fi
}
SIZE=$(stat -c %s "$FIXTURE")
MARKER="CAIRN-BOOT-OK debian-bios-ahci"
BOOT=("$MEDIA" instant-boot --store repo --key-file data.key --disk-bus ahci
      --nic e1000 --memory 1024)

# --- backup -------------------------------------------------------------------
"$MEDIA" store init --store repo >/dev/null
"$MEDIA" key generate --out data.key >/dev/null
"$AGENT" backup --store repo --source "$FIXTURE" --name pc1 --id src1 \
  --key-file data.key --quiet
ok "backed up $(basename "$FIXTURE") as src1 (encrypted)"

# --- refusals -----------------------------------------------------------------
echo "not an overlay" > vm/existing.qcow2
sha256sum vm/existing.qcow2 > existing.sha
expect_fail 2 "already exists" "${BOOT[@]}" --backup src1 --overlay vm/existing.qcow2
expect_fail 2 '"ALREADY_EXISTS"' "${BOOT[@]}" --backup src1 \
  --overlay vm/existing.qcow2 --json
sha256sum -c --quiet existing.sha || fail "a refused instant boot changed the file"
expect_fail 3 "" "${BOOT[@]}" --backup nosuch --overlay vm/x.qcow2
expect_fail 5 "" "$MEDIA" instant-boot --store repo --backup src1 \
  --overlay vm/x.qcow2
expect_fail 2 "unknown disk bus" "$MEDIA" instant-boot --store repo \
  --key-file data.key --backup src1 --overlay vm/x.qcow2 --disk-bus scsi
nothing_left existing.qcow2
ok "refused: existing overlay (2, untouched), unknown backup (3), missing key (5), bad disk bus (2); nothing left behind"

# --- instant boot ---------------------------------------------------------------
# --copy-rate 16 (MiB/s): the 2 GiB copy takes ~2 min, longer than the boot
# (~1-1.5 min), so the guest normally powers off while the copy still runs
# and QEMU (-no-shutdown) is kept until it completes. Either order must end
# with a self-contained overlay; the test reports which one happened.
"${BOOT[@]}" --backup src1 --overlay vm/disk.qcow2 --serial serial.log \
  --copy-rate 16 --json > events.jsonl 2> boot.err &
BG_PID=$!
# wait_for WHAT SECONDS CONDITION...: until CONDITION holds, while the
# command runs (or has just ended).
wait_for() {
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 2))); do
    "$@" && return 0
    if ! kill -0 "$BG_PID" 2>/dev/null; then
      "$@" && return 0
      fail "instant-boot ended before $what"
    fi
    sleep 0.5
  done
  fail "no $what within $secs s"
}
has_marker() { [ -f serial.log ] && grep -qF "$MARKER" serial.log; }
has_event() { [ -n "$(event events.jsonl "$1")" ]; }
wait_for "VM start" 120 has_event vm-started
[ -n "$(event events.jsonl export-started)" ] || fail "no export-started event"
ok "VM started from the NBD export ($(event events.jsonl export-started))"
wait_for "boot marker" 900 has_marker
ok "the guest booted from overlay + export to its marker"
wait_for "stream-complete" 1200 has_event stream-complete
ok "background copy complete: $(event events.jsonl stream-complete)"
# The fixture powers itself off after the marker; the command then ends.
for _ in $(seq 600); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$BG_PID" 2>/dev/null; then
  echo "note: the guest did not power off; stopping the VM with SIGTERM"
  kill -TERM "$BG_PID"
fi
set +e; wait "$BG_PID"; rc=$?; set -e
BG_PID=""
[ "$rc" -eq 0 ] || fail "instant-boot exited $rc"
event events.jsonl summary > summary.json
[ -s summary.json ] || fail "no summary line"
[ "$(jget summary.json stream_complete)" = True ] || fail "summary: $(cat summary.json)"
[ "$(jget summary.json overlay)" = "$WORK/vm/disk.qcow2" ] || fail "summary overlay: $(cat summary.json)"
[ "$(jget summary.json virtual_size)" -eq "$SIZE" ] || fail "summary size: $(cat summary.json)"
[ -n "$(event events.jsonl export-stopped)" ] || fail "no export-stopped event"
[ -n "$(event events.jsonl vm-exited)" ] || fail "no vm-exited event"
shutdown=$(event events.jsonl guest-shutdown)
[ -n "$shutdown" ] || fail "no guest-shutdown event"
[ "$(event events.jsonl stream-started | python3 -c 'import json,sys; print(json.load(sys.stdin)["speed"])')" -eq $((16 << 20)) ] \
  || fail "stream-started without the copy rate: $(event events.jsonl stream-started)"
case $shutdown in
  *'"stream_running":true'*) ok "the guest powered off while the copy ran; QEMU was kept until it completed" ;;
  *) ok "the copy completed before the guest powered off" ;;
esac
ok "instant-boot ended: $(cat summary.json)"

qemu-img info --output=json vm/disk.qcow2 > info.json
[ "$(jget info.json format)" = qcow2 ] || fail "overlay format $(jget info.json format)"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit("backing-filename" in j or "full-backing-filename" in j)' info.json \
  || fail "the overlay still has a backing file: $(cat info.json)"
[ "$(jget info.json virtual-size)" -eq "$SIZE" ] || fail "overlay virtual size"
[ "$(stat -c %a vm/disk.qcow2)" = 600 ] || fail "overlay mode $(stat -c %a vm/disk.qcow2)"
nothing_left existing.qcow2 disk.qcow2
"$MEDIA" store verify --store repo --key-file data.key >/dev/null \
  || fail "store verify failed (store still locked?)"
ok "the overlay is a self-contained qcow2 ($(jget info.json actual-size) bytes allocated); no process left; store unlocked and verified"

# --- the overlay alone boots -------------------------------------------------
set +e
"$BOOTCHECK" --disk vm/disk.qcow2 --format qcow2 --firmware bios --bus ahci \
  --nic e1000 --mac 52:54:00:c0:ff:ee --marker "$MARKER" --json --timeout 400 \
  > boot-alone.json
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "the overlay alone did not boot (exit $rc): $(cat boot-alone.json)"
rm -rf tmp/cairn-boot.*  # the boot check's own work directory (its logs)
ok "the overlay alone boots to the marker ($(jget boot-alone.json outcome), $(jget boot-alone.json elapsed_seconds) s)"

# --- a damaged chunk breaks the copy ----------------------------------------------
# A copy of the store with one data chunk damaged: the stream job fails on
# it, "stream-error" is reported with QEMU's message while the VM keeps
# running on overlay + export (no export-stopped yet), and once the VM is
# over (SIGTERM, or the guest powering off) the command exits 4 (DataLoss,
# the plugin's code from nbdkit's log); the overlay still has its backing.
cp -a repo repo-bad
chunk=$(find repo-bad/chunks -type f -size +1k -print -quit)
[ -n "$chunk" ] || fail "no chunk file found"
cp "$chunk" chunk.bak
byte=$(od -An -tu1 -j60 -N1 "$chunk" | tr -d ' ')
printf "\\$(printf %o $((255 - byte)))" | dd of="$chunk" bs=1 seek=60 conv=notrunc status=none
cmp -s "$chunk" chunk.bak && fail "chunk was not damaged"
rm -f events.jsonl serial.log
"$MEDIA" instant-boot --store repo-bad --key-file data.key --backup src1 \
  --overlay vm/bad.qcow2 --nic none --memory 1024 --json > events.jsonl 2> boot.err &
BG_PID=$!
wait_for "stream-error" 900 has_event stream-error
err=$(event events.jsonl stream-error)
echo "$err" | grep -q "background copy failed" || fail "stream-error: $err"
if kill -0 "$BG_PID" 2>/dev/null; then
  [ -z "$(event events.jsonl export-stopped)" ] || fail "export stopped while the VM runs"
  running="the VM kept running on overlay + export"
  kill -TERM "$BG_PID"
else
  running="the guest had powered off"
fi
set +e; wait "$BG_PID"; rc=$?; set -e
BG_PID=""
[ "$rc" -eq 4 ] || fail "damaged chunk: exit $rc, expected 4: $(tail -n 2 events.jsonl)"
event events.jsonl error | grep -q DATA_LOSS || fail "no DATA_LOSS error line"
qemu-img info --output=json vm/bad.qcow2 | grep -q backing-filename \
  || fail "the overlay of a failed copy lost its backing file"
rm -rf vm/bad.qcow2 repo-bad
nothing_left existing.qcow2 disk.qcow2
ok "damaged chunk: stream-error ($(echo "$err" | cut -c1-160)...), $running, exit 4 (DATA_LOSS)"

# --- SIGTERM during an instant boot -------------------------------------------
rm -f events.jsonl serial.log
"${BOOT[@]}" --backup src1 --overlay vm/term.qcow2 --json > events.jsonl 2> boot.err &
BG_PID=$!
wait_for "VM start" 120 has_event stream-started
kill -TERM "$BG_PID"
set +e; wait "$BG_PID"; rc=$?; set -e
BG_PID=""
if [ -n "$(event events.jsonl stream-complete)" ]; then
  [ "$rc" -eq 0 ] || fail "SIGTERM after the copy: exit $rc"
else
  [ "$rc" -eq 143 ] || fail "SIGTERM: exit $rc, expected 143: $(tail -n 3 events.jsonl)"
  event events.jsonl error | grep -q CANCELLED || fail "no CANCELLED error line"
fi
[ -n "$(event events.jsonl stop-requested)" ] || fail "no stop-requested event"
rm -f vm/term.qcow2
nothing_left existing.qcow2 disk.qcow2
ok "SIGTERM: VM quit, exit $rc, no process or work directory left"
echo "PASS instant_boot"
