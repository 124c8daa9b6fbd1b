#!/usr/bin/env bash
# The main job on an embedded default: starts a coordinator and one local worker, submits
# an example manifest from workflows/ and leaves the sprites in a folder it names.
#   bash deploy/run-example.sh                        # built-in tiny model, RANDOM weights (noise)
#   bash deploy/run-example.sh --model /models/sd_xl_base_1.0.safetensors --device cuda
# Options: --model PATH (or SPRITEFORGE_MODEL), --device cpu|cuda[:N], --dtype fp32|fp16|bf16|fp8,
#   --manifest FILE (default: workflows/potions.yaml without weights, workflows/potions-sdxl.yaml
#   with them), --out DIR (default: sprites), --port N (default: 50051).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${SPRITEFORGE_MODEL:-}" DEVICE="" DTYPE="" MANIFEST="" OUT=sprites PORT=50051
while (($#)); do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --dtype) DTYPE="$2"; shift 2 ;;
    --manifest) MANIFEST="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    *) echo "run-example: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

BIN=build
for b in coordinator/spriteforge-coordinator worker/spriteforge-worker client/spriteforge; do
  [ -x "$BIN/$b" ] || { bash deploy/setup.sh; break; }
done

if [ -z "$MODEL" ]; then
  MODEL=builtin:tiny
  MANIFEST="${MANIFEST:-workflows/potions.yaml}"
  echo "run-example: no SDXL weights given (--model PATH or SPRITEFORGE_MODEL):"
  echo "run-example: using the built-in tiny model with RANDOM weights; the sprites will be coloured noise."
else
  MANIFEST="${MANIFEST:-workflows/potions-sdxl.yaml}"
fi
DEVICE="${DEVICE:-cpu}"
[ -n "$DTYPE" ] || { [ "$DEVICE" = cpu ] && DTYPE=fp32 || DTYPE=fp16; }

STATE="$OUT/.spriteforge"
mkdir -p "$STATE"
rm -f "$STATE/ready.json"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT

"$BIN/coordinator/spriteforge-coordinator" --listen "127.0.0.1:$PORT" --db "$STATE/spriteforge.db" \
  --output "$OUT" --http 127.0.0.1:0 --ready-file "$STATE/ready.json" >"$STATE/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -f "$STATE/ready.json" ] && break; sleep 0.1; done
[ -f "$STATE/ready.json" ] || { echo "run-example: the coordinator did not start:"; tail -5 "$STATE/coordinator.log"; exit 1; }
ADDR="127.0.0.1:$PORT"

# The worker advertises the model as "example"; the manifest is submitted for that name.
"$BIN/worker/spriteforge-worker" --coordinator "$ADDR" --model "$MODEL" --model-name example \
  --device "$DEVICE" --dtype "$DTYPE" >"$STATE/worker.log" 2>&1 &
pids+=($!)

JOB=$("$BIN/client/spriteforge" --coordinator "$ADDR" submit "$MANIFEST" --model example)
echo "run-example: job $JOB from $MANIFEST; progress:"
if ! "$BIN/client/spriteforge" --coordinator "$ADDR" watch "$JOB"; then
  echo "run-example: the job did not complete; logs in $STATE/"; tail -3 "$STATE/worker.log"; exit 1
fi
echo "run-example: $(ls "$OUT/$JOB"/*.png | wc -l) PNGs (each with a JSON sidecar) in $OUT/$JOB/"
