#!/usr/bin/env bash
# Starts one spriteforge-worker per GPU of this host and keeps them running.
#
#   deploy/gpu/start-workers.sh [--gpus all|N] [--gpu-ids I,J,...] -- WORKER ARGS...
#
# Each worker sees only its own GPU (CUDA_VISIBLE_DEVICES=<id>, --device cuda:0) and
# registers as <host>-gpu<id>, so pass neither --device nor --worker-id. Which GPUs:
# --gpu-ids, else --gpus (all, or the first N), else the ids in SPRITEFORGE_GPUS or
# CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists. A worker that exits is started
# again after a pause; SIGINT/SIGTERM stop them all. The worker binary is
# $SPRITEFORGE_WORKER_BIN (default: spriteforge-worker from build-gpu/, build/ or PATH).
set -uo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"

ids="${SPRITEFORGE_GPUS:-${CUDA_VISIBLE_DEVICES:-}}"
count=""
while (($#)); do
  case "$1" in
    --gpus) count="$2"; ids=""; shift 2 ;;
    --gpu-ids) ids="$2"; count=""; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "start-workers: unknown argument $1 (worker arguments go after --)" >&2; exit 2 ;;
  esac
done

list_gpus() {
  if [ -n "$ids" ]; then
    [[ "$ids" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "start-workers: GPU ids must be like 0,1,3, got '$ids'" >&2; return 1; }
    tr ',' '\n' <<<"$ids"
    return
  fi
  local all
  all=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ') ||
    { echo "start-workers: nvidia-smi found no GPU; use --gpu-ids" >&2; return 1; }
  case "${count:-all}" in
    all) echo "$all" ;;
    *)
      [[ "$count" =~ ^[0-9]+$ ]] || { echo "start-workers: --gpus expects all or a count, got '$count'" >&2; return 1; }
      head -n "$count" <<<"$all" ;;
  esac
}
mapfile -t indices < <(list_gpus) || exit 2
((${#indices[@]})) || { echo "start-workers: no GPU found" >&2; exit 2; }

bin="${SPRITEFORGE_WORKER_BIN:-}"
if [ -z "$bin" ]; then
  for candidate in "$here/build-gpu/worker/spriteforge-worker" "$here/build/worker/spriteforge-worker" \
                   "$(command -v spriteforge-worker || true)"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { bin="$candidate"; break; }
  done
fi
[ -n "$bin" ] || { echo "start-workers: spriteforge-worker not found (set SPRITEFORGE_WORKER_BIN)" >&2; exit 2; }

host="$(hostname -s 2>/dev/null || hostname)"
declare -A pid_of
stopping=0
start_one() {
  local gpu="$1"
  CUDA_VISIBLE_DEVICES="$gpu" "$bin" --device cuda:0 --worker-id "$host-gpu$gpu" "${args[@]}" &
  pid_of[$gpu]=$!
  echo "start-workers: worker for GPU $gpu started (pid ${pid_of[$gpu]})"
}
args=("$@")
stop_all() {
  stopping=1
  for gpu in "${!pid_of[@]}"; do kill -TERM "${pid_of[$gpu]}" 2>/dev/null; done
}
trap stop_all INT TERM

for gpu in "${indices[@]}"; do start_one "$gpu"; done
while ((!stopping)); do
  wait -n 2>/dev/null
  ((stopping)) && break
  for gpu in "${!pid_of[@]}"; do
    if ! kill -0 "${pid_of[$gpu]}" 2>/dev/null; then
      echo "start-workers: worker for GPU $gpu exited; restarting in 2 s" >&2
      sleep 2
      ((stopping)) || start_one "$gpu"
    fi
  done
done
wait
echo "start-workers: all workers stopped"
