#!/usr/bin/env bash
# On the GPU machine: checks the toolchain (LibTorch CUDA APIs, carried Debian packages)
# before a full build. Writes logs under $OUT when set.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/spriteforge-out}"; mkdir -p "$OUT"
source deploy/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
cmake -S deploy/gpu/smoke -B /tmp/smoke -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" >"$OUT/smoke-build.log" 2>&1 &&
  cmake --build /tmp/smoke >>"$OUT/smoke-build.log" 2>&1 && /tmp/smoke/gpu-smoke | tee "$OUT/smoke.txt"
tail -5 "$OUT/smoke-build.log"
