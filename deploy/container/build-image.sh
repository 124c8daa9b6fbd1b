#!/usr/bin/env bash
# Builds the CPU image (deploy/docker/Dockerfile) from a build folder CI already compiled,
# on the Debian 12 base deploy/container/base-image.sh makes: `cmake --install` into a
# build context, the runtime packages those programs load, then the Dockerfile's runtime
# stage with SPRITEFORGE_INSTALL=prebuilt. Nothing is compiled and no registry is asked.
# Usage: deploy/container/build-image.sh [BUILD_DIR] [IMAGE]   (build, localhost/spriteforge:cpu)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${1:-build}"
IMAGE="${2:-localhost/spriteforge:cpu}"
BASE=localhost/spriteforge-base:bookworm
source deploy/container/podman.sh

bash deploy/container/base-image.sh "$BASE"
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cmake --install "$BUILD" --prefix "$context/install" >/dev/null
bash deploy/docker/runtime-packages.sh "$context/install" >"$context/install/runtime-packages.txt"
start=$SECONDS
# The host's downloaded packages serve the image's apt-get too (the same Debian release).
"${PODMAN[@]}" build --quiet --format docker -f deploy/docker/Dockerfile --build-arg DEBIAN_IMAGE="$BASE" \
  --build-arg SPRITEFORGE_INSTALL=prebuilt -v /var/cache/apt/archives:/var/cache/apt/archives \
  -t "$IMAGE" "$context" >/dev/null
# The image this one replaces and the stages' leftovers: each build would keep a copy.
"${PODMAN[@]}" image prune -f >/dev/null
size="$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")"
echo "build-image: $IMAGE built in $((SECONDS - start)) s, $((size / 1000000)) MB"
