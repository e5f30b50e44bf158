#!/usr/bin/env bash
# Command 2 of the README: installs what is needed, builds, and runs every
# test - the fast unit tier, then the end-to-end tier (real binaries, real
# file systems, QEMU boots of cached Debian images).
# Usage: scripts/test.sh            (CI runs exactly this)
#        CAIRN_TEST_LABEL=unit scripts/test.sh   (one tier only)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install-deps.sh"
"$ROOT/scripts/build.sh" "$ROOT/build"
cd "$ROOT/build"
if [ -n "${CAIRN_TEST_LABEL:-}" ]; then
  ctest -L "$CAIRN_TEST_LABEL" --output-on-failure -j "$(nproc)"
else
  echo "== unit tier =="
  ctest -L unit --output-on-failure -j "$(nproc)"
  echo "== end-to-end tier =="
  ctest -L e2e --output-on-failure
fi
