# Sourced on the GPU machine: unpacks .gpu-deps/*.deb into a private prefix (never into /)
# and points the toolchain at it and at PyTorch's LibTorch.
DEPS_PREFIX="${DEPS_PREFIX:-/opt/spriteforge-deps}"
if [ ! -d "$DEPS_PREFIX/usr" ]; then
  mkdir -p "$DEPS_PREFIX"
  for f in .gpu-deps/*.deb; do dpkg -x "$f" "$DEPS_PREFIX"; done
fi
# The multiarch folder of this machine (x86_64-linux-gnu, aarch64-linux-gnu on a DGX Spark).
MULTIARCH="$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || true)"
[ -n "$MULTIARCH" ] || MULTIARCH="$(uname -m)-linux-gnu"
LIBDIR="$DEPS_PREFIX/usr/lib/$MULTIARCH"
export PATH="$DEPS_PREFIX/usr/bin:$PATH"
export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig:$DEPS_PREFIX/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$DEPS_PREFIX"
TORCH_PREFIX="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')"
export TORCH_PREFIX
# nvcc builds the fused kernels; CMake finds it on PATH or through CUDACXX.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export CUDACXX=/usr/local/cuda/bin/nvcc; fi
# CUDA architectures to compile for: SPRITEFORGE_CUDA_ARCHS ("90;100;120;121"), else the
# visible GPU's compute capability (9.0 -> 90, 12.1 -> 121), else 90.
if [ -z "${SPRITEFORGE_CUDA_ARCHS:-}" ]; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .' || true)"
  [[ "$cap" =~ ^[0-9]+$ ]] || cap=90
  SPRITEFORGE_CUDA_ARCHS="$cap"
fi
export SPRITEFORGE_CUDA_ARCHS
