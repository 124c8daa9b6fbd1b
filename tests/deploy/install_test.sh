#!/usr/bin/env bash
# `cmake --install` into a fresh prefix puts the programs, the engine library (when built),
# the example manifests, the systemd units and the license there, and the installed
# programs start from that prefix (their RPATH finds the engine library beside them).
# Usage: install_test.sh BUILD_DIR SOURCE_DIR WITH_ENGINE(ON|OFF)
set -euo pipefail
BUILD="$1" SRC="$2" ENGINE="$3"
PREFIX="$(mktemp -d)"
trap 'rm -rf "$PREFIX"' EXIT
log="$(cmake --install "$BUILD" --prefix "$PREFIX" 2>&1)" || { echo "$log"; exit 1; }

fail=0
expect() { [ -e "$PREFIX/$1" ] || { echo "install: missing $1"; fail=1; }; }
expect bin/spriteforge-coordinator
expect bin/spriteforge
expect bin/spriteforge-worker-run
expect bin/spriteforge-worker-health
for f in "$SRC"/workflows/*.yaml; do expect "share/spriteforge/workflows/$(basename "$f")"; done
expect share/spriteforge/systemd/spriteforge-coordinator.service
expect share/spriteforge/systemd/spriteforge-worker@.service
expect share/doc/spriteforge/LICENSE
expect share/doc/spriteforge/deploy.md
cmp -s "$SRC/LICENSE" "$PREFIX/share/doc/spriteforge/LICENSE" || { echo "install: LICENSE differs"; fail=1; }
if [ "$ENGINE" = ON ]; then
  expect bin/spriteforge-worker
  expect bin/spriteforge-generate
  lib="$(find "$PREFIX" -name 'libspriteforge_engine.so*' | head -1)"
  [ -n "$lib" ] || { echo "install: missing the engine library libspriteforge_engine.so"; fail=1; }
  # The installed worker must load the installed library, not the build tree's.
  resolved="$(ldd "$PREFIX/bin/spriteforge-worker" | awk '/libspriteforge_engine/ {print $3}')"
  case "$resolved" in "$PREFIX"/*) ;; *) echo "install: worker loads the engine from '$resolved'"; fail=1 ;; esac
  "$PREFIX/bin/spriteforge-worker" --help >/dev/null || { echo "install: installed worker does not start"; fail=1; }
fi
"$PREFIX/bin/spriteforge-coordinator" --help >/dev/null || { echo "install: installed coordinator does not start"; fail=1; }
"$PREFIX/bin/spriteforge" --help >/dev/null 2>&1 || { echo "install: installed client does not start"; fail=1; }
bash -n "$PREFIX/bin/spriteforge-worker-run" || fail=1
((fail == 0)) && echo "install: $(find "$PREFIX" -type f | wc -l) files under the prefix, all expected ones present"
exit "$fail"
