#!/usr/bin/env bash
# Builds spriteforge on the GPU machine against PyTorch's LibTorch (CUDA) and the Debian
# packages carried in .gpu-deps/, for the CUDA architectures env.sh picks.
# Usage: [TARGETS="a b"] [SPRITEFORGE_CUDA_ARCHS="90;121"] deploy/gpu/build.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/gpu/env.sh
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS_PREFIX/usr;$LIBDIR/cmake" \
  -DCMAKE_EXE_LINKER_FLAGS="-L$LIBDIR -Wl,-rpath,$LIBDIR -Wl,--disable-new-dtags" \
  -DCMAKE_SHARED_LINKER_FLAGS="-L$LIBDIR -Wl,-rpath,$LIBDIR -Wl,--disable-new-dtags" \
  -DCMAKE_CUDA_ARCHITECTURES="$SPRITEFORGE_CUDA_ARCHS" \
  -DSPRITEFORGE_GOLDEN_DEFAULT="$PWD/.gpu-deps/golden" "$@"
cmake --build build-gpu -j "$(nproc)" ${TARGETS:+--target $TARGETS}
