#!/usr/bin/env bash
# The README's test command: install dependencies, build, and run every test suite.
# Golden tests read SPRITEFORGE_GOLDEN (default: ../shared/golden/tiny-sdxl); under CI they
# must not skip, so a missing folder fails the run. SPRITEFORGE_TEST_POSTGRES is always set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
export SPRITEFORGE_GOLDEN="${SPRITEFORGE_GOLDEN:-$(cd .. && pwd)/shared/golden/tiny-sdxl}"
if [ "${CI:-}" = "true" ]; then
  export SPRITEFORGE_REQUIRE_GOLDEN=1
  [ -d "$SPRITEFORGE_GOLDEN" ] || { echo "test: golden folder $SPRITEFORGE_GOLDEN missing (set SPRITEFORGE_GOLDEN)"; exit 1; }
fi
# The store suites and the failover test also run against PostgreSQL: a throwaway server
# for this run (deploy/postgres.sh fails the run when it cannot start one).
bash deploy/postgres.sh run ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 1500
