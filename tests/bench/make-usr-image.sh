#!/usr/bin/env bash
# make-usr-image.sh OUT [SIZE] [FILL_PERCENT]
#
# Builds a raw disk image holding an ext4 file system filled with real
# content: a deterministic pseudo-random sample of the regular files under
# the host's /usr (binaries, shared libraries, Python, headers, docs,
# locale data...), until about FILL_PERCENT (default 70) of SIZE (default
# 2G, any `truncate -s` size) is used. The rest of the image is what mkfs
# leaves: metadata and never-written (zero) blocks. This is the benchmark
# image of docs/performance.md: real file-system content, neither random
# bytes nor mostly zeros.
#
# No loop device and no mount: the files are copied into a staging directory
# and `mkfs.ext4 -d` builds the file system from it. If /usr holds less than
# the budget, its sample is copied again into copy2/, copy3/... (those copies
# deduplicate, which the summary line reports).
#
# Cached by path: if OUT exists and OUT.meta records the same SIZE and
# FILL_PERCENT, it is reused as is (delete both to rebuild). Needs about
# SIZE x FILL_PERCENT of free space next to OUT for the staging copy while it
# runs. Run as root so that every file under /usr is readable.
set -euo pipefail

usage() { echo "usage: $0 OUT [SIZE (default 2G)] [FILL_PERCENT (default 70)]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 3 ] || usage
OUT=$1
SIZE=${2:-2G}
FILL=${3:-70}
SRC=${CAIRN_IMAGE_SOURCE:-/usr}
case "$FILL" in ''|*[!0-9]*) usage ;; esac
[ "$FILL" -ge 5 ] && [ "$FILL" -le 90 ] || { echo "FILL_PERCENT must be 5..90" >&2; exit 2; }

META="$OUT.meta"
WANT_META="size=$SIZE fill=$FILL source=$SRC"
if [ -f "$OUT" ] && [ -f "$META" ] && [ "$(cat "$META")" = "$WANT_META" ]; then
  echo "make-usr-image: reusing $OUT ($WANT_META)" >&2
  exit 0
fi

mkdir -p "$(dirname "$OUT")"
OUT_DIR=$(cd "$(dirname "$OUT")" && pwd)
STAGE=$(mktemp -d "$OUT_DIR/.usr-image-stage.XXXXXX")
LIST=$(mktemp "$OUT_DIR/.usr-image-list.XXXXXX")
TMP_IMG="$OUT.tmp.$$"
cleanup() { rm -rf "$STAGE" "$LIST" "$LIST".* "$TMP_IMG"; }
trap cleanup EXIT

# Size in bytes of the image, via truncate's own size parser.
truncate -s "$SIZE" "$TMP_IMG"
IMG_BYTES=$(stat -c %s "$TMP_IMG")
BUDGET=$(( IMG_BYTES / 100 * FILL ))

# Every regular file under SRC below 64 MiB, in a fixed pseudo-random order
# (sort -R keyed by a constant random source: the same /usr gives the same
# sample), so the image mixes every kind of content /usr holds rather than
# the first directories alphabetically.
find "$SRC" -xdev -type f -size -64M -printf '%s\t%P\n' 2>/dev/null \
  | sort -R --random-source=<(yes cairn-bench-image) > "$LIST.all"
# Charge each file its size rounded up to 4 KiB plus one block of metadata.
awk -F'\t' -v budget="$BUDGET" '
  { cost = int(($1 + 4095) / 4096) * 4096 + 4096
    if (used + cost > budget) { exit }
    used += cost; print $2 }
  END { }' "$LIST.all" > "$LIST"
TOTAL_LISTED=$(wc -l < "$LIST.all")
TAKEN=$(wc -l < "$LIST")
if [ "$TAKEN" -eq 0 ]; then echo "make-usr-image: no files found under $SRC" >&2; exit 1; fi

copies=1
tar -C "$SRC" --no-recursion -cf - -T "$LIST" | tar -C "$STAGE" -xf -
# /usr smaller than the budget: add further copies until the budget is met.
if [ "$TAKEN" -eq "$TOTAL_LISTED" ]; then
  one=$(du -sb "$STAGE" | cut -f1)
  while [ $(( one * (copies + 1) )) -le "$BUDGET" ]; do
    copies=$((copies + 1))
    mkdir "$STAGE/copy$copies"
    tar -C "$SRC" --no-recursion -cf - -T "$LIST" | tar -C "$STAGE/copy$copies" -xf -
  done
fi

# -E root_owner: files keep their owners; lazy init off so that the inode
# tables are really written, as on a used disk; -m 1 keeps the reserve small.
rm -f "$TMP_IMG"
truncate -s "$SIZE" "$TMP_IMG"
mkfs.ext4 -F -q -m 1 -L cairn-bench -E lazy_itable_init=0,lazy_journal_init=0 \
  -d "$STAGE" "$TMP_IMG"
if ! e2fsck -fn "$TMP_IMG" >"$LIST.fsck" 2>&1; then cat "$LIST.fsck" >&2; exit 1; fi

mv -f "$TMP_IMG" "$OUT"
echo "$WANT_META" > "$META"
USED=$(du -sb "$STAGE" | cut -f1)
ALLOC=$(du -B1 "$OUT" | cut -f1)
echo "make-usr-image: $OUT: $IMG_BYTES bytes, $TAKEN files x $copies cop(y/ies) from $SRC," \
     "$USED bytes of file data, $ALLOC bytes allocated in the image file" >&2
