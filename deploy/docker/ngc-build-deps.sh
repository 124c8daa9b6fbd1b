#!/usr/bin/env bash
# Build dependencies of the GPU images on NVIDIA's PyTorch container (Ubuntu): everything
# but LibTorch and CUDA, which the container provides.
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build ccache pkg-config curl \
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev \
  libspdlog-dev libfmt-dev libsqlite3-dev libyaml-cpp-dev nlohmann-json3-dev libpng-dev \
  libcpp-httplib-dev libcli11-dev prometheus-cpp-dev
