#!/usr/bin/env bash
# The local (no network) demo: installs what is needed, builds Cairn, and runs
# a repository-only demo - a block-level image backup of a real
# ext4 disk image, an incremental after files change, a byte-exact restore,
# and a verify of the repository.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" "$ROOT/build"
AGENT="$ROOT/build/agent/cairn-agent"
MEDIA="$ROOT/build/media_agent/cairn-media"

DEMO=${CAIRN_DEMO_DIR:-/tmp/cairn-demo}
rm -rf "$DEMO"
mkdir -p "$DEMO/content"
cd "$DEMO"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Making a 1 GiB ext4 disk image filled with files from this machine's /usr"
cp -a /usr/share/doc /usr/share/man /usr/include "$DEMO/content/" 2>/dev/null || true
truncate -s 1G disk.img
mkfs.ext4 -q -F -L cairn-demo -d "$DEMO/content" disk.img
du -h --apparent-size disk.img; du -h disk.img

step "Creating a repository and a data key"
"$MEDIA" store init --store repo
"$MEDIA" key generate --out data.key

step "Full backup (4 MiB chunks, zstd, AES-256-GCM)"
"$AGENT" backup --store repo --source disk.img --name demo-pc --id demo-pc-full --key-file data.key

step "Changing files on the disk, then an incremental backup"
head -c 20M /dev/urandom > report.bin
debugfs -w -f - disk.img >/dev/null <<'CMDS'
mkdir alice
write report.bin alice/report.bin
rm doc/zstd/README.md.gz
CMDS
"$AGENT" backup --store repo --source disk.img --name demo-pc --id demo-pc-incr1 --key-file data.key --incremental

step "Backups in the repository"
"$MEDIA" store list --store repo
LATEST=demo-pc-incr1

step "Restoring $LATEST and comparing with the source"
"$AGENT" restore --store repo --backup "$LATEST" --target restored.img --key-file data.key
cmp disk.img restored.img && echo "restored image is byte-identical to the source"
e2fsck -fn restored.img

step "Verifying every chunk (CRC, GCM tag, content id)"
"$MEDIA" store verify --store repo --key-file data.key

printf '\nDemo complete. Files are in %s\n' "$DEMO"
