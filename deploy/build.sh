#!/usr/bin/env bash
# Configures and builds the project with the Debian packages deploy/setup.sh installed, and
# installs it when given a prefix. CI runs it through deploy/setup.sh and the container
# images run it in their build stage, so both build the same way.
# Usage: deploy/build.sh [--prefix DIR] [extra cmake args]   (BUILD_DIR, default build/)
set -euo pipefail
cd "$(dirname "$0")/.."

PREFIX=""
if [ "${1:-}" = "--prefix" ]; then
  [ -n "${2:-}" ] || { echo "build: --prefix needs a folder" >&2; exit 2; }
  PREFIX="$2"; shift 2
fi
BUILD_DIR="${BUILD_DIR:-build}"
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${LAUNCHER[@]}" "$@"
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
if [ -n "$PREFIX" ]; then
  cmake --install "$BUILD_DIR" --prefix "$PREFIX"
fi
