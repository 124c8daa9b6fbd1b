#!/usr/bin/env bash
# The CPU image built from this build and run as containers (deploy/container/): a Debian 12
# base made with debootstrap (cached), the Dockerfile's runtime stage over the installed
# build, then coordinator + CPU worker + client on a podman network with the tiny model.
# Skips (exit 77, ctest's "Skipped") where podman cannot run containers, saying why.
# Usage: container_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
SRC="$1" BUILD="$2"
skip() {
  echo "################################################################"
  echo "# SKIPPED: the container image test did not run: $*"
  echo "################################################################"
  exit 77
}
for tool in podman debootstrap runc; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (deploy/setup.sh installs it)"
done
[ "$(id -u)" = 0 ] || skip "debootstrap needs root"
# The tiny model, where deploy/test.sh looks for it; CI requires it (SPRITEFORGE_REQUIRE_GOLDEN).
export SPRITEFORGE_GOLDEN="${SPRITEFORGE_GOLDEN:-$(cd "$SRC/.." && pwd)/shared/golden/tiny-sdxl}"
if [ ! -f "$SPRITEFORGE_GOLDEN/tiny-sdxl.safetensors" ]; then
  [ "${SPRITEFORGE_REQUIRE_GOLDEN:-}" = 1 ] && { echo "container: no tiny model in $SPRITEFORGE_GOLDEN"; exit 1; }
  skip "no tiny model in $SPRITEFORGE_GOLDEN (set SPRITEFORGE_GOLDEN)"
fi
source "$SRC/deploy/container/podman.sh"

set -e
start=$SECONDS
bash "$SRC/deploy/container/base-image.sh"
"${PODMAN[@]}" run --rm "${RUN_LIMITS[@]}" localhost/spriteforge-base:bookworm true \
  || skip "podman cannot start a container on this machine (see the error above)"
base=$SECONDS
bash "$SRC/deploy/container/build-image.sh" "$BUILD" localhost/spriteforge:cpu-test
built=$SECONDS
bash "$SRC/deploy/container/system-test.sh" localhost/spriteforge:cpu-test
echo "container: base $((base - start)) s, image $((built - base)) s, run $((SECONDS - built)) s"
