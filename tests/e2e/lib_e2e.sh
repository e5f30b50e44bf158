#!/usr/bin/env bash
# Helpers shared by the stand-alone end-to-end scripts (restore builds,
# exports, instant boot). Source it after `set -euo pipefail`:
#   . "$(dirname "$(readlink -f "$0")")/lib_e2e.sh"
# A script may redefine fail() afterwards (to print its own logs).

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# jget FILE KEY[.KEY...]: a value of a JSON file (list indices are numbers);
# objects and lists are printed as JSON.
jget() {
  python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if not isinstance(v, (dict, list)) else json.dumps(v))' "$1" "$2"
}

# expect_fail CODE PATTERN CMD...: CMD must exit CODE with PATTERN in its
# output (stdout and stderr), which is left in $out.
expect_fail() {
  local want=$1 pattern=$2; shift 2
  local got
  set +e; out=$("$@" 2>&1); got=$?; set -e
  [ "$got" -eq "$want" ] || fail "expected exit $want, got $got: $* -> $out"
  echo "$out" | grep -q -- "$pattern" || fail "output lacks '$pattern': $out"
}

# start_export BACKUP [STORE] [KEY_FILE]: serves an image of the store
# (default repo, data.key) over NBD with $EXPORT (cairn-nbd-export); sets
# URI and EXPORT_PID once it listens. stop_export ends it.
start_export() {
  local store=${2:-repo} key=${3:-data.key}
  "$EXPORT" --json --store "$store" --backup "$1" --key-file "$key" \
    >"$1.export.json" 2>"$1.export.err" &
  EXPORT_PID=$!
  for _ in $(seq 300); do
    grep -q '^}' "$1.export.json" 2>/dev/null && break
    kill -0 "$EXPORT_PID" 2>/dev/null || fail "export of $1 exited: $(cat "$1.export.err")"
    sleep 0.1
  done
  URI=$(jget "$1.export.json" uri)
}
stop_export() { kill -TERM "$EXPORT_PID"; wait "$EXPORT_PID" || true; EXPORT_PID=""; }
