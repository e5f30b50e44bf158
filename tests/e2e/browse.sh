#!/usr/bin/env bash
# End-to-end browse (issue 7; docs/browse.md): cairn-server with the embedded
# media agent (encrypted store) + cairn-agent + cairnctl, on the
# debian-bios-ahci fixture image.
#   back it up twice (full, incremental), wait for the file catalogue, then:
#   catalogue, ls /etc, find sshd_config / hostname, search across the
#   client's backups, get a file and a directory (tar) and compare both with
#   the fixture's own files read through an independent path (a read-only
#   loop mount of the raw image); restore a directory and a file onto the
#   client through its agent (--to-agent) and compare them the same way;
#   refuse path traversal; prove the backup's
#   chunks and manifests are unchanged after browsing; prove the server
#   leaves no mount behind when it stops.
#
# usage: browse.sh CAIRN_SERVER CAIRN_AGENT CAIRNCTL FIXTURE_IMAGE
# Exit 77 (skip) without root, /dev/fuse or nbdfuse.
set -euo pipefail
SERVER_BIN=$(readlink -f "$1")
AGENT_BIN=$(readlink -f "$2")
CTL_BIN=$(readlink -f "$3")
IMAGE=$(readlink -f "$4")
if [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ] || ! command -v nbdfuse >/dev/null; then
  echo "SKIP: needs root, /dev/fuse and nbdfuse"; exit 77
fi
[ -f "$IMAGE" ] || { echo "FAIL: no fixture image $IMAGE" >&2; exit 1; }
# shellcheck source=lib_network.sh
. "$(dirname "$(readlink -f "$0")")/lib_network.sh"
net_setup browse
REF=$WORK/ref
cleanup_ref() { mountpoint -q "$REF" 2>/dev/null && umount "$REF" || true; }
trap 'cleanup_ref; net_cleanup' EXIT

step "independent view of the fixture: read-only loop mount of partition 1"
start=$(sfdisk --json "$IMAGE" | awk -F'[:,]' '/"start"/ { gsub(/ /, "", $2); print $2; exit }')
[ -n "$start" ] || fail "no partition in $IMAGE"
mkdir "$REF"
mount -o ro,loop,noload,offset=$((start * 512)) "$IMAGE" "$REF"
[ -f "$REF/etc/hostname" ] || fail "the fixture has no /etc/hostname"

step "server (encrypted), agent"
net_server_init --encrypt
net_server_start
CLIENT=$(net_enroll browse-pc "$WORK/agent")
net_agent_start "$WORK/agent" agent.log --heartbeat-interval 2
wait_until 30 client_connected "$CLIENT" || fail "agent did not connect"

step "full and incremental backup of $(basename "$IMAGE")"
ctl --json backup start --client "$CLIENT" --source "$IMAGE" --wait > full.json \
  || fail "backup failed: $(cat full.json)"
FULL=$(json_field backup_id < full.json)
ctl --json backup start --client "$CLIENT" --source "$IMAGE" --incremental \
  --wait > incr.json || fail "incremental failed: $(cat incr.json)"
INCR=$(json_field backup_id < incr.json)
[ -n "$FULL" ] && [ -n "$INCR" ] || fail "no backup ids"

step "the media agent records a catalogue after each backup"
wait_until 120 test -f "$WORK/repo/catalogues/$FULL.cfc" \
  || fail "no catalogue for $FULL: $(tail -5 "$SERVER_LOG")"
wait_until 120 test -f "$WORK/repo/catalogues/$INCR.cfc" \
  || fail "no catalogue for $INCR: $(tail -5 "$SERVER_LOG")"
if grep -a -q "hostname" "$WORK/repo/catalogues/$FULL.cfc"; then
  fail "the catalogue of an encrypted backup shows file names in clear"
fi
snapshot() { (cd "$WORK/repo" && find chunks manifests -type f -print0 | sort -z | xargs -0 sha256sum); }
snapshot > before.sha

step "browse catalogue"
ctl --json browse catalogue "$FULL" > cat.json
grep -q '"fs_type": "ext4"' cat.json || fail "no ext4 file system: $(cat cat.json)"

step "browse ls /etc equals the fixture's /etc"
ctl --json browse ls "$FULL:/etc" > ls.json || fail "ls failed: $(cat ls.json)"
python3 - "$REF/etc" ls.json <<'PY'
import json, os, sys
ref = sorted(os.listdir(sys.argv[1]))
got = sorted(os.path.basename(e["path"]) for e in json.load(open(sys.argv[2]))["entries"])
if ref != got:
    print("listing differs:", sorted(set(ref) ^ set(got))[:20]); sys.exit(1)
PY
ctl browse ls "$FULL:/etc" > ls.txt
grep -q ' hostname$' ls.txt || fail "human ls lacks hostname: $(head -5 ls.txt)"

step "browse find, browse search"
ctl --json browse find "$FULL" hostname > find.json
grep -q '"path": "/etc/hostname"' find.json || fail "find: $(cat find.json)"
if [ -e "$REF/etc/ssh/sshd_config" ]; then
  ctl --json browse find "$FULL" sshd_config > find-sshd.json
  grep -q '/etc/ssh/sshd_config' find-sshd.json || fail "find sshd_config: $(cat find-sshd.json)"
fi
ctl --json browse search "$CLIENT" '/etc/hostname' > search.json
[ "$(grep -c '"backup_id"' search.json)" -eq 2 ] || fail "search: $(cat search.json)"
expect_exit 3 ctl browse find "$FULL" 'no-such-file-*'

step "browse get a file: byte-exact, with mode and mtime"
mkdir out
ctl browse get "$FULL:/etc/hostname" --to out/ 2> get.err || fail "get: $(cat get.err)"
cmp out/hostname "$REF/etc/hostname" || fail "hostname differs"
[ "$(stat -c '%a %Y' out/hostname)" = "$(stat -c '%a %Y' "$REF/etc/hostname")" ] \
  || fail "mode/mtime differ: $(stat -c '%a %Y' out/hostname) vs $(stat -c '%a %Y' "$REF/etc/hostname")"
# A symlink at the destination is replaced, not followed.
echo keep > victim
ln -s "$WORK/victim" out/link
ctl browse get "$FULL:/etc/hostname" --to out/link 2>/dev/null || fail "get over a symlink"
[ "$(cat victim)" = keep ] || fail "get followed a symlink at the destination"
[ ! -L out/link ] && cmp -s out/link "$REF/etc/hostname" || fail "out/link is not the file"

step "browse get a directory (tar) equals the fixture's"
ctl browse get "$FULL:/etc/apt" --to apt.tar 2> getdir.err || fail "get dir: $(cat getdir.err)"
mkdir untar
tar -C untar -xpf apt.tar
diff -r --no-dereference untar/apt "$REF/etc/apt" || fail "directory differs"
(cd "$REF/etc" && find apt -printf '%p %m %U %G %T@\n' | sort) > ref.meta
(cd untar && find apt -printf '%p %m %U %G %T@\n' | sort) > got.meta
diff ref.meta got.meta || fail "metadata differs"

step "bad input: traversal, unknown path, unknown backup"
expect_exit 2 ctl browse ls "$FULL:/etc/../.."
expect_exit 2 ctl browse get "$FULL:/../etc/hostname" --to out/x
expect_exit 3 ctl browse ls "$FULL:/no/such/dir"
expect_exit 3 ctl browse ls "no-such-backup:/"
[ ! -e out/x ] || fail "a refused get wrote a file"

step "browse get --to-agent: the agent restores a directory and a file"
# The agent runs on this machine: what it writes is compared with the
# fixture like the tar above.
mkdir "$WORK/agent-restore"
ctl browse get "$FULL:/etc/apt" --to-agent "$CLIENT:$WORK/agent-restore/apt" \
  --wait > to-agent.out 2> to-agent.err \
  || fail "get --to-agent: $(cat to-agent.out to-agent.err)"
grep -q 'succeeded' to-agent.out || fail "no success line: $(cat to-agent.out)"
diff -r --no-dereference "$WORK/agent-restore/apt" "$REF/etc/apt" \
  || fail "the agent-restored directory differs"
(cd "$WORK/agent-restore" && find apt -printf '%p %m %U %G %T@\n' | sort) > agent.meta
diff ref.meta agent.meta || fail "the agent-restored metadata differs"
ctl --json browse get "$FULL:/etc/hostname" \
  --to-agent "$CLIENT:$WORK/agent-restore/hostname" --wait > to-agent.json \
  || fail "get --to-agent of a file: $(cat to-agent.json)"
[ "$(json_field state < to-agent.json)" = succeeded ] \
  || fail "file-restore job: $(cat to-agent.json)"
[ "$(json_field kind < to-agent.json)" = file-restore ] \
  || fail "job kind: $(cat to-agent.json)"
cmp "$WORK/agent-restore/hostname" "$REF/etc/hostname" || fail "hostname differs"
[ "$(stat -c '%a %u %g %.9Y' "$WORK/agent-restore/hostname")" = \
  "$(stat -c '%a %u %g %.9Y' "$REF/etc/hostname")" ] \
  || fail "hostname metadata differs"
expect_exit 2 ctl browse get "$FULL:/etc/hostname" --to-agent "$CLIENT:relative/path"
expect_exit 2 ctl browse get "$FULL:/etc/hostname" \
  --to-agent "$CLIENT:$WORK/agent-restore/../escape"
[ "$(ls -A "$WORK/agent-restore" | sort | tr '\n' ' ')" = "apt hostname " ] \
  || fail "unexpected files: $(ls -A "$WORK/agent-restore")"

step "browsing changed nothing in the store"
snapshot > after.sha
cmp before.sha after.sha || fail "chunks or manifests changed while browsing"

step "server stop leaves no mount, loop device or nbdkit behind"
stop_pid "$SERVER_PID" TERM
if grep -q " $WORK/server/browse" /proc/self/mountinfo; then
  fail "mounts left: $(grep " $WORK/server/browse" /proc/self/mountinfo)"
fi
if losetup -a | grep -q "$WORK/server/browse"; then fail "loop devices left"; fi
if pgrep -f "nbdkit.*$WORK/repo" >/dev/null; then fail "nbdkit left running"; fi
echo "PASS"
