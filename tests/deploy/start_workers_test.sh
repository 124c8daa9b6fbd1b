#!/usr/bin/env bash
# deploy/gpu/start-workers.sh on a machine of any GPU count: one worker per GPU, each
# seeing only its own GPU and registering under its own id; a worker that dies comes
# back; SIGTERM stops them all. A stand-in worker records how it was started, and a
# stand-in nvidia-smi lists four GPUs.
set -euo pipefail
src="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/runs"
cat >"$tmp/bin/nvidia-smi" <<'SMI'
#!/usr/bin/env bash
printf '0\n1\n2\n3\n'
SMI
cat >"$tmp/worker" <<WORKER
#!/usr/bin/env bash
echo "gpu=\$CUDA_VISIBLE_DEVICES args=\$*" >> "$tmp/runs/\$CUDA_VISIBLE_DEVICES"
trap 'exit 0' TERM
while true; do sleep 0.1; done
WORKER
chmod +x "$tmp/bin/nvidia-smi" "$tmp/worker"
export PATH="$tmp/bin:$PATH" SPRITEFORGE_WORKER_BIN="$tmp/worker"
unset CUDA_VISIBLE_DEVICES SPRITEFORGE_GPUS

fail() { echo "FAIL: $*"; exit 1; }
wait_for() {  # wait_for SECONDS COMMAND...
  local end=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < end)) || return 1; sleep 0.1; done
}
count_runs() { [ "$(ls "$tmp/runs" | wc -l)" -eq "$1" ]; }

# Every GPU nvidia-smi lists.
"$src/deploy/gpu/start-workers.sh" -- --coordinator 127.0.0.1:1 --model builtin:tiny >"$tmp/all.log" 2>&1 &
launcher=$!
wait_for 10 count_runs 4 || fail "expected 4 workers, got $(ls "$tmp/runs")"
for gpu in 0 1 2 3; do
  grep -q -- "--device cuda:0 --worker-id .*-gpu$gpu --coordinator 127.0.0.1:1 --model builtin:tiny" "$tmp/runs/$gpu" ||
    fail "worker $gpu started as: $(cat "$tmp/runs/$gpu")"
done
# A worker that dies is started again.
pkill -KILL -f "$tmp/worker" -n
wait_for 10 bash -c "cat '$tmp'/runs/* | wc -l | grep -qx 5" || fail "a killed worker was not restarted"
kill -TERM "$launcher"
wait "$launcher" || true
sleep 0.3
! pgrep -f "$tmp/worker" >/dev/null || fail "workers still running after SIGTERM"

# The first two, and an explicit list (as CUDA_VISIBLE_DEVICES gives it).
rm -f "$tmp"/runs/*
"$src/deploy/gpu/start-workers.sh" --gpus 2 -- --model m >"$tmp/two.log" 2>&1 &
launcher=$!
wait_for 10 count_runs 2 || fail "--gpus 2 started $(ls "$tmp/runs")"
[ -f "$tmp/runs/0" ] && [ -f "$tmp/runs/1" ] || fail "--gpus 2 took $(ls "$tmp/runs")"
kill -TERM "$launcher"; wait "$launcher" || true
rm -f "$tmp"/runs/*
CUDA_VISIBLE_DEVICES=3,1 "$src/deploy/gpu/start-workers.sh" -- --model m >"$tmp/list.log" 2>&1 &
launcher=$!
wait_for 10 count_runs 2 || fail "CUDA_VISIBLE_DEVICES=3,1 started $(ls "$tmp/runs")"
[ -f "$tmp/runs/3" ] && [ -f "$tmp/runs/1" ] || fail "CUDA_VISIBLE_DEVICES=3,1 took $(ls "$tmp/runs")"
kill -TERM "$launcher"; wait "$launcher" || true

# Bad input: one clear line.
if "$src/deploy/gpu/start-workers.sh" --gpu-ids 0,x -- --model m 2>"$tmp/bad.log"; then fail "bad ids accepted"; fi
grep -q "GPU ids must be like 0,1,3" "$tmp/bad.log" || fail "bad ids: $(cat "$tmp/bad.log")"
echo "start-workers: ok"
