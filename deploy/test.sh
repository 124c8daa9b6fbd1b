#!/usr/bin/env bash
# The README's test command: install dependencies, build, and run every test suite.
# Golden tests read SPRITEFORGE_GOLDEN (default: ../shared/golden/tiny-sdxl); under CI they
# must not skip, so a missing folder fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
export SPRITEFORGE_GOLDEN="${SPRITEFORGE_GOLDEN:-$(cd .. && pwd)/shared/golden/tiny-sdxl}"
if [ "${CI:-}" = "true" ]; then
  export SPRITEFORGE_REQUIRE_GOLDEN=1
  [ -d "$SPRITEFORGE_GOLDEN" ] || { echo "test: golden folder $SPRITEFORGE_GOLDEN missing (set SPRITEFORGE_GOLDEN)"; exit 1; }
fi
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 1500
