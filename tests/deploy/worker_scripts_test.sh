#!/usr/bin/env bash
# The helpers the images run workers with: spriteforge-worker-run turns SPRITEFORGE_*
# variables into the worker's flags; spriteforge-worker-health reads the coordinator's
# metrics for this worker's connection (readiness), and with --liveness forgives an
# unreachable coordinator. Usage: worker_scripts_test.sh SOURCE_DIR
set -euo pipefail
SRC="$(cd "$1" && pwd)"
RUN="$SRC/deploy/docker/worker-run.sh" HEALTH="$SRC/deploy/docker/worker-health.sh"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail=0
check() {  # check WHAT EXPECTED ACTUAL
  [ "$2" = "$3" ] || { echo "worker-scripts: $1: expected '$2', got '$3'"; fail=1; }
}

# A stand-in worker that prints the flags it was given, one a line.
mkdir -p "$TMP/bin"
printf '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n' >"$TMP/bin/spriteforge-worker"
chmod +x "$TMP/bin/spriteforge-worker"
flags="$(env -i PATH="$TMP/bin:/usr/bin:/bin" SPRITEFORGE_MODEL=/models/sdxl.safetensors SPRITEFORGE_DEVICE=cuda:1 \
  SPRITEFORGE_DTYPE=bf16 SPRITEFORGE_MODEL_NAME=sdxl-base SPRITEFORGE_WORKER_ID=spark-2 \
  SPRITEFORGE_WORKER_ARGS="--calibrate 1024x1024 --reserve-gb 8" bash "$RUN" | tr '\n' ' ')"
check "flags from the environment" "--coordinator coordinator:50051 --model /models/sdxl.safetensors --device cuda:1 \
--worker-id spark-2 --model-name sdxl-base --dtype bf16 --calibrate 1024x1024 --reserve-gb 8 " "$flags"
flags="$(env -i PATH="$TMP/bin:/usr/bin:/bin" SPRITEFORGE_MODEL=builtin:tiny bash "$RUN" | tr '\n' ' ')"
check "defaults (cpu, host name as id)" "--coordinator coordinator:50051 --model builtin:tiny --device cpu \
--worker-id $(hostname) " "$flags"
if err="$(env -i PATH="$TMP/bin:/usr/bin:/bin" bash "$RUN" 2>&1)"; then
  echo "worker-scripts: worker-run started without a model"; fail=1
else
  grep -q "set SPRITEFORGE_MODEL" <<<"$err" || { echo "worker-scripts: unclear error: $err"; fail=1; }
fi

# Health from a metrics page: connected, disconnected, an id that only shares a prefix.
cat >"$TMP/metrics" <<'METRICS'
# TYPE spriteforge_worker_connected gauge
spriteforge_worker_connected{worker="spark-1"} 1
spriteforge_worker_connected{worker="spark-10"} 0
METRICS
status() { set +e; "$@" >/dev/null 2>&1; echo $?; set -e; }
check "connected worker" 0 "$(status bash "$HEALTH" "file://$TMP/metrics" spark-1)"
check "disconnected worker" 1 "$(status bash "$HEALTH" "file://$TMP/metrics" spark-10)"
check "unknown worker" 1 "$(status bash "$HEALTH" "file://$TMP/metrics" spark-2)"
check "disconnected worker, liveness" 1 "$(status bash "$HEALTH" --liveness "file://$TMP/metrics" spark-10)"
check "unreachable coordinator" 1 "$(status bash "$HEALTH" "file://$TMP/none" spark-1)"
check "unreachable coordinator, liveness" 0 "$(status bash "$HEALTH" --liveness "file://$TMP/none" spark-1)"
check "id from SPRITEFORGE_WORKER_ID" 0 "$(SPRITEFORGE_WORKER_ID=spark-1 status bash "$HEALTH" "file://$TMP/metrics")"

((fail == 0)) && echo "worker-scripts: worker-run flags and worker-health answers as expected"
exit "$fail"
