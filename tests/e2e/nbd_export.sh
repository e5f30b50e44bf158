#!/usr/bin/env bash
# End-to-end: a real backup exported over NBD by nbdkit with the Cairn plugin
# (cairn-nbd-export), read with libnbd's tools and qemu-img.
#   - plain and encrypted backups: nbdinfo --size/--map (zero chunks are
#     holes), nbdcopy byte-exact against the source, qemu-img compare
#   - the key never appears in nbdkit's command line or environment
#   - wrong key, missing key, open key file, unknown backup: clear refusals
#     with common/cli.h exit codes
#   - a damaged chunk: the read fails with EIO named in nbdkit's log, nbdkit
#     keeps serving
#   - the repository lock, lock=none, TLS with client certificates, clean stop
# Usage: nbd_export.sh CAIRN-AGENT CAIRN-MEDIA CAIRN-NBD-EXPORT PLUGIN.so
set -euo pipefail
AGENT=$(realpath "$1")
MEDIA=$(realpath "$2")
EXPORT=$(realpath "$3")
export CAIRN_NBD_PLUGIN=$(realpath "$4")
for tool in nbdkit nbdinfo nbdcopy qemu-img; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-nbd-e2e-XXXXXX")
EXPORT_PIDS=()
cleanup() {
  for p in "${EXPORT_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${EXPORT_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
pass=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }

# start_export NAME ARGS...: runs cairn-nbd-export in the background, waits
# for its JSON, sets URI, SOCK, NBDKIT_PID and EXPORT_PID.
start_export() {
  local name=$1; shift
  "$EXPORT" --json --log "$WORK/$name.log" "$@" >"$name.json" 2>"$name.err" &
  EXPORT_PID=$!
  EXPORT_PIDS+=("$EXPORT_PID")
  for _ in $(seq 300); do
    grep -q '"uri"' "$name.json" 2>/dev/null && grep -q '^}' "$name.json" && break
    kill -0 "$EXPORT_PID" 2>/dev/null || fail "$name: export exited: $(cat "$name.json" "$name.err")"
    sleep 0.1
  done
  URI=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["uri"])' "$name.json")
  SOCK=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["socket"])' "$name.json")
  NBDKIT_PID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$name.json")
  [ -S "$SOCK" ] || fail "$name: no socket at $SOCK"
}
stop_export() {  # stop_export: SIGTERM, expect exit 0 and nbdkit gone
  kill -TERM "$EXPORT_PID"
  local rc=0
  wait "$EXPORT_PID" || rc=$?
  [ "$rc" -eq 0 ] || fail "export exited $rc on SIGTERM"
  if kill -0 "$NBDKIT_PID" 2>/dev/null; then fail "nbdkit $NBDKIT_PID survived"; fi
  [ ! -e "$SOCK" ] || fail "socket $SOCK left behind"
}
# expect_refusal CODE PATTERN ARGS...: the export must exit CODE with PATTERN
# in its message, and leave no nbdkit behind.
expect_refusal() {
  local want=$1 pattern=$2; shift 2
  set +e; out=$("$EXPORT" "$@" 2>&1); local got=$?; set -e
  [ "$got" -eq "$want" ] || fail "expected exit $want, got $got: $* -> $out"
  echo "$out" | grep -q -- "$pattern" || fail "message lacks '$pattern': $out"
}

# A 256 MiB ext4 image of real files, with free (zero) space.
mkdir content
cp -a /usr/share/doc content/ 2>/dev/null || true
cp -a /usr/lib/x86_64-linux-gnu/libz* content/ 2>/dev/null || true
truncate -s 256M disk.img
mkfs.ext4 -q -F -d content disk.img
SIZE=$(stat -c %s disk.img)
"$MEDIA" store init --store repo >/dev/null
"$AGENT" backup --store repo --source disk.img --name pc1 --id plain1 --quiet
"$MEDIA" key generate --out data.key >/dev/null
"$MEDIA" key generate --out other.key >/dev/null
"$AGENT" backup --store repo --source disk.img --name pc2 --id enc1 \
  --key-file data.key --quiet
KEYHEX=$(tr -d '\n' < data.key)

check_export_reads() {  # check_export_reads NAME
  local name=$1
  [ "$(nbdinfo --size "$URI")" = "$SIZE" ] || fail "$name: nbdinfo --size"
  nbdinfo --map "$URI" > "$name.map"
  grep -q 'hole,zero' "$name.map" || fail "$name: no zero extents: $(cat "$name.map")"
  # The map covers the image exactly, and every zero extent is zero in the
  # source image.
  local total=0
  while read -r off len type _; do
    total=$((total + len))
    if [ "$type" = 3 ]; then
      cmp -s -n "$len" -i "$off:0" disk.img /dev/zero || fail "$name: extent $off+$len reported zero but is not"
    fi
  done < "$name.map"
  [ "$total" -eq "$SIZE" ] || fail "$name: map covers $total of $SIZE bytes"
  nbdcopy "$URI" "$name.raw"
  cmp disk.img "$name.raw" || fail "$name: nbdcopy output differs from the source"
  rm -f "$name.raw"
  qemu-img compare -q -f raw disk.img "$URI" || fail "$name: qemu-img compare differs"
}

# --- Plain backup -----------------------------------------------------------
start_export plain --store repo --backup plain1
check_export_reads plain
ok "plain backup: size, zero extents, nbdcopy and qemu-img compare match"

# The repository is locked while exported (lock=exclusive, the default): a
# second exclusive export and a GC are refused; lock=none still reads.
expect_refusal 5 "locked" --store repo --backup plain1
set +e; "$MEDIA" store gc --store repo >/dev/null 2>&1; rc=$?; set -e
[ "$rc" -eq 5 ] || fail "gc ran on a store being exported (exit $rc)"
PLAIN_PID=$EXPORT_PID PLAIN_NBDKIT=$NBDKIT_PID PLAIN_SOCK=$SOCK
start_export nolock --store repo --backup plain1 --no-lock
nbdcopy "$URI" nolock.raw && cmp -s disk.img nolock.raw || fail "lock=none export differs"
rm -f nolock.raw
stop_export
EXPORT_PID=$PLAIN_PID NBDKIT_PID=$PLAIN_NBDKIT SOCK=$PLAIN_SOCK
stop_export
ok "exclusive lock refuses a second exporter and gc; --no-lock reads; SIGTERM stops cleanly"

# --- Encrypted backup ---------------------------------------------------------
start_export enc --store repo --backup enc1 --key-file data.key
check_export_reads enc
# The key is in neither nbdkit's nor the exporter's argv or environment.
for pid in "$NBDKIT_PID" "$EXPORT_PID"; do
  tr '\0' ' ' < "/proc/$pid/cmdline" > cmdline.txt
  grep -qi "${KEYHEX:0:16}" cmdline.txt && fail "key bytes in /proc/$pid/cmdline"
  if [ -r "/proc/$pid/environ" ]; then
    tr '\0' '\n' < "/proc/$pid/environ" | grep -qi "${KEYHEX:0:16}" && fail "key bytes in /proc/$pid/environ"
  fi
done
grep -q 'key-fd=3' "/proc/$NBDKIT_PID/cmdline" || fail "nbdkit not given key-fd=3: $(tr '\0' ' ' < /proc/$NBDKIT_PID/cmdline)"
ps -ww -o args= -p "$NBDKIT_PID" | grep -qi "${KEYHEX:0:16}" && fail "key bytes in ps output"
# The key pipe is closed once read: nbdkit holds no pipe on fd 3.
if [ -e "/proc/$NBDKIT_PID/fd/3" ]; then
  readlink "/proc/$NBDKIT_PID/fd/3" | grep -q pipe && fail "nbdkit still holds the key pipe on fd 3"
fi
stop_export
ok "encrypted backup reads byte-exact; key only via key-fd=3, never in argv/environ"

# --- Refusals -----------------------------------------------------------------
expect_refusal 5 "not with the given key" --store repo --backup enc1 --key-file other.key
expect_refusal 5 "encrypted" --store repo --backup enc1
expect_refusal 3 "no backup 'nope'" --store repo --backup nope
expect_refusal 3 "no Cairn repository" --store "$WORK/absent" --backup plain1
expect_refusal 2 "backup id" --store repo --backup ../../etc/passwd
cp data.key open.key && chmod 644 open.key
expect_refusal 5 "chmod 600" --store repo --backup enc1 --key-file open.key
# A damaged manifest is refused at start (DataLoss, exit 4).
cp repo/manifests/plain1.cmf plain1.cmf.bak
printf '\xff' | dd of=repo/manifests/plain1.cmf bs=1 seek=40 conv=notrunc status=none
expect_refusal 4 "plain1" --store repo --backup plain1
cp plain1.cmf.bak repo/manifests/plain1.cmf
# A refused start reaps nbdkit; allow a dying one up to 10 s to go.
deadline=$((SECONDS + 10))
while pgrep -f "store=$WORK/repo" >/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "a refused export left nbdkit behind"
  sleep 0.1
done
ok "wrong key, missing key, open key file, unknown backup/store, bad id, damaged manifest refused"

# --- A damaged chunk ------------------------------------------------------------
# In a store of its own, so the chunk is certainly one the export reads.
"$MEDIA" store init --store repo2 >/dev/null
"$AGENT" backup --store repo2 --source disk.img --name pc1 --id solo --quiet
chunk=$(find repo2/chunks -type f -size +1k -print | head -1)
[ -n "$chunk" ] || fail "no chunk file found"
cp "$chunk" chunk.bak
byte=$(od -An -tu1 -j60 -N1 "$chunk" | tr -d ' ')
printf "\\$(printf %o $((255 - byte)))" | dd of="$chunk" bs=1 seek=60 conv=notrunc status=none
cmp -s "$chunk" chunk.bak && fail "chunk was not damaged"
start_export damaged --store repo2 --backup solo
set +e; nbdcopy "$URI" damaged.raw 2> nbdcopy.err; rc=$?
[ "$rc" -ne 0 ] || { set -e; cp chunk.bak "$chunk"; fail "nbdcopy read a damaged chunk without error"; }
set -e
grep -q 'DATA_LOSS' damaged.log || fail "nbdkit log lacks the DataLoss: $(cat damaged.log)"
grep -q 'returning EIO' damaged.log || fail "nbdkit log does not name EIO: $(cat damaged.log)"
grep -q "$(basename "$chunk")" damaged.log || fail "nbdkit log does not name the chunk"
grep -qi 'input/output error' nbdcopy.err || fail "client did not see EIO: $(cat nbdcopy.err)"
kill -0 "$NBDKIT_PID" || fail "nbdkit died on a damaged chunk"
[ "$(nbdinfo --size "$URI")" = "$SIZE" ] || fail "nbdkit stopped serving after a read error"
cp chunk.bak "$chunk"
nbdcopy "$URI" repaired.raw && cmp -s disk.img repaired.raw || fail "read after repair differs"
rm -f repaired.raw damaged.raw
stop_export
ok "damaged chunk: EIO to the client, DATA_LOSS naming the chunk in nbdkit's log, server keeps serving"

# --- TLS with client certificates ----------------------------------------------
if ! command -v openssl >/dev/null; then
  echo "SKIP TLS part: openssl not installed"
  echo "$pass passed, 0 failed"
  exit 0
fi
mkdir -p pki/server pki/client pki/nbd-client pki/stranger
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout pki/ca.key -out pki/ca.pem -days 2 -subj /CN=cairn-e2e-ca 2>/dev/null
printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > pki/ext.cnf
for who in server client; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "pki/$who/key.pem" -out "pki/$who.csr" -subj "/CN=$who" 2>/dev/null
  openssl x509 -req -in "pki/$who.csr" -CA pki/ca.pem -CAkey pki/ca.key \
    -CAcreateserial -out "pki/$who/cert.pem" -days 2 -extfile pki/ext.cnf 2>/dev/null
  cp pki/ca.pem "pki/$who/ca.pem"; chmod 600 "pki/$who/key.pem"
done
cp pki/ca.pem pki/nbd-client/ca-cert.pem
cp pki/client/cert.pem pki/nbd-client/client-cert.pem
cp pki/client/key.pem pki/nbd-client/client-key.pem
# A client certificate from another CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout pki/stranger/client-key.pem -out pki/stranger/client-cert.pem \
  -days 2 -subj /CN=stranger 2>/dev/null
cp pki/ca.pem pki/stranger/ca-cert.pem
start_export tls --store repo --backup enc1 --key-file data.key --tls-dir pki/server
case "$URI" in nbds+unix://*) ;; *) fail "TLS export URI is $URI" ;; esac
nbdinfo --size "${URI/nbds+unix/nbd+unix}" >/dev/null 2>&1 && fail "plain NBD accepted by a TLS export"
nbdinfo --size "$URI" >/dev/null 2>&1 && fail "TLS export accepted a client without certificate"
nbdinfo --size "$URI&tls-certificates=$WORK/pki/stranger" >/dev/null 2>&1 && fail "TLS export accepted a certificate from another CA"
nbdcopy "$URI&tls-certificates=$WORK/pki/nbd-client" tls.raw
cmp -s disk.img tls.raw || fail "TLS export differs"
rm -f tls.raw
stop_export
ok "TLS: plain, certificate-less and foreign-CA clients refused; CA client reads byte-exact"

echo "$pass passed, 0 failed"
