#!/usr/bin/env bash
# Command 1 of the README: installs what is needed, builds Cairn, and runs
# the embedded single-machine install on loopback - cairn-server with its
# in-process media agent, one cairn-agent - then enrolls the agent, backs up
# a real ext4 disk image over mutual TLS, changes files, takes an
# incremental, restores it to a new file, proves it byte-identical, browses
# the backup and fetches one file from it without a restore, verifies every
# stored chunk and prints a short summary.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" "$ROOT/build"
B="$ROOT/build"
SERVER="$B/server/cairn-server"
AGENT="$B/agent/cairn-agent"
CTL="$B/cli/cairnctl"
MEDIA="$B/media_agent/cairn-media"

DEMO=${CAIRN_DEMO_DIR:-/tmp/cairn-demo}
rm -rf "$DEMO"
mkdir -p "$DEMO"
cd "$DEMO"
SERVER_PID=
AGENT_PID=
cleanup() {
  for pid in $AGENT_PID $SERVER_PID; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $AGENT_PID $SERVER_PID; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json_field() {  # the first "NAME": value of pretty-printed JSON on stdin
  sed -n -e "s/^ *\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" \
         -e "s/^ *\"$1\": \([^\",]*\),\{0,1\}$/\1/p" | head -n 1
}
wait_until() {  # wait_until SECONDS command...: poll a condition with a deadline
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
PORT=${CAIRN_DEMO_PORT:-17443}
ADDR=127.0.0.1:$PORT
ctl() { "$CTL" --server "$ADDR" --cred-dir "$DEMO/server/admin" --timeout 30s "$@"; }
START=$SECONDS

step "A 1 GiB ext4 disk image filled with files from this machine's /usr"
mkdir content
cp -a /usr/share/doc /usr/share/man /usr/include content/ 2>/dev/null || true
truncate -s 1G disk.img
mkfs.ext4 -q -F -L cairn-demo -d content disk.img
rm -rf content
echo "disk.img: $(du -h --apparent-size disk.img | cut -f1) apparent, $(du -h disk.img | cut -f1) allocated"

step "cairn-server init (internal CA, server certificate, admin credential, encryption key)"
"$SERVER" init --dir server --encrypt --json > init.json
FPR=$(json_field ca_fingerprint < init.json)
echo "CA fingerprint: $FPR"

step "cairn-server run on $ADDR with the embedded media agent"
"$SERVER" run --dir server --listen "$ADDR" --embedded-media --store repo > server.log 2>&1 &
SERVER_PID=$!
wait_until 30 grep -q "serving on port" server.log || { cat server.log; exit 1; }

step "Enroll an agent with a one-time token"
TOKEN=$(ctl --json token create --role agent --ttl 10m | json_field token)
"$AGENT" enroll --server "$ADDR" --token "$TOKEN" --ca-fingerprint "$FPR" \
  --name demo-pc --state-dir agent
"$AGENT" run --state-dir agent > agent.log 2>&1 &
AGENT_PID=$!
wait_until 30 sh -c "'$CTL' --server $ADDR --cred-dir server/admin --json clients show demo-pc | grep -q '\"connected\": true'" \
  || { cat agent.log; exit 1; }
ctl clients list

step "Full backup over the network"
T0=$SECONDS
ctl backup start --client demo-pc --source "$DEMO/disk.img" --wait
FULL_SECONDS=$((SECONDS - T0))
FULL=$(ctl --json backups list --client demo-pc | json_field backup_id)

step "Change files on the disk, then an incremental backup"
head -c 20M /dev/urandom > report.bin
debugfs -w -f - disk.img >/dev/null 2>&1 <<'CMDS'
mkdir alice
write report.bin alice/report.bin
CMDS
rm -f report.bin
T0=$SECONDS
ctl --json backup start --client demo-pc --source "$DEMO/disk.img" --incremental --wait > incr.json
INCR_SECONDS=$((SECONDS - T0))
INCR=$(json_field backup_id < incr.json)
ctl backups list --client demo-pc

step "Restore $INCR to a new file and compare"
ctl restore start --backup "$INCR" --target "$DEMO/restored.img" --wait
cmp disk.img restored.img && echo "restored.img is byte-identical to disk.img"
e2fsck -fn restored.img >/dev/null && echo "e2fsck: restored file system is clean"

step "Browse $INCR without restoring it: list, find, fetch one file"
if [ "$(id -u)" -eq 0 ] && [ -e /dev/fuse ]; then
  ctl browse ls "$INCR:/alice"
  ctl browse find "$INCR" 'report.*'
  ctl browse get "$INCR:/alice/report.bin" --to "$DEMO/report-from-backup.bin"
  debugfs -R "dump alice/report.bin $DEMO/report-from-image.bin" disk.img >/dev/null 2>&1
  cmp report-from-backup.bin report-from-image.bin \
    && echo "report.bin fetched from the backup is byte-identical to the one on disk.img"
else
  echo "(skipped: browsing mounts the backup on this host, which needs root and /dev/fuse)"
fi

step "Stop the daemons and verify every stored chunk"
cleanup
AGENT_PID=
SERVER_PID=
"$MEDIA" store verify --store repo --key-file server/keys/default.key

IMAGE=$(stat -c %s disk.img)
STORED=$(du -sb repo/chunks | cut -f1)
step "Summary"
printf '  image size                  %s\n' "$(numfmt --to=iec "$IMAGE")"
printf '  backups                     2 (full %s, incremental %s)\n' "$FULL" "$INCR"
printf '  logical data backed up      %s (2 x image)\n' "$(numfmt --to=iec $((2 * IMAGE)))"
printf '  stored in the repository    %s (compressed, encrypted, deduplicated)\n' "$(numfmt --to=iec "$STORED")"
printf '  reduction                   %sx\n' "$(awk -v a=$((2 * IMAGE)) -v b="$STORED" 'BEGIN{printf "%.1f", a/b}')"
printf '  full backup / incremental   %ss / %ss\n' "$FULL_SECONDS" "$INCR_SECONDS"
printf '  total demo time             %ss\n' "$((SECONDS - START))"
printf '\nFiles are in %s (server/, agent/, repo/, logs).\n' "$DEMO"
