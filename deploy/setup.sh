#!/usr/bin/env bash
# Installs every build and test dependency from Debian 12 packages, then configures and
# builds the project into build/ with deploy/build.sh (the script the CPU image runs).
# Usage: deploy/setup.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config clang libfuzzer-14-dev
  libtorch-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libsqlite3-dev libpq-dev postgresql libssl-dev libyaml-cpp-dev nlohmann-json3-dev libpng-dev libcpp-httplib-dev libcli11-dev prometheus-cpp-dev openssl
  python3-yaml python3-jsonschema python3-requests python3-websocket chromium prometheus curl
  # The container image test (tests/deploy/container_test.sh): podman with runc, its
  # network stack, and mmdebstrap (or debootstrap) for the Debian base image.
  podman runc netavark aardvark-dns iptables uidmap debootstrap mmdebstrap
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = "--no-build" ] && exit 0

bash deploy/build.sh
