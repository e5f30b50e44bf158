#!/usr/bin/env bash
# End-to-end: a separate media agent process (cairn-media serve) on
# loopback, with the real daemons: cairn-server without an embedded media
# agent, cairn-media, cairn-agent and cairnctl.
#   1. With no media agent enrolled, a backup fails with a clear error.
#   2. cairn-media enrolls with a one-time media token (an agent token, a
#      reused token and a wrong CA fingerprint are refused) and serves.
#   3. Full backup through it: the chunks and the manifest are in the media
#      agent's store, not the server's; the catalog names the media agent.
#   4. kill -9 of the media agent mid-backup: the job fails with a clear
#      error and no backup is recorded; after a restart the retry succeeds
#      without resending the chunks already stored.
#   5. Incremental after a change, restores byte-exact (cmp and qemu-img
#      compare), SIGTERM stops cairn-media cleanly.
#
# usage: network_media.sh CAIRN_SERVER CAIRN_AGENT CAIRNCTL CAIRN_MEDIA
# KEEP_WORK=1 keeps the work directory; MEDIA_TEST_IMAGE_MIB sets the image
# size (default 768).
set -euo pipefail
SERVER_BIN=$(readlink -f "$1")
AGENT_BIN=$(readlink -f "$2")
CTL_BIN=$(readlink -f "$3")
MEDIA_BIN=$(readlink -f "$4")
# shellcheck source=lib_network.sh
. "$(dirname "$(readlink -f "$0")")/lib_network.sh"
net_setup net-media
T_START=$(now_s)
IMAGE_MIB=${MEDIA_TEST_IMAGE_MIB:-768}
IMAGE_BYTES=$((IMAGE_MIB * 1024 * 1024))
CHUNKS=$(( (IMAGE_BYTES + 4194303) / 4194304 ))
MEDIA_PORT=$(net_free_port)
MEDIA_ADDR=127.0.0.1:$MEDIA_PORT

step "cairn-server init --encrypt, run without an embedded media agent on $ADDR"
net_server_init --encrypt
NET_EMBEDDED_MEDIA=0
net_server_start

step "enroll and run an agent"
CLIENT=$(net_enroll media-test-pc "$WORK/agent")
sed -i 's/^progress_seconds: .*/progress_seconds: 1/' "$WORK/agent/agent.yaml"
net_agent_start "$WORK/agent" agent.log --reconnect-max 4
wait_until 30 client_connected "$CLIENT" || fail "agent did not connect"

step "make two ${IMAGE_MIB} MiB random images"
head -c "$IMAGE_BYTES" /dev/urandom > disk-a.img
head -c "$IMAGE_BYTES" /dev/urandom > disk-b.img

step "1. no media agent yet: a backup fails with a clear error"
set +e
ctl --json backup start --client "$CLIENT" --source "$WORK/disk-a.img" --wait > no-media.json
RC=$?
set -e
[ "$RC" -eq 1 ] || fail "backup without a media agent exited $RC: $(cat no-media.json)"
grep -q "no media agent is available" no-media.json ||
  fail "unexpected error without a media agent: $(cat no-media.json)"

step "2. enroll cairn-media: wrong role, wrong CA and reused tokens are refused"
media_enroll() {  # media_enroll TOKEN FINGERPRINT STATE_DIR
  "$MEDIA_BIN" enroll --server "$ADDR" --token "$1" --ca-fingerprint "$2" \
    --name media-1 --address "$MEDIA_ADDR" --store "$WORK/media-store" \
    --state-dir "$3" --json
}
AGENT_TOKEN=$(net_token agent)
expect_exit 5 media_enroll "$AGENT_TOKEN" "$FPR" "$WORK/media-wrong-role"
[ ! -e "$WORK/media-wrong-role/cert.pem" ] || fail "a refused enrollment wrote a certificate"
BAD_FPR=$(printf '%064d' 0)
MEDIA_TOKEN=$(net_token media)
expect_exit 5 media_enroll "$MEDIA_TOKEN" "$BAD_FPR" "$WORK/media-bad-ca"
media_enroll "$MEDIA_TOKEN" "$FPR" "$WORK/media" > media-enroll.json ||
  fail "media enrollment failed: $(cat media-enroll.json)"
[ "$(json_field identity < media-enroll.json)" = media-1 ] || fail "identity: $(cat media-enroll.json)"
for f in ca.pem cert.pem key.pem server.pem media.yaml; do
  [ -s "$WORK/media/$f" ] || fail "enrollment did not write $f"
done
[ "$(stat -c %a "$WORK/media/key.pem")" = 600 ] || fail "key.pem is not mode 600"
expect_exit 5 media_enroll "$MEDIA_TOKEN" "$FPR" "$WORK/media-reused"
net_media_start "$WORK/media" media.log

step "3. full backup through the separate media agent"
ctl --json backup start --client "$CLIENT" --source "$WORK/disk-a.img" --wait > full-a.json ||
  fail "full backup failed: $(cat full-a.json)"
BACKUP_A=$(json_field backup_id < full-a.json)
[ -n "$BACKUP_A" ] || fail "no backup id: $(cat full-a.json)"
ctl --json backups show "$BACKUP_A" > show-a.json
[ "$(json_field media_id < show-a.json)" = media-1 ] ||
  fail "the backup is not on media-1: $(cat show-a.json)"
# The running media agent holds the store's lock: look at the manifest file
# (docs/formats/store-layout.md); the store is listed after the agent stops.
[ -f "$WORK/media-store/manifests/$BACKUP_A.cmf" ] ||
  fail "the media store lacks $BACKUP_A: $(ls "$WORK/media-store/manifests")"
expect_exit 5 "$MEDIA_BIN" store list --store "$WORK/media-store"
[ ! -e "$WORK/repo" ] || fail "the server created an embedded store"

step "4. kill -9 the media agent mid-backup"
JOB_B=$(ctl --json backup start --client "$CLIENT" --source "$WORK/disk-b.img" | json_field job_id)
[ -n "$JOB_B" ] || fail "backup start printed no job id"
job_moving() { [ "$(job_field "$1" done_bytes)" -gt $((IMAGE_BYTES / 4)) ]; }
wait_until 60 job_moving "$JOB_B" || fail "job $JOB_B made no progress: $(job_record "$JOB_B")"
DONE_B=$(job_field "$JOB_B" done_bytes)
stop_pid "$MEDIA_PID" KILL 10
wait_until 90 job_is_final "$JOB_B" || fail "job $JOB_B did not end after the media agent died"
REC=$(job_record "$JOB_B")
[ "$(echo "$REC" | rec_field state)" = failed ] || fail "job $JOB_B is not failed: $REC"
ERR_B=$(echo "$REC" | rec_field error)
case "$ERR_B" in
  *"media agent $MEDIA_ADDR"*) ;;
  *) fail "job $JOB_B: the error does not name the media agent: '$ERR_B'" ;;
esac
echo "   job $JOB_B failed at $DONE_B of $IMAGE_BYTES bytes: $ERR_B"
[ "$(backup_count)" -eq 1 ] || fail "a backup was recorded for the failed job: $(ctl backups list)"
kill -0 "$AGENT_PID" || fail "the agent died with the media agent"

step "4. restart cairn-media; the retry does not resend stored chunks"
net_media_start "$WORK/media" media-2.log
ctl --json backup start --client "$CLIENT" --source "$WORK/disk-b.img" --wait > retry-b.json ||
  fail "retry failed: $(cat retry-b.json)"
BACKUP_B=$(json_field backup_id < retry-b.json)
STORED=$(ctl --json backups show "$BACKUP_B" | json_field new_stored_bytes)
# Read but not yet stored at the kill (read batches + the 16 MiB send
# window) is rightly sent again.
LIMIT=$((IMAGE_BYTES - DONE_B + 96 * 1024 * 1024 + CHUNKS * 1024))
echo "   retry stored $STORED new bytes (the failed attempt had done $DONE_B of $IMAGE_BYTES)"
[ "$STORED" -lt "$LIMIT" ] || fail "the retry resent stored chunks: $STORED >= $LIMIT"

step "5. incremental after a change; restores are byte-exact"
dd if=/dev/urandom of=disk-a.img bs=1M count=8 seek=100 conv=notrunc status=none
ctl --json backup start --client "$CLIENT" --source "$WORK/disk-a.img" --incremental \
  --wait > inc-a.json || fail "incremental failed: $(cat inc-a.json)"
INC_A=$(json_field backup_id < inc-a.json)
ctl --json backups show "$INC_A" > show-inc.json
[ "$(json_field kind < show-inc.json)" = incremental ] || fail "not incremental: $(cat show-inc.json)"
INC_STORED=$(json_field new_stored_bytes < show-inc.json)
[ "$INC_STORED" -lt $((16 * 1024 * 1024)) ] ||
  fail "the incremental stored $INC_STORED bytes for an 8 MiB change"
for pair in "$INC_A:disk-a.img" "$BACKUP_B:disk-b.img"; do
  id=${pair%%:*}; img=${pair#*:}
  ctl restore start --backup "$id" --target "$WORK/restored.img" --wait > restore.out ||
    fail "restore of $id failed: $(cat restore.out)"
  cmp "$img" restored.img || fail "restore of $id is not byte-exact"
  qemu-img compare -q -f raw -F raw "$img" restored.img || fail "qemu-img compare: $id differs"
  rm -f restored.img
done
echo "   restored $INC_A and $BACKUP_B byte-exact"

step "SIGTERM stops cairn-media cleanly; its store lists and verifies"
stop_pid "$MEDIA_PID" TERM
[ "$STOP_RC" -eq 0 ] || fail "cairn-media exited $STOP_RC on SIGTERM"
"$MEDIA_BIN" store list --store "$WORK/media-store" --json > media-list.json
for id in "$BACKUP_A" "$BACKUP_B" "$INC_A"; do
  grep -q "\"$id\"" media-list.json || fail "the media store lacks $id: $(cat media-list.json)"
done
"$MEDIA_BIN" store verify --store "$WORK/media-store" --json > media-verify.json ||
  fail "the media store does not verify: $(cat media-verify.json)"
echo "PASS ($(elapsed "$T_START") s)"
