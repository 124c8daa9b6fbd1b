#!/usr/bin/env bash
# The CPU image run as an operator runs it: the coordinator and a CPU worker as containers on
# a podman network, the tiny SDXL model mounted read-only, workflows/potions.yaml submitted
# from a client container. The coordinator container is replaced mid-job (an upgrade keeps
# only its volume); the job must still finish with its 24 PNGs, each exactly once, and
# /healthz, /metrics and the worker's health check must answer. Everything made is removed.
# Usage: deploy/container/system-test.sh [IMAGE] (localhost/spriteforge:cpu)
#   SPRITEFORGE_GOLDEN: the tiny model folder (tiny-sdxl.safetensors, diffusers/, tokenizer/)
#   KEEP_LOGS=FILE: the worker container's log, with timestamps, is written there at the end
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE="${1:-localhost/spriteforge:cpu}"
GOLDEN="${SPRITEFORGE_GOLDEN:-$(cd .. && pwd)/shared/golden/tiny-sdxl}"
source deploy/container/podman.sh
P="sf-test-$$"
# The images' HEALTHCHECKs run on systemd timers, which a CI machine may lack: the test runs
# the same checks itself (curl /healthz, spriteforge-worker-health).
NO_TIMERS=(--no-healthcheck)
NET="$P-net" VOL="$P-data" WORKER_ID=cpu-0

cleanup() {
  [ -n "${KEEP_LOGS:-}" ] && "${PODMAN[@]}" logs -t "$P-worker" >"$KEEP_LOGS" 2>&1
  "${PODMAN[@]}" rm -f -v -t 0 "$P-coordinator" "$P-worker" >/dev/null 2>&1 || true
  "${PODMAN[@]}" network rm -f "$NET" >/dev/null 2>&1 || true
  "${PODMAN[@]}" volume rm -f "$VOL" >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { echo "container: $*"; "${PODMAN[@]}" logs --tail 15 "$P-coordinator" 2>&1 | sed 's/^/  coordinator| /'
         "${PODMAN[@]}" logs --tail 15 "$P-worker" 2>&1 | sed 's/^/  worker| /'; exit 1; }
# A one-off container on the network: the client, curl, a look into the volume.
on_net() { "${PODMAN[@]}" run --rm "${RUN_LIMITS[@]}" --network "$NET" -v "$VOL:/data" "$IMAGE" "$@"; }
client() { on_net spriteforge --coordinator coordinator:50051 "$@"; }

# The coordinator as compose runs it (deploy/compose/compose.yaml), its data on a volume.
start_coordinator() {
  "${PODMAN[@]}" run -d --name "$P-coordinator" "${RUN_LIMITS[@]}" "${NO_TIMERS[@]}" --network "$NET" --network-alias coordinator \
    -v "$VOL:/data" "$IMAGE" spriteforge-coordinator --insecure-listen 0.0.0.0:50051 --http 0.0.0.0:8080 \
    --http-host-allow coordinator --db /data/spriteforge.db --output /data/results >/dev/null
}
pngs() { on_net sh -c "ls /data/results/$JOB/ 2>/dev/null | grep -c '\.png$' || true"; }

start=$SECONDS
"${PODMAN[@]}" network create "$NET" >/dev/null
"${PODMAN[@]}" volume create "$VOL" >/dev/null
start_coordinator
"${PODMAN[@]}" run -d --name "$P-worker" "${RUN_LIMITS[@]}" "${NO_TIMERS[@]}" --network "$NET" -v "$GOLDEN:/models:ro" \
  -e SPRITEFORGE_MODEL=/models/tiny-sdxl.safetensors -e SPRITEFORGE_CONFIG=/models/diffusers \
  -e SPRITEFORGE_TOKENIZER=/models/tokenizer -e SPRITEFORGE_MODEL_NAME=tiny-sdxl \
  -e SPRITEFORGE_WORKER_ID="$WORKER_ID" -e SPRITEFORGE_MAX_BATCH=2 "$IMAGE" spriteforge-worker-run >/dev/null

JOB="$(client --wait-for 30 submit /opt/spriteforge/share/spriteforge/workflows/potions.yaml)" || fail "submit failed"
echo "container: job $JOB submitted ($((SECONDS - start)) s)"
# Replace the coordinator once the first sprites are on the volume and before the last.
for _ in $(seq 300); do n="$(pngs)"; ((n > 0)) && break; sleep 0.2; done
((n > 0 && n < 24)) || fail "expected the job part-way done before the restart, found $n of 24 PNGs"
"${PODMAN[@]}" rm -f -v -t 5 "$P-coordinator" >/dev/null
start_coordinator
echo "container: coordinator replaced with $n of 24 PNGs done ($((SECONDS - start)) s)"

client --wait-for 30 watch "$JOB" >/dev/null 2>&1 || fail "job $JOB did not complete after the restart"
listing="$(on_net sh -c "cd /data/results/$JOB && ls *.png")"
total="$(grep -c . <<<"$listing")" unique="$(sort -u <<<"$listing" | grep -c .)"
((total == 24 && unique == 24)) || fail "expected 24 distinct PNGs, found $total ($unique distinct)"
status="$(client status "$JOB")"
grep -qiE "completed|done|succeeded" <<<"$status" || fail "job status after the restart: $status"

health="$(on_net curl -fsS http://coordinator:8080/healthz)" || fail "/healthz did not answer"
metrics="$(on_net curl -fsS http://coordinator:8080/metrics)" || fail "/metrics did not answer"
grep -q '^spriteforge_' <<<"$metrics" || fail "/metrics has no spriteforge_ series"
for _ in $(seq 50); do
  "${PODMAN[@]}" exec -e SPRITEFORGE_WORKER_ID="$WORKER_ID" "$P-worker" spriteforge-worker-health >/dev/null && break
  sleep 0.2
done || fail "the worker's health check does not see it connected to the new coordinator"
echo "container: 24 PNGs exactly once across a coordinator restart, /healthz ($health), /metrics and the worker health check answer ($((SECONDS - start)) s)"
