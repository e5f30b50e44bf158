#!/usr/bin/env bash
# Load on the network path, on loopback with the real daemons: N agents
# (default 20: N tokens, N enrollments, N state directories, N `cairn-agent
# run` processes) back up at once against one cairn-server with its embedded
# media agent. Each agent's image is a shared random base (default 64 MiB)
# followed by its own random tail (default 4 MiB), so the store must hold
# about base + N x tail: deduplication across clients shows. Then all N
# restore at once, and every restore is compared with its image (cmp).
# Prints a table: peak RSS (VmHWM) of the server and of every agent, read
# before they stop, and the times.
#
# usage: network_load.sh CAIRN_SERVER CAIRN_AGENT CAIRNCTL
# LOAD_AGENTS, LOAD_BASE_MIB, LOAD_UNIQUE_MIB change the shape;
# KEEP_WORK=1 keeps the work directory (logs) for inspection.
set -euo pipefail
SERVER_BIN=$(readlink -f "$1")
AGENT_BIN=$(readlink -f "$2")
CTL_BIN=$(readlink -f "$3")
# shellcheck source=lib_network.sh
. "$(dirname "$(readlink -f "$0")")/lib_network.sh"
NET_LOG_TAIL=15
net_setup net-load
T_START=$(now_s)
N=${LOAD_AGENTS:-20}
BASE_MIB=${LOAD_BASE_MIB:-64}
UNIQUE_MIB=${LOAD_UNIQUE_MIB:-4}
IMAGE_BYTES=$(( (BASE_MIB + UNIQUE_MIB) * 1024 * 1024 ))

step "cairn-server init, run on $ADDR"
net_server_init --encrypt
net_server_start

step "make $N images: a shared ${BASE_MIB} MiB base + ${UNIQUE_MIB} MiB of their own"
head -c $((BASE_MIB * 1024 * 1024)) /dev/urandom > base.img
for i in $(seq 1 "$N"); do
  { cat base.img; head -c $((UNIQUE_MIB * 1024 * 1024)) /dev/urandom; } > "disk-$i.img"
done

step "enroll $N agents ($N tokens) and run them"
T_ENROLL=$(now_s)
declare -a CLIENTS AGENT_PIDS
for i in $(seq 1 "$N"); do
  CLIENTS[$i]=$(net_enroll "load-pc-$i" "$WORK/agent-$i")
done
for i in $(seq 1 "$N"); do
  net_agent_start "$WORK/agent-$i" "agent-$i.log" --heartbeat-interval 5
  AGENT_PIDS[$i]=$AGENT_PID
done
connected_count() { ctl --json clients list | grep -c '"connected": true' || true; }
all_connected() { [ "$(connected_count)" -eq "$N" ]; }
wait_until 60 all_connected || fail "only $(connected_count) of $N agents connected"
ENROLL_S=$(elapsed "$T_ENROLL")

# wait_jobs SECONDS ID...: until every job has ended; fails unless all
# succeeded.
wait_jobs() {
  local limit=$1; shift
  local deadline=$((SECONDS + limit)) id pending
  while :; do
    ctl --json jobs list | json_records > jobs.tsv
    pending=0
    for id in "$@"; do
      case "$(grep -F "	job_id=$id	" jobs.tsv | rec_field state)" in
        succeeded) ;;
        failed|cancelled) fail "job $id: $(grep -F "	job_id=$id	" jobs.tsv)" ;;
        *) pending=$((pending + 1)) ;;
      esac
    done
    [ "$pending" -eq 0 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || fail "$pending of $# jobs still running after $limit s"
    sleep 0.5
  done
}

step "$N backups at once"
T_BACKUP=$(now_s)
declare -a BACKUP_JOBS
for i in $(seq 1 "$N"); do
  BACKUP_JOBS[$i]=$(ctl --json backup start --client "${CLIENTS[$i]}" \
    --source "$WORK/disk-$i.img" | json_field job_id)
  [ -n "${BACKUP_JOBS[$i]}" ] || fail "no job id for ${CLIENTS[$i]}"
done
wait_jobs 300 "${BACKUP_JOBS[@]}"
BACKUP_S=$(elapsed "$T_BACKUP")
ctl --json backups list | json_records > backups.tsv
[ "$(wc -l < backups.tsv)" -eq "$N" ] || fail "expected $N backups: $(cat backups.tsv)"
declare -a BACKUPS
for i in $(seq 1 "$N"); do
  BACKUPS[$i]=$(grep -F "	client_id=${CLIENTS[$i]}	" backups.tsv | rec_field backup_id)
  [ -n "${BACKUPS[$i]}" ] || fail "no backup of ${CLIENTS[$i]}"
done
LOGICAL=$((N * IMAGE_BYTES))
SENT=$(awk -F'\t' '{ for (i = 1; i <= NF; i++) if ($i ~ /^new_stored_bytes=/) s += substr($i, 18) }
  END { printf "%d", s }' backups.tsv)
STORED=$(du -sb "$WORK/repo/chunks" | cut -f1)
IDEAL=$(( (BASE_MIB + N * UNIQUE_MIB) * 1024 * 1024 ))
echo "   logical $LOGICAL bytes; new bytes reported by the $N backups $SENT;" \
     "chunk store $STORED bytes (ideal $IDEAL)"
# Random data does not compress: without cross-client dedup the store would
# hold the logical size. Allow for concurrent first uploads of base chunks.
[ "$STORED" -lt $((IDEAL + IDEAL / 2)) ] ||
  fail "the store holds $STORED bytes for $IDEAL bytes of distinct data: no dedup across clients?"

step "$N restores at once"
T_RESTORE=$(now_s)
declare -a RESTORE_JOBS
for i in $(seq 1 "$N"); do
  RESTORE_JOBS[$i]=$(ctl --json restore start --backup "${BACKUPS[$i]}" \
    --target "$WORK/restored-$i.img" | json_field job_id)
  [ -n "${RESTORE_JOBS[$i]}" ] || fail "no restore job id for ${BACKUPS[$i]}"
done
wait_jobs 300 "${RESTORE_JOBS[@]}"
RESTORE_S=$(elapsed "$T_RESTORE")
for i in $(seq 1 "$N"); do
  cmp "disk-$i.img" "restored-$i.img" || fail "restore of ${BACKUPS[$i]} is not byte-exact"
  rm -f "restored-$i.img"
done
echo "   $N restores byte-exact"

step "peak RSS (VmHWM), read before stopping"
SERVER_RSS=$(peak_rss_kib "$SERVER_PID")
declare -a AGENT_RSS
for i in $(seq 1 "$N"); do
  AGENT_RSS[$i]=$(peak_rss_kib "${AGENT_PIDS[$i]}")
  [ -n "${AGENT_RSS[$i]}" ] && [ "${AGENT_RSS[$i]}" -gt 0 ] || fail "agent $i is not running"
done
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
for i in $(seq 1 "$N"); do
  stop_pid "${AGENT_PIDS[$i]}" TERM
  [ "$STOP_RC" -eq 0 ] || fail "agent $i exited $STOP_RC on SIGTERM"
done
stop_pid "$SERVER_PID" TERM
[ "$STOP_RC" -eq 0 ] || fail "cairn-server exited $STOP_RC on SIGTERM"

printf '\n| %-22s | %12s |\n' process "peak RSS MiB"
printf '|%s|%s|\n' ------------------------ --------------
printf '| %-22s | %12s |\n' "cairn-server (+media)" "$(mib "$SERVER_RSS")"
for i in $(seq 1 "$N"); do
  printf '| %-22s | %12s |\n' "cairn-agent ${CLIENTS[$i]}" "$(mib "${AGENT_RSS[$i]}")"
done
printf '%s\n' "${AGENT_RSS[@]:1}" | sort -n | awk -v n="$N" '
  { v[NR] = $1; s += $1 }
  END { printf "agents: min %.1f, median %.1f, max %.1f, mean %.1f MiB\n",
        v[1] / 1024, v[int((n + 1) / 2)] / 1024, v[n] / 1024, s / n / 1024 }'
echo "images: $N x $IMAGE_BYTES bytes; enroll+start ${ENROLL_S} s," \
     "$N backups ${BACKUP_S} s, $N restores ${RESTORE_S} s"
echo "PASS ($(elapsed "$T_START") s total)"
