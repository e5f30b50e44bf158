#!/usr/bin/env bash
# Configures and builds Cairn with CMake + Ninja (ccache when present).
# Usage: scripts/build.sh [BUILD_DIR] [BUILD_TYPE]   (default: build RelWithDebInfo)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${1:-$ROOT/build}
BUILD_TYPE=${2:-RelWithDebInfo}
JOBS=${CAIRN_JOBS:-$(nproc)}
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
  -DCAIRN_BUILD_TESTS=ON -DCAIRN_BUILD_BENCHMARKS="${CAIRN_BUILD_BENCHMARKS:-OFF}" >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
