#!/usr/bin/env bash
# Run on a Debian 12 machine with network access to Debian's archive: downloads the
# Debian packages the GPU machine lacks (gRPC, Abseil, protobuf, spdlog, SQLite, ...) into
# .gpu-deps/, and copies the golden tiny model into .gpu-deps/golden/ for the GPU checks.
# The GPU machine has PyTorch's LibTorch, CUDA and a compiler but no network; build.sh
# unpacks these packages there into a private prefix.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=.gpu-deps
mkdir -p "$DEST"
PACKAGES=(
  libabsl-dev libabsl20220623 libc-ares-dev libc-ares2 libgrpc++-dev libgrpc++1.51 libgrpc-dev
  libgrpc29 libre2-9 libre2-dev protobuf-compiler-grpc libprotoc32 libprotobuf-dev libprotobuf32
  protobuf-compiler libfmt-dev libfmt9 libspdlog-dev libspdlog1.10 libsqlite3-dev libsqlite3-0
  libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libpng-dev libpng16-16 libcpp-httplib-dev
  libcpp-httplib0.11 libgtest-dev libgmock-dev libcli11-dev
  # /metrics: prometheus-cpp's core library (found through its pkg-config file).
  prometheus-cpp-dev libprometheus-cpp-core1.0
  # cpp-httplib's pkg-config file requires these (compression and TLS).
  libbrotli-dev libbrotli1 libssl-dev libssl3 zlib1g-dev zlib1g
)
(cd "$DEST" && apt-get download "${PACKAGES[@]}")

GOLDEN="${SPRITEFORGE_GOLDEN:-$(cd .. && pwd)/shared/golden/tiny-sdxl}"
if [ -d "$GOLDEN" ]; then
  mkdir -p "$DEST/golden"
  cp -r "$GOLDEN"/{cases.json,tiny-sdxl.safetensors,vectors.safetensors,tokenizer,tokenizer_2} "$DEST/golden/"
  cp "$GOLDEN"/e2e.*.png "$DEST/golden/"
  # The tiny architecture's configs (not its weights: the single file carries those).
  for part in text_encoder text_encoder_2 unet vae scheduler; do
    mkdir -p "$DEST/golden/diffusers/$part"
    cp "$GOLDEN/diffusers/$part"/*config.json "$DEST/golden/diffusers/$part/"
  done
  # The workflow cases (LoRA files, init image, reference images) beside it, under the name
  # the tests look for next to the golden folder.
  if [ -d "$GOLDEN/../tiny-sdxl-workflows" ]; then
    mkdir -p "$DEST/tiny-sdxl-workflows"
    cp "$GOLDEN/../tiny-sdxl-workflows"/* "$DEST/tiny-sdxl-workflows/"
  fi
  # The ControlNet and IP-Adapter cases beside the golden folder, where there are some; else
  # run-checks.sh reads the repository's copy (tests/golden/tiny-sdxl-controls), which travels
  # with the checkout: a second copy here would only count against the 64 MiB sent along.
  rm -rf "$DEST/tiny-sdxl-controls"
  if [ -d "$GOLDEN/../tiny-sdxl-controls" ]; then
    cp -r "$GOLDEN/../tiny-sdxl-controls" "$DEST/tiny-sdxl-controls"
  fi
fi
# cuDNN's headers for the fp8 convolution and attention probes (the GPU machine's PyTorch carries the library,
# not always its headers), where this machine's CUDA has them.
if [ -f /usr/local/cuda/include/cudnn_graph.h ]; then
  mkdir -p "$DEST/cudnn-include" && cp /usr/local/cuda/include/cudnn*.h "$DEST/cudnn-include/"
fi
du -sh "$DEST"
