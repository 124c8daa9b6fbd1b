#!/usr/bin/env bash
# deploy/gpu/build.sh takes the machine's architecture and GPU from the machine: the
# multiarch folder from dpkg-architecture (else gcc), the CUDA architectures from
# SPRITEFORGE_CUDA_ARCHS, else the visible GPU's compute capability, else 90. Runs the real
# scripts with stand-ins for the GPU machine's tools (nvidia-smi, PyTorch, cmake).
# Usage: gpu_scripts_test.sh SOURCE_DIR
set -euo pipefail
SRC="$(cd "$1" && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail=0

if grep -nE '^[^#]*(x86_64|CUDA_ARCHITECTURES=9)' "$SRC/deploy/gpu/env.sh" "$SRC/deploy/gpu/build.sh"; then
  echo "gpu-scripts: hard-coded architecture above"; fail=1
fi

# Stand-ins: cmake records its arguments, python3 answers PyTorch's CMake path.
mkdir -p "$TMP/bin" "$TMP/deps/usr"
cat >"$TMP/bin/cmake" <<'STUB'
#!/bin/sh
echo "$*" >>"$CMAKE_LOG"
STUB
cat >"$TMP/bin/python3" <<'STUB'
#!/bin/sh
echo /opt/torch/share/cmake
STUB
chmod +x "$TMP/bin/"*

# run NAME [VAR=VALUE...]: build.sh with the stand-ins; prints the configure line.
run() {
  local name="$1"; shift
  : >"$TMP/$name.log"
  env PATH="$TMP/$name-bin:$TMP/bin:$PATH" DEPS_PREFIX="$TMP/deps" CMAKE_LOG="$TMP/$name.log" "$@" \
    bash "$SRC/deploy/gpu/build.sh" >/dev/null
  head -1 "$TMP/$name.log"
}
tool() {  # tool CASE NAME OUTPUT [STATUS]: a stand-in for one case
  mkdir -p "$TMP/$1-bin"
  printf '#!/bin/sh\n[ -n "%s" ] && echo "%s"\nexit %s\n' "$3" "$3" "${4:-0}" >"$TMP/$1-bin/$2"
  chmod +x "$TMP/$1-bin/$2"
}
expect() {  # expect CASE LINE TEXT
  grep -qF -- "$3" <<<"$2" || { echo "gpu-scripts: $1: expected '$3' in: $2"; fail=1; }
}

# A DGX Spark: arm64 multiarch, one GB10 (compute capability 12.1).
tool spark dpkg-architecture aarch64-linux-gnu
tool spark nvidia-smi 12.1
line="$(run spark)"
expect spark "$line" "-DCMAKE_CUDA_ARCHITECTURES=121"
expect spark "$line" "$TMP/deps/usr/lib/aarch64-linux-gnu/cmake"
expect spark "$line" "-L$TMP/deps/usr/lib/aarch64-linux-gnu"

# No dpkg-architecture: gcc names the multiarch folder. No GPU visible: 90.
tool nogpu dpkg-architecture "" 1
tool nogpu gcc riscv64-linux-gnu
tool nogpu nvidia-smi "" 9
line="$(run nogpu)"
expect nogpu "$line" "-DCMAKE_CUDA_ARCHITECTURES=90"
expect nogpu "$line" "$TMP/deps/usr/lib/riscv64-linux-gnu/cmake"

# An explicit list wins over the GPU.
tool list nvidia-smi 9.0
line="$(run list SPRITEFORGE_CUDA_ARCHS="90;100;120;121")"
expect list "$line" "-DCMAKE_CUDA_ARCHITECTURES=90;100;120;121"
expect list "$line" "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/cmake"

# The controls and speed-up stages exist, and service_check.py's pose x identity job covers builtin:walk-8dir
# once per character: 64 images are two characters with a reference picture each, a warm-up
# batch of 8 is one character's first two directions.
for stage in controls-bench service-controls speedups decode service-speedups service-fewstep fp8-routes fp8-conv fp8-attention; do
  grep -qE "^    ([a-z0-9|-]+\|)?$stage(\|[a-z0-9|-]+)?\)" "$SRC/deploy/gpu/run-checks.sh" ||
    { echo "gpu-scripts: run-checks.sh has no $stage stage"; fail=1; }
done
items() { python3 -c "import sys; sys.path.insert(0, '$SRC/deploy/gpu'); import service_check as s; print(s.pose_identity_items('$TMP', $1, 100))"; }
sets="$(items 64)"
expect pose-identity "$(grep -c 'poses: builtin:walk-8dir' <<<"$sets")" "2"
expect pose-identity "$sets" "reference: {images: [character-1.png], adapter: ip-adapter-plus_sdxl_vit-h"
grep -q directions <<<"$sets" && { echo "gpu-scripts: a 64-image job keeps every direction: $sets"; fail=1; }
expect warm-up "$(items 8)" "directions: [s, sw]"
python3 -c "import sys; sys.exit(open('$TMP/character-0.png', 'rb').read(8) != b'\x89PNG\r\n\x1a\n')" ||
  { echo "gpu-scripts: no reference PNG written"; fail=1; }

# The service report splits a job's fixed cost: the wait before its first render, the tail after its last.
tails="$(python3 -c "import sys; sys.path.insert(0, '$SRC/deploy/gpu'); import service_check as s
st = {'counts': {'done': 4, 'failed': 0}, 'state': 'JOB_DONE', 'created_unix_ms': '1000', 'finished_unix_ms': '5000'}
sc = [{'batch_id': b, 'worker': 'w', 'batch_size': 2, 'render_unix_ms': {'start': t, 'end': t + 1500},
       'peak_memory_bytes': {'allocated': 1, 'reserved': 1}, 'timings_ms': {'total': 1400, 'package': 300, 'denoise': 1000}}
      for b, t in (('a', 1200), ('b', 2700))]
r = s.analyse(4.0, st, sc); print(r['first_render_after_created_ms'], r['finished_after_last_render_ms'], r['batch_phase_ms_median']['denoise'])")"
expect job-tails "$tails" "200 800 1000"
# ... and reads the coordinator's time per phase of storing results from /metrics.
phases="$(python3 -c "import sys; sys.path.insert(0, '$SRC/deploy/gpu'); import service_check as s
t = 'spriteforge_result_store_seconds_sum{phase=\"sync\"} 0.5\\nspriteforge_result_store_seconds_count{phase=\"sync\"} 4\\n'
print(s.store_seconds(t))")"
expect store-phases "$phases" "{'sync': {'sum': 0.5, 'count': 4.0}}"
# ... and summarises nvidia-smi's clock samples over the busy ones only.
clocks="$(python3 -c "import sys; sys.path.insert(0, '$SRC/deploy/gpu'); import service_check as s
print(s.gpu_clocks('0, 100, 1980, 650.5, 60\\n0, 12, 345, 80.0, 40\\n0, 98, 1755, 699.9, 71\\n0, [N/A], 1, 1, 1\\n'))")"
expect gpu-clocks "$clocks" "{'samples': 2, 'sm_mhz_median': 1867.5, 'sm_mhz_min': 1755.0, 'power_w_mean': 675.2, 'temperature_c_max': 71.0}"

((fail == 0)) && echo "gpu-scripts: Spark (aarch64, 12.1), no GPU (90) and an explicit list configure as expected; controls stages, pose x identity jobs, a job's head and tail, storing phases, GPU clocks"
exit "$fail"
