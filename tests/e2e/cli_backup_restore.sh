#!/usr/bin/env bash
# End-to-end: the real cairn-agent and cairn-media binaries on a real ext4
# file system image. Backs up, restores byte-exact (plain and encrypted),
# checks the restored file system with e2fsck, takes an incremental after
# changing files, flips a byte in a stored chunk and expects verify to name
# it, and checks that bad input is refused with the documented exit codes.
set -euo pipefail
AGENT=$1
MEDIA=$2
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
expect_exit() {  # expect_exit CODE command...
  local want=$1; shift
  set +e; "$@" >/dev/null 2>&1; local got=$?; set -e
  [ "$got" -eq "$want" ] || fail "expected exit $want, got $got: $*"
}

# A 256 MiB ext4 image holding real files from this machine.
mkdir content
cp -a /usr/share/doc content/ 2>/dev/null || true
cp -a /usr/lib/x86_64-linux-gnu/libz* content/ 2>/dev/null || true
truncate -s 256M disk.img
mkfs.ext4 -q -F -d content disk.img
e2fsck -fn disk.img >/dev/null

"$MEDIA" store init --store repo >/dev/null
"$AGENT" backup --store repo --source disk.img --name pc1 --id full1 --quiet
"$AGENT" restore --store repo --backup full1 --target restored.img --quiet
cmp disk.img restored.img || fail "restore is not byte-exact"
e2fsck -fn restored.img >/dev/null || fail "restored file system is damaged"

# Change some files, take an incremental: only changed chunks travel.
mkdir -p content/new && head -c 3M /dev/urandom > content/new/blob
mkfs.ext4 -q -F -d content disk.img
json=$("$AGENT" backup --store repo --source disk.img --name pc1 --id inc1 --incremental --json --quiet)
echo "$json" | grep -q '"kind": "incremental"' || fail "not an incremental: $json"
echo "$json" | grep -q '"parent_id": "full1"' || fail "wrong parent: $json"
"$AGENT" restore --store repo --backup inc1 --target restored2.img --quiet
cmp disk.img restored2.img || fail "incremental restore is not byte-exact"

# Encrypted backup with a key file; restore needs the key.
"$MEDIA" key generate --out data.key >/dev/null
"$AGENT" backup --store repo --source disk.img --name pc2 --id enc1 --key-file data.key --quiet
expect_exit 5 "$AGENT" restore --store repo --backup enc1 --target x.img --quiet
"$AGENT" restore --store repo --backup enc1 --target restored3.img --key-file data.key --quiet
cmp disk.img restored3.img || fail "encrypted restore is not byte-exact"

"$MEDIA" store verify --store repo --key-file data.key >/dev/null || fail "verify of a clean store failed"

# Damage one stored chunk: verify must name it and exit 1.
chunk=$(find repo/chunks -type f -print -quit)
cp "$chunk" chunk.bak
byte=$(od -An -tu1 -j60 -N1 "$chunk" | tr -d ' ')
printf "\\$(printf %o $((255 - byte)))" | dd of="$chunk" bs=1 seek=60 conv=notrunc status=none
cmp -s "$chunk" chunk.bak && fail "chunk was not damaged"
set +e; out=$("$MEDIA" store verify --store repo --json); rc=$?; set -e
[ "$rc" -eq 1 ] || fail "verify exit code $rc after damage"
echo "$out" | grep -q "$(basename "$chunk")" || fail "verify did not name the damaged chunk"
cp chunk.bak "$chunk"
"$MEDIA" store verify --store repo >/dev/null || fail "verify after repair failed"

# Bad input: unknown ids, traversal, bad chunk size, missing source.
expect_exit 3 "$AGENT" restore --store repo --backup nope --target y.img --quiet
expect_exit 2 "$AGENT" restore --store repo --backup ../../etc/passwd --target y.img --quiet
expect_exit 2 "$AGENT" backup --store repo --source disk.img --chunk-size 3000 --quiet
expect_exit 3 "$AGENT" backup --store repo --source /nonexistent --quiet
expect_exit 3 "$MEDIA" store list --store "$WORK/not-a-repo"

# Settings from a YAML file; a misspelt key is an error naming file, line and key.
printf 'store: repo\nbackup:\n  name: pc3\n  chunk_size: 1MiB\n' > agent.yaml
"$AGENT" --config agent.yaml backup --source disk.img --id cfg1 --json --quiet | grep -q '"chunk_size": 1048576' \
  || fail "config chunk_size not applied"
printf 'store: repo\nbackup:\n  chunk_sise: 1MiB\n' > bad.yaml
set +e; err=$("$AGENT" --config bad.yaml backup --source disk.img --quiet 2>&1); rc=$?; set -e
[ "$rc" -eq 2 ] || fail "bad config exit code $rc"
echo "$err" | grep -q "bad.yaml:3: unknown key 'backup.chunk_sise'" || fail "bad config message: $err"

# Consolidate, prune, gc.
"$MEDIA" store consolidate --store repo --backup inc1 --id synth1 >/dev/null
"$MEDIA" store prune --store repo --source pc1 --keep-last 1 --dry-run --json | grep -q '"keep": false' \
  || fail "prune dry run lists nothing to remove"
"$MEDIA" store prune --store repo --source pc1 --keep-last 1 >/dev/null
"$MEDIA" store gc --store repo --json >/dev/null
"$AGENT" restore --store repo --backup synth1 --target restored4.img --quiet
cmp disk.img restored4.img || fail "synthetic full does not restore the latest image"
echo "1 passed, 0 failed"
