#!/usr/bin/env bash
# The main job on an embedded default: builds if needed, then renders a small set of game
# sprites with the engine into ./sprites/.
#   bash deploy/run-example.sh                       # built-in tiny model, random weights (noise)
#   bash deploy/run-example.sh --model /models/sd_xl_base_1.0.safetensors [--device cuda --dtype fp16]
# Real weights make real sprites (SDXL wants 1024x1024 and ~30 steps: --size 1024 --steps 30).
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${SPRITEFORGE_MODEL:-}"
DEVICE=cpu DTYPE=fp32 SIZE=128 STEPS=4 OUT=sprites
while (($#)); do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --device) DEVICE="$2"; shift 2 ;;
    --dtype) DTYPE="$2"; shift 2 ;;
    --size) SIZE="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "run-example: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

GENERATE=build/worker/engine/spriteforge-generate
[ -x "$GENERATE" ] || bash deploy/setup.sh

if [ -z "$MODEL" ]; then
  MODEL=builtin:tiny
  echo "run-example: no SDXL weights given (--model PATH or SPRITEFORGE_MODEL):"
  echo "run-example: using the built-in tiny model with RANDOM weights; the sprites will be coloured noise."
fi

# The first four prompts and seeds of each family in workflows/potions.yaml, one image each
# (the command takes one negative per prompt or none, so both families use "blurry").
args=()
for seed in 100 101 102 103; do args+=(--prompt "red potion bottle icon" --negative "blurry" --seed "$seed"); done
for seed in 500 501 502 503; do args+=(--prompt "a pixel art knight with a sword, 16-bit sprite" --negative "blurry" --seed "$seed"); done

mkdir -p "$OUT"
"$GENERATE" --model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" --width "$SIZE" --height "$SIZE" \
  --steps "$STEPS" --cfg 5 --sampler euler --schedule normal --batch 4 --out "$OUT" "${args[@]}" >/dev/null
echo "run-example: $(ls "$OUT"/*.png | wc -l) sprites (PNG + JSON sidecar each) in $OUT/"
