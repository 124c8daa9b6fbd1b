#!/usr/bin/env bash
# Builds the parts that need no LibTorch (common, manifests, store, planner, coordinator,
# client, post-processing, fuzz replays) with AddressSanitizer and UndefinedBehaviorSanitizer
# into build-asan/ and runs their tests there; any report fails the run. deploy/test.sh
# runs it after the main suites. Usage: deploy/sanitize.sh   (BUILD_DIR, default build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-asan}"
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${LAUNCHER[@]}" \
  -DSPRITEFORGE_WITH_ENGINE=OFF -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/lsan.supp"
# The deploy checks test files and scripts, not code: the main build runs them.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 900 -E '^deploy_'
