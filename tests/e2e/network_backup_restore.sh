#!/usr/bin/env bash
# End-to-end over the network on loopback, with the real daemons:
# cairn-server (embedded media agent) + cairn-agent + cairnctl.
#   init the server, start it, create a token, enroll an agent (and check
#   that a reused token and a wrong CA fingerprint are refused and write
#   nothing), run the agent, back up a 256 MiB ext4 image, change a file,
#   take an incremental, restore it to a new file and prove it byte-exact
#   (cmp, qemu-img compare); restore --reboot: refused (nothing written) by
#   an agent without reboot_command, and with one the command runs after the
#   verified restore; corrupt the restored file and restore --resume: only
#   the damaged chunks are written, byte-exact again; revoke the client and
#   check a new backup fails,
#   make a restore build plan for the backup through the server, and stop
#   the agent with SIGTERM (exit 0).
#
# usage: network_backup_restore.sh CAIRN_SERVER CAIRN_AGENT CAIRNCTL
# KEEP_WORK=1 keeps the work directory (logs) for inspection.
set -euo pipefail
SERVER_BIN=$(readlink -f "$1")
AGENT_BIN=$(readlink -f "$2")
CTL_BIN=$(readlink -f "$3")
# shellcheck source=lib_network.sh
. "$(dirname "$(readlink -f "$0")")/lib_network.sh"
net_setup net-e2e

step "cairn-server init"
net_server_init --encrypt

step "cairn-server run on $ADDR"
net_server_start

step "token create, enroll"
TOKEN=$(net_token)
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
net_agent_start "$WORK/agent" agent.log --heartbeat-interval 2
wait_until 30 client_connected "$CLIENT" || fail "agent did not connect"
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
ctl --json backups show "$FULL" | grep -q '"encrypted": true' \
  || fail "$FULL is not marked encrypted (the server was initialised with --encrypt)"

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

step "restore --reboot on an agent without reboot_command fails before writing"
set +e
ctl restore start --backup "$INCR" --target "$WORK/noreboot.img" --reboot --wait \
  > noreboot.out 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "restore --reboot without reboot_command succeeded"
grep -q "reboot requested but this agent has no reboot_command configured" noreboot.out \
  || fail "no clear reboot error: $(cat noreboot.out)"
[ ! -e noreboot.img ] || fail "the refused restore created its target"

step "restart the agent with a reboot_command (a script writing a marker)"
cat > fake-reboot.sh <<'SH'
#!/bin/sh
echo "reboot requested" > "$1"
SH
chmod +x fake-reboot.sh
grep -v '^reboot_command:' agent/agent.yaml > agent/agent.yaml.new || true
printf 'reboot_command: ["%s", "%s"]\n' "$WORK/fake-reboot.sh" "$WORK/rebooted.marker" \
  >> agent/agent.yaml.new
chmod 600 agent/agent.yaml.new && mv agent/agent.yaml.new agent/agent.yaml
stop_pid "$AGENT_PID" TERM
[ "$STOP_RC" -eq 0 ] || fail "cairn-agent exited $STOP_RC on SIGTERM"
net_agent_start "$WORK/agent" agent-2.log --heartbeat-interval 2
wait_until 30 client_connected "$CLIENT" || fail "agent did not reconnect"

step "restore --reboot: verified, then the reboot command runs"
ctl restore start --backup "$INCR" --target "$WORK/rebooted.img" --reboot --wait \
  > reboot.out 2>&1 || fail "restore --reboot failed: $(cat reboot.out)"
wait_until 30 test -s rebooted.marker || fail "the reboot command did not run"
cmp disk.img rebooted.img || fail "restore --reboot is not byte-exact"
grep -q "verified 268435456 bytes" reboot.out \
  || fail "the restore does not report its verification: $(cat reboot.out)"
grep -q "rebooting" agent-2.log || fail "the agent did not log the reboot"

step "corrupt 5 MiB in the middle, restore --resume to the same file"
dd if=/dev/urandom of=rebooted.img bs=1M seek=100 count=5 conv=notrunc status=none
cmp -s disk.img rebooted.img && fail "the corruption did not change the file"
ctl --json restore start --backup "$INCR" --target "$WORK/rebooted.img" --resume \
  --wait > resume.json || fail "restore --resume failed: $(cat resume.json)"
RESUME_JOB=$(json_field job_id < resume.json)
result=$(job_field "$RESUME_JOB" result)
echo "resume result: $result"
written=$(echo "$result" | sed -n 's/^wrote [0-9]* chunks (\([0-9]*\) bytes).*/\1/p')
skipped=$(echo "$result" | sed -n 's/.*skipped \([0-9]*\) chunks.*/\1/p')
[ -n "$written" ] && [ -n "$skipped" ] || fail "no figures in the job result: $result"
[ "$skipped" -gt 0 ] || fail "resume skipped no chunk: $result"
[ "$written" -lt "$(stat -c %s disk.img)" ] || fail "resume rewrote the whole image: $result"
[ "$written" -gt 0 ] || fail "resume wrote nothing over the corruption: $result"
cmp disk.img rebooted.img || fail "restore --resume is not byte-exact"

step "restore plan through the server (the backup onto its own client)"
ctl profile show "$CLIENT" --out "$WORK/self.pb" > /dev/null
set +e
ctl restore plan --backup "$INCR" --target-file "$WORK/self.pb" \
  --out "$WORK/plan.json" > plan.out 2>&1
rc=$?
set -e
# 0: ready; 1: blockers listed (this host's own profile may lack pieces).
[ "$rc" -le 1 ] || fail "restore plan exited $rc: $(cat plan.out)"
grep -q "Restore build of $INCR for profile:" plan.out \
  || fail "restore plan printed no build plan: $(cat plan.out)"
python3 - "$WORK/plan.json" "$INCR" <<'PY' || fail "plan.json is not the plan"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["format_version"] == 1 and p["source_backup_id"] == sys.argv[2], p
assert p["target"].startswith("profile:") and p["steps"], p
PY
expect_exit 2 ctl restore plan --backup "$INCR"   # no target
expect_exit 3 ctl restore plan --backup no-such-backup --target-file "$WORK/self.pb"

step "revoke the client; a new backup must fail"
ctl clients revoke "$CLIENT" > /dev/null
ctl --json clients show "$CLIENT" | grep -q '"revoked": true' || fail "client not revoked"
set +e
ctl backup start --client "$CLIENT" --source "$WORK/disk.img" --wait > revoked.out 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a backup of a revoked client succeeded: $(cat revoked.out)"

step "SIGTERM stops the agent cleanly"
stop_pid "$AGENT_PID" TERM
[ "$STOP_RC" -eq 0 ] || fail "cairn-agent exited $STOP_RC on SIGTERM"
echo "PASS"
