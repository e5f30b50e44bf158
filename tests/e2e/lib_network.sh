# lib_network.sh: helpers shared by the network end-to-end tests and the
# network benchmark. Source it after setting SERVER_BIN, AGENT_BIN, CTL_BIN;
# then call net_setup NAME once (work directory, port, cleanup trap).
#
# Every process started through net_server_start / net_agent_start is
# tracked and stopped by the EXIT trap (SIGTERM, then SIGKILL after a
# deadline); on failure the trap prints the tails of the logs. KEEP_WORK=1
# keeps the work directory.
#
# shellcheck shell=bash

NET_PIDS=()          # every daemon this script started and has not reaped
SERVER_PID=
SERVER_LOG=
NET_SERVER_STARTS=0
NET_EXTRA_CLEANUP=   # a function name run first by the EXIT trap, if set

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

# json_field NAME: the first "NAME": value of pretty-printed JSON on stdin.
json_field() {
  sed -n -e "s/^ *\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" \
         -e "s/^ *\"$1\": \([^\",]*\),\{0,1\}$/\1/p" | head -n 1
}
# json_records: pretty-printed JSON (cairnctl --json) of flat objects, one
# line per object: TAB key=value TAB key=value ... TAB (strings unquoted).
json_records() {
  awk '
    /^ *"[^"]*": (\[|\{) *$/ { next }
    /^ *"[^"]*": / {
      line = $0
      sub(/^ *"/, "", line)
      key = line; sub(/".*/, "", key)
      val = line; sub(/^[^"]*": /, "", val); sub(/,$/, "", val)
      if (val ~ /^".*"$/) val = substr(val, 2, length(val) - 2)
      rec = rec key "=" val "\t"
      next
    }
    /^ *\}/ { if (rec != "") print "\t" rec; rec = "" }'
}
# rec_field NAME: the value of NAME in the json_records line on stdin.
rec_field() {
  awk -F'\t' -v k="$1" '{ for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) {
    print substr($i, length(k) + 2); exit } }'
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

# net_untrack PID: forget a daemon that was stopped and reaped.
net_untrack() {
  local keep=() p
  for p in "${NET_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  NET_PIDS=("${keep[@]}")
}

# stop_pid PID [SIGNAL] [SECONDS]: signal a tracked daemon, wait for it to
# exit (SIGKILL after SECONDS, default 40) and set STOP_RC to its exit
# status. (Not in a subshell: only this shell can reap its children.)
STOP_RC=0
stop_pid() {
  local pid=$1 sig=${2:-TERM} limit=${3:-40} rc=0
  kill "-$sig" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + limit))
  while kill -0 "$pid" 2>/dev/null; do
    # A zombie has exited: `wait` below reaps it.
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then kill -KILL "$pid" 2>/dev/null || true; break; fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || rc=$?
  net_untrack "$pid"
  STOP_RC=$rc
}

# peak_rss_kib PID: VmHWM of a running process, in KiB.
peak_rss_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

net_cleanup() {
  local rc=$?
  set +e
  [ -n "$NET_EXTRA_CLEANUP" ] && "$NET_EXTRA_CLEANUP"
  local pid
  for pid in "${NET_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  local deadline=$((SECONDS + 40))
  for pid in "${NET_PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "$rc" -ne 0 ]; then
    local f
    for f in "$WORK"/server*.log "$WORK"/agent*.log "$WORK"/media*.log; do
      [ -f "$f" ] || continue
      echo "---- $(basename "$f") (tail) ----" >&2
      tail -n "${NET_LOG_TAIL:-40}" "$f" >&2
    done
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then
    echo "work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}

# net_setup NAME: work directory (under $TMPDIR, or NET_WORKBASE), the
# cleanup trap, a free port; defines WORK, PORT, ADDR.
net_setup() {
  WORK=$(mktemp -d "${NET_WORKBASE:-${TMPDIR:-/tmp}}/cairn-$1-XXXXXX")
  trap net_cleanup EXIT
  trap 'exit 130' INT TERM
  cd "$WORK"
  PORT=
  PORT=$(net_free_port)
  ADDR=127.0.0.1:$PORT
}

ctl() { "$CTL_BIN" --server "$ADDR" --cred-dir "$WORK/server/admin" --timeout 20s "$@"; }

# net_server_init [ARGS...]: cairn-server init into $WORK/server; sets FPR.
net_server_init() {
  "$SERVER_BIN" init --dir "$WORK/server" --json "$@" > "$WORK/init.json"
  FPR=$(json_field ca_fingerprint < "$WORK/init.json")
  [ ${#FPR} -eq 64 ] || fail "no CA fingerprint in: $(cat "$WORK/init.json")"
  [ -f "$WORK/server/admin/cert.pem" ] || fail "init wrote no admin credential"
}

# net_server_start [ARGS...]: cairn-server run with the embedded media agent
# (store $WORK/repo), or without one when NET_EMBEDDED_MEDIA=0; each start
# logs to its own file (server.log, server-2.log, ...). Sets SERVER_PID and
# SERVER_LOG.
NET_EMBEDDED_MEDIA=1
net_server_start() {
  NET_SERVER_STARTS=$((NET_SERVER_STARTS + 1))
  if [ "$NET_SERVER_STARTS" -eq 1 ]; then SERVER_LOG=$WORK/server.log
  else SERVER_LOG=$WORK/server-$NET_SERVER_STARTS.log; fi
  local media=()
  [ "$NET_EMBEDDED_MEDIA" = 1 ] && media=(--embedded-media --store "$WORK/repo")
  "$SERVER_BIN" run --dir "$WORK/server" --listen "$ADDR" "${media[@]}" \
    "$@" > "$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  NET_PIDS+=("$SERVER_PID")
  wait_until 30 grep -q "serving on port" "$SERVER_LOG" || fail "server did not start"
}

# net_free_port: a port nothing listens on.
net_free_port() {
  local candidate
  for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 40000))
    if [ "$candidate" != "$PORT" ] && port_is_free "$candidate"; then
      echo "$candidate"; return 0
    fi
  done
  fail "no free port"
}

# net_token [ROLE]: a one-time token (default role agent).
net_token() {
  local t
  t=$(ctl --json token create --role "${1:-agent}" --ttl 10m | json_field token)
  [ -n "$t" ] || fail "no token"
  echo "$t"
}

# net_enroll NAME STATE_DIR: enrolls an agent with a new token; prints its id.
net_enroll() {
  local token id
  token=$(net_token)
  "$AGENT_BIN" enroll --server "$ADDR" --token "$token" --ca-fingerprint "$FPR" \
    --name "$1" --state-dir "$2" --json > "$2.enroll.json" ||
    fail "enrollment of $1 failed: $(cat "$2.enroll.json")"
  id=$(json_field identity < "$2.enroll.json")
  [ -n "$id" ] || fail "no identity in: $(cat "$2.enroll.json")"
  echo "$id"
}

# net_agent_start STATE_DIR LOG [ARGS...]: cairn-agent run; sets AGENT_PID.
net_agent_start() {
  local dir=$1 log=$2; shift 2
  "$AGENT_BIN" run --state-dir "$dir" "$@" > "$log" 2>&1 &
  AGENT_PID=$!
  NET_PIDS+=("$AGENT_PID")
}

client_connected() { ctl --json clients show "$1" | grep -q '"connected": true'; }

# job_record ID: the json_records line of job ID (from jobs list).
job_record() { ctl --json jobs list | json_records | grep -F "	job_id=$1	"; }
job_field() { job_record "$1" | rec_field "$2"; }
job_is_final() {
  case "$(job_field "$1" state)" in succeeded|failed|cancelled) return 0 ;; esac
  return 1
}
# backup_count [CLIENT]: committed backups in the catalog.
backup_count() {
  ctl --json backups list ${1:+--client "$1"} | grep -c '"backup_id":' || true
}

# net_media_start STATE_DIR LOG: cairn-media serve (MEDIA_BIN); sets
# MEDIA_PID once it listens.
net_media_start() {
  "$MEDIA_BIN" serve --state-dir "$1" > "$2" 2>&1 &
  MEDIA_PID=$!
  NET_PIDS+=("$MEDIA_PID")
  wait_until 30 grep -q "serving on port" "$2" || fail "cairn-media did not start: $(cat "$2")"
}
