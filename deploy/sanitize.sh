#!/usr/bin/env bash
# Builds the tests of the parts that need no LibTorch (common code, manifests, store,
# planner, coordinator with its gRPC and HTTP faces, post-processing) and the fuzz targets'
# replays with AddressSanitizer and UndefinedBehaviorSanitizer into build-asan/, and runs
# them; any report fails the run. CI runs it after the main tests (.ci/run).
# Usage: deploy/sanitize.sh   (BUILD_DIR, default build-asan/; JOBS, default nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
# The store's PostgreSQL cases run too: under a throwaway server unless one is named.
if [ -z "${SPRITEFORGE_TEST_POSTGRES:-}" ]; then exec bash deploy/postgres.sh run bash deploy/sanitize.sh "$@"; fi
BUILD_DIR="${BUILD_DIR:-build-asan}"
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
FLAGS="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug "${LAUNCHER[@]}" \
  -DSPRITEFORGE_WITH_ENGINE=OFF -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"

# test program -> its folder under tests/
TESTS=(common/common_tests service/scheduling_tests service/manifest_tests service/store_tests
       service/coordinator_tests postprocess/postprocess_tests http/http_api_tests)
FUZZ=(manifest_fuzz:manifest auth_file_fuzz:auth palette_fuzz:palette png_decode_fuzz:png)
targets=()
for t in "${TESTS[@]}"; do targets+=("${t#*/}"); done
for f in "${FUZZ[@]}"; do targets+=("${f%%:*}"); done
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" --target "${targets[@]}"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/lsan.supp"
export SPRITEFORGE_GOLDEN="${SPRITEFORGE_GOLDEN:-$(cd .. && pwd)/shared/golden/tiny-sdxl}"
failed=()
for t in "${TESTS[@]}"; do
  echo "sanitize: $t"
  "$BUILD_DIR/tests/$t" --gtest_brief=1 || failed+=("$t")
done
for f in "${FUZZ[@]}"; do
  echo "sanitize: ${f%%:*}"
  "$BUILD_DIR/tests/fuzz/${f%%:*}" --mutations 2000 tests/fuzz/corpus/"${f#*:}"/* || failed+=("${f%%:*}")
done
if ((${#failed[@]})); then
  echo "sanitize: failed: ${failed[*]}"
  exit 1
fi
echo "sanitize: every program ran clean under ASan and UBSan"
