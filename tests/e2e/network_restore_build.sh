#!/usr/bin/env bash
# End-to-end: a restore to dissimilar hardware through the storage manager,
# with the real daemons on loopback (cairn-server with its embedded media
# agent, two cairn-agents, cairnctl; docs/restore-build.md):
#   - agent "src" (its profile read from the recorded debian-bios-ahci
#     machine, tests/data/profiles/bios-ahci-e1000) backs up the fixture
#     image; agent "lab" reports the recorded virtio-blk + virtio-net machine
#     (3 GiB disk);
#   - `cairnctl restore plan` and `restore build --wait` for the lab client:
#     a restore-build job with phases, a customized image in the catalog
#     (kind customized, parent the backup); the same build again returns the
#     cached image without a job, --rebuild makes a new one; refusals (no
#     target, unknown backup, --template without use-template-kernel);
#   - boot templates: import from the backup, list, show, duplicate and
#     unknown-image refusals, delete;
#   - delivery: `cairnctl restore start --backup IMAGE --client lab` writes
#     the image through the lab agent (verified); `cairnctl export` of the
#     image as qcow2 is received whole (SHA-256) and equals that disk
#     (qemu-img compare); the disk boots on the lab's hardware model
#     (virtio) to the fixture's marker, with root on vda.
# Usage: network_restore_build.sh CAIRN-SERVER CAIRN-AGENT CAIRNCTL
#                                 CAIRN-BOOT-CHECK FIXTURE.raw PROFILES-DIR
# Exit 77 (skip): a tool is missing.
set -euo pipefail
SERVER_BIN=$(readlink -f "$1")
AGENT_BIN=$(readlink -f "$2")
CTL_BIN=$(readlink -f "$3")
BOOTCHECK=$(readlink -f "$4")
FIXTURE=$(readlink -f "$5")
PROFILES=$(readlink -f "$6")
for tool in nbdkit qemu-img qemu-nbd qemu-system-x86_64 python3; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
[ -f "$FIXTURE" ] || { echo "FAIL: fixture $FIXTURE missing" >&2; exit 1; }
export LIBGUESTFS_BACKEND=${LIBGUESTFS_BACKEND:-direct}
export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
# shellcheck source=lib_e2e.sh
. "$(dirname "$(readlink -f "$0")")/lib_e2e.sh"
# shellcheck source=lib_network.sh
. "$(dirname "$(readlink -f "$0")")/lib_network.sh"
net_setup net-restore-build

step "server (embedded media, encrypted), two agents"
net_server_init --encrypt
net_server_start
SRC_DIR=$WORK/agent-src
LAB_DIR=$WORK/agent-lab
SRC=$(net_enroll src-pc "$SRC_DIR")
LAB=$(net_enroll lab-pc "$LAB_DIR")
# The agents report recorded machines instead of this host.
sed -i "s|^profile_root: .*|profile_root: \"$PROFILES/bios-ahci-e1000\"|" "$SRC_DIR/agent.yaml"
sed -i "s|^profile_root: .*|profile_root: \"$PROFILES/virtio-blk-net\"|" "$LAB_DIR/agent.yaml"
grep -q "bios-ahci-e1000" "$SRC_DIR/agent.yaml" || fail "agent.yaml has no profile_root: $(cat "$SRC_DIR/agent.yaml")"
net_agent_start "$SRC_DIR" agent-src.log --heartbeat-interval 2
net_agent_start "$LAB_DIR" agent-lab.log --heartbeat-interval 2
wait_until 30 client_connected "$SRC" || fail "src agent did not connect"
wait_until 30 client_connected "$LAB" || fail "lab agent did not connect"
wait_until 30 ctl profile show "$LAB" >/dev/null 2>&1 || fail "lab reported no profile"

step "back up the fixture from the src agent"
cp --sparse=always "$FIXTURE" "$WORK/disk.raw"
ctl --json backup start --client "$SRC" --source "$WORK/disk.raw" --wait > backup.json
BACKUP=$(jget backup.json backup_id)
[ -n "$BACKUP" ] || fail "no backup id: $(cat backup.json)"
rm -f "$WORK/disk.raw"

step "restore plan and refusals"
ctl restore plan --backup "$BACKUP" --target "$LAB" --out plan.json > plan.txt \
  || fail "plan not ready: $(cat plan.txt)"
grep -q "Ready to build." plan.txt || fail "plan not ready: $(cat plan.txt)"
grep -q virtio_blk plan.json || fail "the plan does not add virtio_blk"
expect_fail 2 "needs --target" ctl restore build --backup "$BACKUP"
expect_fail 3 "no-such" ctl restore build --backup no-such --target "$LAB"
expect_fail 2 "use-template-kernel" ctl restore build --backup "$BACKUP" \
  --target "$LAB" --template t1
[ "$(ctl --json jobs list | grep -c restore-build || true)" -eq 0 ] \
  || fail "a refused build queued a job"

step "restore build through the server"
start=$(now_s)
ctl --json restore build --backup "$BACKUP" --target "$LAB" --wait > build.json 2> build.err \
  || fail "restore build failed: $(cat build.json build.err)"
[ "$(jget build.json kind)" = "restore-build" ] || fail "job kind: $(cat build.json)"
[ "$(jget build.json state)" = "succeeded" ] || fail "build: $(cat build.json)"
IMAGE=$(jget build.json result_backup_id)
[ -n "$IMAGE" ] || fail "no image id: $(cat build.json)"
echo "built $IMAGE in $(elapsed "$start") s"
ctl --json backups show "$IMAGE" > image.json
[ "$(jget image.json kind)" = "customized" ] || fail "image kind: $(cat image.json)"
[ "$(jget image.json parent_id)" = "$BACKUP" ] || fail "image parent: $(cat image.json)"
[ "$(jget image.json image_size)" -eq $((3 << 30)) ] || fail "image size: $(cat image.json)"
stored=$(jget image.json new_stored_bytes)
[ "$stored" -lt $((512 << 20)) ] || fail "the build stored $stored bytes: chunks not shared"
ctl jobs list | grep -q "restore-build" || fail "jobs list shows no restore-build job"

step "the same build is cached; --rebuild builds again"
ctl --json restore build --backup "$BACKUP" --target "$LAB" > cached.json
[ "$(jget cached.json cached)" = "True" ] || fail "not cached: $(cat cached.json)"
[ "$(jget cached.json image_id)" = "$IMAGE" ] || fail "cached another image: $(cat cached.json)"
ctl --json restore build --backup "$BACKUP" --target "$LAB" --rebuild > rebuild.json
REJOB=$(jget rebuild.json job_id)
[ -n "$REJOB" ] && [ "$(jget rebuild.json kind)" = "restore-build" ] \
  || fail "--rebuild queued no job: $(cat rebuild.json)"
ctl --json jobs cancel "$REJOB" > cancel.json
[ "$(job_field "$REJOB" state)" = "cancelled" ] || fail "rebuild: $(job_record "$REJOB")"
# The worker stops at its next phase boundary and stores nothing.
wait_until 400 grep -q "restore build $REJOB failed: the restore build was cancelled" \
  "$SERVER_LOG" || fail "the cancelled build did not stop: $(tail -5 "$SERVER_LOG")"
[ "$(ctl --json backups list --client "$SRC" | grep -c '"kind": "customized"' || true)" -eq 1 ] \
  || fail "a cancelled build recorded an image"

step "boot templates"
ctl --json template import --name debian12 --from-backup "$BACKUP" \
  --description "stock Debian 12" > tmpl.json
[ -n "$(jget tmpl.json kernel_version)" ] || fail "template without kernel: $(cat tmpl.json)"
[ "$(jget tmpl.json image_id)" = "$BACKUP" ] || fail "template image: $(cat tmpl.json)"
ctl template list | grep -q "^debian12 " || fail "template list: $(ctl template list)"
ctl template show debian12 | grep -q "stock Debian 12" || fail "template show"
expect_fail 2 "already exists" ctl template import --name debian12 --from-backup "$BACKUP"
expect_fail 3 "no-such" ctl template import --name t2 --from-backup no-such
ctl template delete debian12 > /dev/null
expect_fail 3 "debian12" ctl template show debian12
ctl backups show "$BACKUP" > /dev/null || fail "deleting the template removed its image"

step "deliver the customized image through the lab agent"
ctl --json restore start --backup "$IMAGE" --client "$LAB" \
  --target "$WORK/lab-disk.raw" --wait > restore.json \
  || fail "delivery failed: $(cat restore.json)"
[ "$(stat -c %s "$WORK/lab-disk.raw")" -eq $((3 << 30)) ] || fail "delivered disk size"

step "cairnctl export: a qcow2 of the customized image equals the delivered disk"
ctl --json export --backup "$IMAGE" --format qcow2 --out "$WORK/image.qcow2" > export.json \
  || fail "export failed: $(cat export.json)"
[ "$(jget export.json virtual_size)" -eq $((3 << 30)) ] || fail "export: $(cat export.json)"
[ "$(sha256sum < "$WORK/image.qcow2" | cut -d' ' -f1)" = "$(jget export.json sha256)" ] \
  || fail "the exported file's SHA-256 differs from the server's"
qemu-img compare -f qcow2 -F raw "$WORK/image.qcow2" "$WORK/lab-disk.raw" \
  || fail "the exported qcow2 differs from the delivered disk"
expect_fail 2 "exists" ctl export --backup "$IMAGE" --format qcow2 --out "$WORK/image.qcow2"
expect_fail 3 "no-such" ctl export --backup no-such --format raw --out "$WORK/x.raw"
[ ! -e "$WORK/x.raw" ] || fail "a refused export wrote a file"
ls -a "$WORK" | grep -q "cairn-" && fail "a temporary export file was left: $(ls -a "$WORK")"
rm -f "$WORK/image.qcow2"

step "the delivered disk boots on the lab's hardware model"
set +e
"$BOOTCHECK" --disk "$WORK/lab-disk.raw" --firmware bios --bus virtio-blk \
  --nic virtio-net --mac 52:54:00:12:34:56 --timeout 400 \
  --marker "CAIRN-BOOT-OK debian-bios-ahci" --json > boot.json
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "the delivered image did not boot: $(cat boot.json)"
[ "$(jget boot.json guest_info.root_disk)" = "vda" ] || fail "root disk: $(cat boot.json)"
echo "booted in $(jget boot.json elapsed_seconds) s with root on vda"
echo "PASS"
