#!/usr/bin/env bash
# Starts spriteforge-worker from environment variables (the images' worker command, also
# used by compose and Kubernetes). The worker id defaults to the host name, so the health
# check (spriteforge-worker-health) knows which worker to look for.
#   SPRITEFORGE_COORDINATOR  gRPC address of the coordinator (coordinator:50051)
#   SPRITEFORGE_MODEL        weights under the read-only /models mount, or builtin:tiny
#   SPRITEFORGE_MODEL_NAME   name manifests ask for (default: from the file name)
#   SPRITEFORGE_DEVICE       cpu, cuda or cuda:N (cpu);  SPRITEFORGE_DTYPE  fp32|fp16|bf16|fp8
#   SPRITEFORGE_WORKER_ID    (host name);  SPRITEFORGE_WORKER_ARGS  more flags, e.g. "--calibrate 1024x1024"
#   SPRITEFORGE_TOKEN_FILE   a file holding the worker token (a compose or Kubernetes secret)
#   TLS: SPRITEFORGE_TLS_CA, SPRITEFORGE_TLS_CERT, SPRITEFORGE_TLS_KEY (the worker reads them)
set -euo pipefail
if [ -n "${SPRITEFORGE_TOKEN_FILE:-}" ]; then
  # The environment, not a flag: keeps the token out of process listings.
  SPRITEFORGE_TOKEN="$(tr -d '[:space:]' <"$SPRITEFORGE_TOKEN_FILE")"
  export SPRITEFORGE_TOKEN
fi
: "${SPRITEFORGE_MODEL:?set SPRITEFORGE_MODEL to a checkpoint under /models (or builtin:tiny)}"
args=(--coordinator "${SPRITEFORGE_COORDINATOR:-coordinator:50051}" --model "$SPRITEFORGE_MODEL"
      --device "${SPRITEFORGE_DEVICE:-cpu}" --worker-id "${SPRITEFORGE_WORKER_ID:-$(hostname)}")
[ -n "${SPRITEFORGE_MODEL_NAME:-}" ] && args+=(--model-name "$SPRITEFORGE_MODEL_NAME")
[ -n "${SPRITEFORGE_DTYPE:-}" ] && args+=(--dtype "$SPRITEFORGE_DTYPE")
read -r -a extra <<<"${SPRITEFORGE_WORKER_ARGS:-}"
exec spriteforge-worker "${args[@]}" "${extra[@]}"
