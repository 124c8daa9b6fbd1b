#!/usr/bin/env bash
# The parts that need no LibTorch under sanitizers; any report fails the run. CI runs it
# after the main tests (.ci/run). Three phases, each in a build folder of its own:
#   asan  the tests of common code, manifests, store, planner, coordinator with its gRPC and
#         HTTP faces and post-processing, and the fuzz targets' corpus replays, with
#         AddressSanitizer and UndefinedBehaviorSanitizer (build-asan/)
#   tsan  the coordinator's multi-threaded tests (core with its result threads and outbox,
#         store, HTTP access, tokens) with ThreadSanitizer (build-tsan/);
#         tests/sanitizer/tsan.supp names Debian's gRPC, protobuf and abseil, which are not
#         instrumented
#   fuzz  where clang and libFuzzer are present: each fuzz target under libFuzzer with ASan
#         and UBSan for FUZZ_SECONDS, from tests/fuzz/corpus (build-fuzz/)
# Usage: deploy/sanitize.sh [asan] [tsan] [fuzz]   (default: all three)
#   BUILD_DIR (build-asan), TSAN_BUILD_DIR (build-tsan), FUZZ_BUILD_DIR (build-fuzz),
#   JOBS (nproc), FUZZ_SECONDS (30 per target)
set -euo pipefail
cd "$(dirname "$0")/.."
# The store's PostgreSQL cases run too: under a throwaway server unless one is named.
if [ -z "${SPRITEFORGE_TEST_POSTGRES:-}" ]; then exec bash deploy/postgres.sh run bash deploy/sanitize.sh "$@"; fi
PHASES=("$@")
((${#PHASES[@]})) || PHASES=(asan tsan fuzz)
JOBS="${JOBS:-$(nproc)}"
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
export SPRITEFORGE_GOLDEN="${SPRITEFORGE_GOLDEN:-$(cd .. && pwd)/shared/golden/tiny-sdxl}"
failed=()

# configure DIR FLAGS [cmake args...]
configure() {
  local dir="$1" flags="$2"
  shift 2
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug "${LAUNCHER[@]}" -DSPRITEFORGE_WITH_ENGINE=OFF \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" "$@"
}

asan() {
  local dir="${BUILD_DIR:-build-asan}" flags="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"
  configure "$dir" "$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
  # test program -> its folder under tests/
  local tests=(common/common_tests common/manifest_tests common/sprite/sprite_tests
               coordinator/scheduling/scheduling_tests coordinator/store/store_tests
               coordinator/service/coordinator_tests coordinator/service/coordinator_parts_tests
               coordinator/http/http_api_tests)
  local fuzz=(manifest_fuzz:manifest auth_file_fuzz:auth palette_fuzz:palette png_decode_fuzz:png)
  local targets=() t f
  for t in "${tests[@]}"; do targets+=("${t##*/}"); done
  for f in "${fuzz[@]}"; do targets+=("${f%%:*}"); done
  cmake --build "$dir" -j "$JOBS" --target "${targets[@]}"
  (
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/lsan.supp"
    bad=()
    for t in "${tests[@]}"; do
      echo "sanitize: asan: $t"
      "$dir/tests/$t" --gtest_brief=1 || bad+=("$t")
    done
    for f in "${fuzz[@]}"; do
      echo "sanitize: asan: ${f%%:*} replay"
      "$dir/tests/fuzz/${f%%:*}" --mutations 2000 tests/fuzz/corpus/"${f#*:}"/* || bad+=("${f%%:*}")
    done
    ((${#bad[@]} == 0)) || { echo "sanitize: asan: failed: ${bad[*]}"; exit 1; }
  ) || failed+=(asan)
}

tsan() {
  local dir="${TSAN_BUILD_DIR:-build-tsan}" flags="-O1 -g -fno-omit-frame-pointer -fsanitize=thread"
  configure "$dir" "$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread"
  # Not the tests that serve gRPC in the process (GrpcLimitsTest, AccessTest, UploadLimitsTest) nor the
  # system tests' coordinators: gRPC's callback API orders a reactor's StartWrite before its
  # OnWriteDone inside libgrpc, which TSan cannot see, so every reactor would be reported
  # (docs/reliability.md).
  local tests=(coordinator/service/coordinator_tests coordinator/service/coordinator_parts_tests
               coordinator/store/store_tests coordinator/http/http_api_tests common/common_tests)
  local filter="--gtest_filter=-GrpcLimitsTest.*:AccessTest.*:UploadLimitsTest.*"
  local targets=() t
  for t in "${tests[@]}"; do targets+=("${t##*/}"); done
  cmake --build "$dir" -j "$JOBS" --target "${targets[@]}"
  # Every process writes its reports to a file of its own (so children's reports count
  # too): any file is a failure.
  local reports="$PWD/$dir/tsan-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  (
    export TSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/tsan.supp:log_path=$reports/tsan:second_deadlock_stack=1:halt_on_error=0"
    bad=()
    for t in "${tests[@]}"; do
      echo "sanitize: tsan: $t"
      "$dir/tests/$t" --gtest_brief=1 "$filter" || bad+=("$t")
    done
    if compgen -G "$reports/tsan.*" >/dev/null; then
      for r in "$reports"/tsan.*; do echo "sanitize: tsan: report $r:"; cat "$r"; done
      bad+=("reports in $reports")
    fi
    ((${#bad[@]} == 0)) || { echo "sanitize: tsan: failed: ${bad[*]}"; exit 1; }
  ) || failed+=(tsan)
}

fuzz() {
  local dir="${FUZZ_BUILD_DIR:-build-fuzz}" seconds="${FUZZ_SECONDS:-30}"
  if ! command -v clang++ >/dev/null || ! clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a | grep -q /; then
    echo "sanitize: fuzz: no clang with libFuzzer here; the asan phase's corpus replays stand in"
    return 0
  fi
  configure "$dir" "-O1 -g -fno-omit-frame-pointer" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DSPRITEFORGE_WITH_FUZZERS=ON
  local fuzz=(safetensors_header_fuzz:safetensors png_decode_fuzz:png palette_fuzz:palette manifest_fuzz:manifest
              auth_file_fuzz:auth)
  local targets=() f
  for f in "${fuzz[@]}"; do targets+=("${f%%:*}"); done
  cmake --build "$dir" -j "$JOBS" --target "${targets[@]}"
  (
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    export LSAN_OPTIONS="suppressions=$PWD/tests/sanitizer/lsan.supp"
    bad=()
    for f in "${fuzz[@]}"; do
      local name="${f%%:*}" seeds="tests/fuzz/corpus/${f#*:}"
      # New inputs go to a scratch corpus in the build folder; the seeds stay as they are.
      mkdir -p "$dir/corpus/$name" "$dir/crashes"
      echo "sanitize: fuzz: $name for $seconds s"
      if ! "$dir/tests/fuzz/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
             -artifact_prefix="$PWD/$dir/crashes/$name-" "$dir/corpus/$name" "$seeds" 2>"$dir/fuzz-$name.log"; then
        tail -n 60 "$dir/fuzz-$name.log"
        echo "sanitize: fuzz: $name failed; its input is in $dir/crashes/ (add it to $seeds/ as a regression)"
        bad+=("$name")
      else
        grep -E "^stat::number_of_executed_units|^Done" "$dir/fuzz-$name.log" | tr '\n' ' '
        echo
      fi
    done
    ((${#bad[@]} == 0)) || { echo "sanitize: fuzz: failed: ${bad[*]}"; exit 1; }
  ) || failed+=(fuzz)
}

for phase in "${PHASES[@]}"; do
  case "$phase" in
    asan | tsan | fuzz) "$phase" ;;
    *) echo "sanitize: unknown phase '$phase' (asan, tsan, fuzz)"; exit 2 ;;
  esac
done
if ((${#failed[@]})); then
  echo "sanitize: failed: ${failed[*]}"
  exit 1
fi
echo "sanitize: ${PHASES[*]}: every program ran clean"
