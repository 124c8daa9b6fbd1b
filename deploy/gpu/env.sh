# Sourced on the GPU machine: unpacks .gpu-deps/*.deb into a private prefix (never into /)
# and points the toolchain at it and at PyTorch's LibTorch.
DEPS_PREFIX="${DEPS_PREFIX:-/opt/spriteforge-deps}"
if [ ! -d "$DEPS_PREFIX/usr" ]; then
  mkdir -p "$DEPS_PREFIX"
  for f in .gpu-deps/*.deb; do dpkg -x "$f" "$DEPS_PREFIX"; done
fi
LIBDIR="$DEPS_PREFIX/usr/lib/x86_64-linux-gnu"
export PATH="$DEPS_PREFIX/usr/bin:$PATH"
export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig:$DEPS_PREFIX/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$DEPS_PREFIX"
TORCH_PREFIX="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')"
export TORCH_PREFIX
# nvcc builds the fused kernels; CMake finds it on PATH or through CUDACXX.
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export CUDACXX=/usr/local/cuda/bin/nvcc; fi
