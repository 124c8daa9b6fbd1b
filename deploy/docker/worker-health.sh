#!/usr/bin/env bash
# Health of a worker: with SPRITEFORGE_WORKER_HTTP set (the worker's --http), its own
# /healthz (ready: model loaded and a coordinator holding it; --liveness: it answers at all);
# otherwise as the coordinator sees it: healthy while the coordinator's /metrics shows this
# worker's stream open. Used by the GPU images' HEALTHCHECK and Kubernetes probes.
# Usage: worker-health.sh [--liveness] [METRICS_URL] [WORKER_ID]
#   defaults: $SPRITEFORGE_COORDINATOR_HTTP/metrics (http://coordinator:8080), and
#   $SPRITEFORGE_WORKER_ID or the host name (what the images pass as --worker-id).
#   --liveness: an unreachable coordinator counts as healthy (the worker reconnects by
#   itself; restarting it would only reload the model).
set -uo pipefail
LIVENESS=0
[ "${1:-}" = "--liveness" ] && { LIVENESS=1; shift; }
if [ -n "${SPRITEFORGE_WORKER_HTTP:-}" ]; then
  port="${SPRITEFORGE_WORKER_HTTP##*:}" host=127.0.0.1
  [[ "$SPRITEFORGE_WORKER_HTTP" == *:* ]] && host="${SPRITEFORGE_WORKER_HTTP%:*}"
  [[ "$host" == 0.0.0.0 || -z "$host" ]] && host=127.0.0.1
  body="$(curl -sS --max-time 5 -w '\n%{http_code}' "http://$host:$port/healthz" 2>&1)"
  code="${body##*$'\n'}"
  echo "worker-health: ${body%$'\n'*}"
  [ "$code" = 200 ] && exit 0
  # Alive while it answers: loading a model or reconnecting is no reason to restart it.
  ((LIVENESS)) && [ "$code" = 503 ] && exit 0
  exit 1
fi
URL="${1:-${SPRITEFORGE_COORDINATOR_HTTP:-http://coordinator:8080}/metrics}"
ID="${2:-${SPRITEFORGE_WORKER_ID:-$(hostname)}}"
# An https:// coordinator (TLS) is checked against the worker's own CA.
CA=()
[ -n "${SPRITEFORGE_TLS_CA:-}" ] && CA=(--cacert "$SPRITEFORGE_TLS_CA")
if ! metrics="$(curl -fsS --max-time 5 "${CA[@]}" "$URL" 2>&1)"; then
  echo "worker-health: cannot read $URL: $metrics"
  exit $((1 - LIVENESS))
fi
if grep -qxF "spriteforge_worker_connected{worker=\"$ID\"} 1" <<<"$metrics"; then
  echo "worker-health: $ID connected"
  exit 0
fi
echo "worker-health: worker $ID is not connected to the coordinator at $URL"
exit 1
