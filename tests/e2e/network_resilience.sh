#!/usr/bin/env bash
# End-to-end resilience of the network path on loopback, with the real
# daemons: cairn-server (embedded media agent) + cairn-agent + cairnctl.
#   (a) kill -9 the agent mid-backup: the job fails with a clear error, no
#       backup is recorded; the restarted agent's retry succeeds and does not
#       resend the chunks already stored.
#   (b) kill -9 the server (and with it the embedded media agent) mid-backup:
#       after a restart the job is failed ("server stopped while the job was
#       running"), no backup is recorded, the agent reconnects by itself, the
#       retry succeeds and restores byte-exact.
#   (c) a clean SIGTERM restart keeps the catalog: clients, backups and jobs
#       are listed the same before and after; a backup restores after it.
# The images are random (incompressible), so "not resent" is measurable:
# a retry's new stored bytes stay below the image size minus what the failed
# attempt had reported done.
#
# usage: network_resilience.sh CAIRN_SERVER CAIRN_AGENT CAIRNCTL
# KEEP_WORK=1 keeps the work directory (logs) for inspection;
# RESILIENCE_IMAGE_MIB sets the image size (default 1024).
set -euo pipefail
SERVER_BIN=$(readlink -f "$1")
AGENT_BIN=$(readlink -f "$2")
CTL_BIN=$(readlink -f "$3")
# shellcheck source=lib_network.sh
. "$(dirname "$(readlink -f "$0")")/lib_network.sh"
net_setup net-resilience
T_START=$(now_s)
IMAGE_MIB=${RESILIENCE_IMAGE_MIB:-1024}
IMAGE_BYTES=$((IMAGE_MIB * 1024 * 1024))
CHUNKS=$(( (IMAGE_BYTES + 4194303) / 4194304 ))

step "cairn-server init, run on $ADDR"
net_server_init --encrypt
net_server_start --reconnect-grace 5

step "enroll and run an agent"
CLIENT=$(net_enroll resilience-pc "$WORK/agent")
# Progress every second, so that a job is seen moving early.
sed -i 's/^progress_seconds: .*/progress_seconds: 1/' "$WORK/agent/agent.yaml"
grep -q '^progress_seconds: 1$' "$WORK/agent/agent.yaml" || fail "cannot set progress_seconds"
AGENT_RUN_ARGS=(--heartbeat-interval 2 --reconnect-max 4)
net_agent_start "$WORK/agent" agent.log "${AGENT_RUN_ARGS[@]}"
wait_until 30 client_connected "$CLIENT" || fail "agent did not connect"

step "make two ${IMAGE_MIB} MiB random images"
head -c "$IMAGE_BYTES" /dev/urandom > disk-a.img
head -c "$IMAGE_BYTES" /dev/urandom > disk-b.img

# start_backup IMAGE: queues a backup (no wait), prints the job id.
start_backup() {
  local id
  id=$(ctl --json backup start --client "$CLIENT" --source "$WORK/$1" | json_field job_id)
  [ -n "$id" ] || fail "backup start printed no job id"
  echo "$id"
}
# Killed only once a quarter is done, so "not resent" is a real saving.
job_moving() { [ "$(job_field "$1" done_bytes)" -gt $((IMAGE_BYTES / 4)) ]; }
# backup_retry IMAGE: backup --wait that must succeed; prints the backup id.
backup_retry() {
  ctl --json backup start --client "$CLIENT" --source "$WORK/$1" --wait > "retry-$1.json" ||
    fail "retry backup of $1 failed: $(cat "retry-$1.json")"
  local id
  id=$(json_field backup_id < "retry-$1.json")
  [ -n "$id" ] || fail "no backup id in: $(cat "retry-$1.json")"
  echo "$id"
}
# Progress counts what the pipeline has read; at the kill up to its read
# batches and the agent's send window (RemoteMedia, 16 MiB) were read but not
# yet stored, and are rightly sent again.
IN_FLIGHT=$((96 * 1024 * 1024))
# check_not_resent BACKUP DONE_BEFORE: random data does not compress, so
# resending everything would store at least the image size; the retry must
# have stored less than what the failed attempt had left to do (plus a
# little per chunk for headers).
check_not_resent() {
  local stored limit
  stored=$(ctl --json backups show "$1" | json_field new_stored_bytes)
  limit=$((IMAGE_BYTES - $2 + IN_FLIGHT + CHUNKS * 1024))
  echo "   retry stored $stored new bytes of a $IMAGE_BYTES-byte image" \
       "(the failed attempt had done $2; a full resend would store >= $IMAGE_BYTES)"
  [ "$stored" -lt "$limit" ] ||
    fail "the retry resent chunks already stored: $stored new bytes >= $limit"
}

# ---------------------------------------------------------------- (a) ----
step "(a) kill -9 the agent mid-backup"
T_A=$(now_s)
JOB_A=$(start_backup disk-a.img)
wait_until 60 job_moving "$JOB_A" || fail "job $JOB_A made no progress: $(job_record "$JOB_A")"
kill -KILL "$AGENT_PID"
DONE_A=$(job_field "$JOB_A" done_bytes)
stop_pid "$AGENT_PID" KILL 10
[ "$(job_field "$JOB_A" state)" != succeeded ] ||
  fail "job $JOB_A finished before the kill; use a bigger RESILIENCE_IMAGE_MIB"
wait_until 30 job_is_final "$JOB_A" || fail "job $JOB_A did not end after the agent died"
REC=$(job_record "$JOB_A")
[ "$(echo "$REC" | rec_field state)" = failed ] || fail "job $JOB_A is not failed: $REC"
ERR_A=$(echo "$REC" | rec_field error)
[ "$ERR_A" = "agent disconnected during the job" ] || fail "job $JOB_A: unexpected error '$ERR_A'"
echo "   job $JOB_A failed at $DONE_A of $IMAGE_BYTES bytes: $ERR_A"
[ "$(backup_count)" -eq 0 ] || fail "a backup was recorded for the killed job: $(ctl backups list)"

step "(a) restart the agent; the retry succeeds without resending stored chunks"
net_agent_start "$WORK/agent" agent-2.log "${AGENT_RUN_ARGS[@]}"
wait_until 30 client_connected "$CLIENT" || fail "restarted agent did not connect"
BACKUP_A=$(backup_retry disk-a.img)
check_not_resent "$BACKUP_A" "$DONE_A"
[ "$(backup_count)" -eq 1 ] || fail "expected exactly 1 backup: $(ctl backups list)"
echo "   (a) took $(elapsed "$T_A") s"

# ---------------------------------------------------------------- (b) ----
step "(b) kill -9 the server (embedded media agent) mid-backup"
T_B=$(now_s)
JOB_B=$(start_backup disk-b.img)
wait_until 60 job_moving "$JOB_B" || fail "job $JOB_B made no progress: $(job_record "$JOB_B")"
DONE_B=$(job_field "$JOB_B" done_bytes)
stop_pid "$SERVER_PID" KILL 10
# The agent notices and retries with backoff while the server is away.
wait_until 20 grep -q "reconnecting in" agent-2.log || fail "the agent did not notice the server died"
sleep 1  # keep the server down for a moment so the agent backs off (not a wait for a condition)
net_server_start --reconnect-grace 5
grep -q "job $JOB_B was running when the server stopped; marked failed" "$SERVER_LOG" ||
  fail "the restarted server did not fail job $JOB_B"
REC=$(job_record "$JOB_B")
[ "$(echo "$REC" | rec_field state)" = failed ] || fail "job $JOB_B is not failed: $REC"
ERR_B=$(echo "$REC" | rec_field error)
[ "$ERR_B" = "server stopped while the job was running" ] ||
  fail "job $JOB_B: unexpected error '$ERR_B'"
echo "   job $JOB_B failed at $DONE_B of $IMAGE_BYTES bytes: $ERR_B"
[ "$(backup_count)" -eq 1 ] || fail "a backup was recorded for the interrupted job: $(ctl backups list)"

step "(b) the agent reconnects by itself; the retry succeeds and restores byte-exact"
T_RECONNECT=$(now_s)
wait_until 60 client_connected "$CLIENT" || fail "the agent did not reconnect to the restarted server"
echo "   agent reconnected $(elapsed "$T_RECONNECT") s after the server was back"
kill -0 "$AGENT_PID" || fail "the agent process died"
BACKUP_B=$(backup_retry disk-b.img)
check_not_resent "$BACKUP_B" "$DONE_B"
ctl restore start --backup "$BACKUP_B" --target "$WORK/restored-b.img" --wait > restore-b.out ||
  fail "restore of $BACKUP_B failed: $(cat restore-b.out)"
cmp disk-b.img restored-b.img || fail "restore of $BACKUP_B is not byte-exact"
rm -f restored-b.img
echo "   (b) took $(elapsed "$T_B") s"

# ---------------------------------------------------------------- (c) ----
step "(c) a clean SIGTERM restart keeps clients, backups and jobs"
T_C=$(now_s)
# connected/last_seen describe the live stream, not the catalog's content.
snapshot() {
  { ctl --json clients list | grep -v -e '"connected":' -e '"last_seen":'
    ctl --json backups list
    ctl --json jobs list
  } > "$1"
}
snapshot catalog-before.json
grep -q "\"backup_id\": \"$BACKUP_A\"" catalog-before.json || fail "snapshot lacks $BACKUP_A"
stop_pid "$SERVER_PID" TERM
[ "$STOP_RC" -eq 0 ] || fail "cairn-server exited $STOP_RC on SIGTERM"
net_server_start --reconnect-grace 5
snapshot catalog-after.json
diff -u catalog-before.json catalog-after.json ||
  fail "the catalog listed differently after a restart"
echo "   $(grep -c '"client_id"' catalog-before.json) client/backup/job records identical"
wait_until 60 client_connected "$CLIENT" || fail "the agent did not reconnect after a clean restart"
ctl restore start --backup "$BACKUP_A" --target "$WORK/restored-a.img" --wait > restore-a.out ||
  fail "restore of $BACKUP_A after the restart failed: $(cat restore-a.out)"
cmp disk-a.img restored-a.img || fail "restore of $BACKUP_A is not byte-exact"
echo "   (c) took $(elapsed "$T_C") s"

step "SIGTERM stops the agent cleanly"
stop_pid "$AGENT_PID" TERM
[ "$STOP_RC" -eq 0 ] || fail "cairn-agent exited $STOP_RC on SIGTERM"
echo "PASS ($(elapsed "$T_START") s)"
