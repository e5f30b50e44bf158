#!/usr/bin/env bash
# End-to-end over the network on loopback, with the real daemons:
# cairn-server (embedded media agent) + cairn-agent + cairnctl.
#   init the server, start it, create a token, enroll an agent (and check
#   that a reused token and a wrong CA fingerprint are refused and write
#   nothing), run the agent, back up a 256 MiB ext4 image, change a file,
#   take an incremental, restore it to a new file and prove it byte-exact
#   (cmp, qemu-img compare), revoke the client and check a new backup fails,
#   and stop the agent with SIGTERM (exit 0).
#
# usage: network_backup_restore.sh CAIRN_SERVER CAIRN_AGENT CAIRNCTL
# KEEP_WORK=1 keeps the work directory (logs) for inspection.
set -euo pipefail
SERVER_BIN=$(readlink -f "$1")
AGENT_BIN=$(readlink -f "$2")
CTL_BIN=$(readlink -f "$3")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-net-e2e-XXXXXX")
SERVER_PID=
AGENT_PID=

cleanup() {
  local rc=$?
  for pid in $AGENT_PID $SERVER_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $AGENT_PID $SERVER_PID; do
    wait "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    echo "---- server log (tail) ----" >&2
    tail -n 40 "$WORK/server.log" >&2 2>/dev/null || true
    echo "---- agent log (tail) ----" >&2
    tail -n 40 "$WORK/agent.log" >&2 2>/dev/null || true
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then
    echo "work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
# json_field NAME: the first "NAME": value of pretty-printed JSON on stdin.
json_field() {
  sed -n -e "s/^ *\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" \
         -e "s/^ *\"$1\": \([^\",]*\),\{0,1\}$/\1/p" | head -n 1
}
# wait_until SECONDS command...: polls a condition until it holds.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
expect_exit() {  # expect_exit CODE command...
  local want=$1; shift
  set +e; "$@" >/dev/null 2>&1; local got=$?; set -e
  [ "$got" -eq "$want" ] || fail "expected exit $want, got $got: $*"
}
port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

PORT=
for _ in $(seq 1 50); do
  candidate=$((20000 + RANDOM % 40000))
  if port_is_free "$candidate"; then PORT=$candidate; break; fi
done
[ -n "$PORT" ] || fail "no free port"
ADDR=127.0.0.1:$PORT
ctl() { "$CTL_BIN" --server "$ADDR" --cred-dir "$WORK/server/admin" --timeout 20s "$@"; }

step "cairn-server init"
"$SERVER_BIN" init --dir "$WORK/server" --encrypt --json > init.json
FPR=$(json_field ca_fingerprint < init.json)
[ ${#FPR} -eq 64 ] || fail "no CA fingerprint in: $(cat init.json)"
[ -f server/admin/cert.pem ] || fail "init wrote no admin credential"

step "cairn-server run on $ADDR"
"$SERVER_BIN" run --dir "$WORK/server" --listen "$ADDR" --embedded-media \
  --store "$WORK/repo" > server.log 2>&1 &
SERVER_PID=$!
wait_until 30 grep -q "serving on port" server.log || fail "server did not start"

step "token create, enroll"
TOKEN=$(ctl --json token create --role agent --ttl 10m | json_field token)
[ -n "$TOKEN" ] || fail "no token"
expect_exit 5 "$AGENT_BIN" enroll --server "$ADDR" --token "$TOKEN" \
  --ca-fingerprint "$(printf '%064d' 0)" --name e2e-pc --state-dir "$WORK/wrong-ca"
[ ! -e "$WORK/wrong-ca/cert.pem" ] || fail "a refused enrollment wrote files"
"$AGENT_BIN" enroll --server "$ADDR" --token "$TOKEN" --ca-fingerprint "$FPR" \
  --name e2e-pc --state-dir "$WORK/agent" --json > enroll.json
CLIENT=$(json_field identity < enroll.json)
[ -n "$CLIENT" ] || fail "no identity in: $(cat enroll.json)"
[ "$(stat -c %a agent/key.pem)" = 600 ] || fail "key.pem is not mode 0600"
expect_exit 5 "$AGENT_BIN" enroll --server "$ADDR" --token "$TOKEN" \
  --ca-fingerprint "$FPR" --name e2e-pc2 --state-dir "$WORK/reused"
[ ! -e "$WORK/reused/cert.pem" ] || fail "a reused token wrote files"

step "cairn-agent run ($CLIENT)"
"$AGENT_BIN" run --state-dir "$WORK/agent" --heartbeat-interval 2 > agent.log 2>&1 &
AGENT_PID=$!
client_connected() { ctl --json clients show "$CLIENT" | grep -q '"connected": true'; }
wait_until 30 client_connected || fail "agent did not connect"
ctl clients list | grep -q "$CLIENT" || fail "clients list does not show $CLIENT"

step "make a 256 MiB ext4 image"
mkdir content
cp -a /usr/share/doc content/ 2>/dev/null || true
cp -a /usr/share/common-licenses content/ 2>/dev/null || true
truncate -s 256M disk.img
mkfs.ext4 -q -F -d content disk.img

step "full backup --wait"
ctl backup start --client "$CLIENT" --source "$WORK/disk.img" --wait \
  > full.out 2> full.err || fail "full backup failed: $(cat full.out full.err)"
FULL=$(sed -n 's/^job [0-9]* succeeded: backup \([^ ]*\) committed.*/\1/p' full.out)
[ -n "$FULL" ] || fail "no backup id in: $(cat full.out)"
ctl --json backups show "$FULL" | grep -q '"kind": "full"' || fail "$FULL is not a full backup"

step "change a file, incremental backup --wait"
head -c 3M /dev/urandom > newfile
debugfs -w -R "write $WORK/newfile /new-file" disk.img >/dev/null 2>&1
debugfs -R "stat /new-file" disk.img 2>/dev/null | grep -q "Size: 3145728" \
  || fail "debugfs did not write the file"
ctl --json backup start --client "$CLIENT" --source "$WORK/disk.img" \
  --incremental --wait > incr.json || fail "incremental failed: $(cat incr.json)"
INCR=$(json_field backup_id < incr.json)
[ -n "$INCR" ] && [ "$INCR" != "$FULL" ] || fail "no new backup id in: $(cat incr.json)"
ctl --json backups show "$INCR" > incr-info.json
grep -q '"kind": "incremental"' incr-info.json || fail "not incremental: $(cat incr-info.json)"
grep -q "\"parent_id\": \"$FULL\"" incr-info.json || fail "wrong parent: $(cat incr-info.json)"
full_new=$(ctl --json backups show "$FULL" | json_field new_stored_bytes)
incr_new=$(json_field new_stored_bytes < incr-info.json)
[ "$incr_new" -lt "$full_new" ] || fail "incremental stored $incr_new bytes, full $full_new"

step "restore --wait to a new file"
ctl restore start --backup "$INCR" --target "$WORK/restored.img" --wait > restore.out \
  || fail "restore failed: $(cat restore.out)"
cmp disk.img restored.img || fail "restore is not byte-exact"
qemu-img compare -q -f raw -F raw disk.img restored.img || fail "qemu-img compare differs"
ctl jobs list --client "$CLIENT" | grep -c succeeded | grep -q '^3$' \
  || fail "jobs list does not show 3 succeeded jobs: $(ctl jobs list)"

step "revoke the client; a new backup must fail"
ctl clients revoke "$CLIENT" > /dev/null
ctl --json clients show "$CLIENT" | grep -q '"revoked": true' || fail "client not revoked"
set +e
ctl backup start --client "$CLIENT" --source "$WORK/disk.img" --wait > revoked.out 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a backup of a revoked client succeeded: $(cat revoked.out)"

step "SIGTERM stops the agent cleanly"
kill -TERM "$AGENT_PID"
set +e; wait "$AGENT_PID"; rc=$?; set -e
AGENT_PID=
[ "$rc" -eq 0 ] || fail "cairn-agent exited $rc on SIGTERM"
echo "PASS"
