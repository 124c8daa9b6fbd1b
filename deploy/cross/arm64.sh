#!/usr/bin/env bash
# Cross-builds everything that needs no LibTorch (coordinator, client, common code,
# post-processing, the engine's plain C++ base) for arm64, the Grace CPU of a DGX Spark, and
# runs those test programs under qemu-aarch64. CI runs it after the main tests (.ci/run).
#
# The arm64 libraries are Debian 12's own -dev packages, unpacked into a sysroot with a
# private apt state instead of installed with `dpkg --add-architecture arm64`: Debian 12's
# libyaml-cpp-dev is not Multi-Arch: same, so its arm64 package would remove the amd64 one the
# main build needs, and the Multi-Arch: same ones would pin the host's copies (libssl,
# libpng, ...) to the arm64 versions. The host itself only gains the cross compiler and qemu.
# Usage: deploy/cross/arm64.sh   (BUILD_DIR, default build-arm64/; JOBS, default nproc)
set -euo pipefail
cd "$(dirname "$0")/../.."

# Host tools; protoc and grpc_cpp_plugin run on the host.
HOST_PACKAGES=(crossbuild-essential-arm64 qemu-user-static cmake ninja-build ccache pkg-config
               protobuf-compiler protobuf-compiler-grpc)
# The library packages of deploy/setup.sh, less LibTorch and libFuzzer, plus the C and C++
# runtime the test programs load under qemu.
ARM64_PACKAGES=(libgrpc++-dev libprotobuf-dev libabsl-dev libspdlog-dev libfmt-dev libgtest-dev
                libgmock-dev libsqlite3-dev libpq-dev libssl-dev libyaml-cpp-dev nlohmann-json3-dev libpng-dev
                libcpp-httplib-dev libcli11-dev prometheus-cpp-dev libc6-dev libstdc++-12-dev)
# Programs, then the test programs that need no LibTorch. Those that start the coordinator or
# the client start them through qemu too (the toolchain's emulator; no binfmt_misc needed).
PROGRAMS=(spriteforge-coordinator spriteforge)
TESTS=(common_tests engine_base_tests sprite_tests sprite_commands_tests scheduling_tests manifest_tests store_tests
       coordinator_tests client_system_tests)

BUILD_DIR="${BUILD_DIR:-build-arm64}"
SYSROOT="$PWD/$BUILD_DIR/sysroot"
APT_STATE="$PWD/$BUILD_DIR/arm64-apt"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd .. && pwd)}"
export SPRITEFORGE_GOLDEN="${SPRITEFORGE_GOLDEN:-$(cd .. && pwd)/shared/golden/tiny-sdxl}"
step() { echo "arm64: $* (${SECONDS}s)"; }

missing=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The sysroot, kept while the package list is unchanged.
stamp="$SYSROOT/.packages"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${ARM64_PACKAGES[*]}" ]; then
  step "unpacking arm64 packages into $SYSROOT"
  rm -rf "$SYSROOT" "$APT_STATE"
  mkdir -p "$SYSROOT" "$APT_STATE/lists/partial" "$APT_STATE/cache/archives/partial"
  : > "$APT_STATE/status"  # nothing installed: apt fetches every dependency
  APT=(apt-get -o APT::Architecture=arm64 -o APT::Architectures::=arm64
       -o Dir::State="$APT_STATE" -o Dir::State::status="$APT_STATE/status"
       -o Dir::Cache="$APT_STATE/cache" -o Debug::NoLocking=1)
  "${APT[@]}" update -qq
  "${APT[@]}" install -y -qq --download-only --no-install-recommends "${ARM64_PACKAGES[@]}" >/dev/null
  for deb in "$APT_STATE"/cache/archives/*.deb; do dpkg-deb -x "$deb" "$SYSROOT"; done
  # Links such as libz.so -> /lib/aarch64-linux-gnu/libz.so.1 must stay inside the sysroot.
  while IFS= read -r link; do
    target="$SYSROOT$(readlink "$link")"
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$target")" "$link"
  done < <(find "$SYSROOT" -type l -lname '/*')
  rm -rf "$APT_STATE/cache/archives"
  echo "${ARM64_PACKAGES[*]}" > "$stamp"
fi

step "configuring $BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/deploy/cross/aarch64-linux-gnu.cmake" -DSPRITEFORGE_SYSROOT="$SYSROOT" \
  -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
  -DSPRITEFORGE_WITH_ENGINE=OFF >/dev/null
step "building ${PROGRAMS[*]} ${TESTS[*]}"
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" --target "${PROGRAMS[@]}" "${TESTS[@]}"

QEMU=(qemu-aarch64-static -L "$SYSROOT")
failed=()
for program in "${PROGRAMS[@]}" "${TESTS[@]}"; do
  path=$(find "$BUILD_DIR" -path "$BUILD_DIR/sysroot" -prune -o -name "$program" -type f -print | head -1)
  [ -n "$path" ] || { echo "arm64: $program was not built" >&2; exit 1; }
  readelf -h "$path" | grep -q 'Machine:.*AArch64' || { echo "arm64: $path is not an arm64 program" >&2; exit 1; }
  if [[ " ${PROGRAMS[*]} " == *" $program "* ]]; then
    "${QEMU[@]}" "$path" --version
    continue
  fi
  step "running $program under qemu-aarch64"
  timeout 900 "${QEMU[@]}" "$path" --gtest_brief=1 || failed+=("$program")
done
((${#failed[@]} == 0)) || { echo "arm64: failed under qemu: ${failed[*]}" >&2; exit 1; }
step "done"
