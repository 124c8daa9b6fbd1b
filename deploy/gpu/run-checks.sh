#!/usr/bin/env bash
# On the GPU machine: builds the engine against PyTorch's LibTorch, runs the golden
# end-to-end cases on CUDA in fp32/fp16/bf16, then benchmarks SDXL base (random weights).
# "service" runs the whole service (coordinator, one worker per GPU, client) and compares it
# with the benchmark in the same run; "controls-bench" and "service-controls" do the same with
# ControlNets and IP-Adapter Plus (random full-size files written to $CONTROLS, 5 GB, never to
# $OUT). Results go to $OUT (or /tmp/spriteforge-out).
# Usage: deploy/gpu/run-checks.sh [golden|kernels|profile|bench|summary|variants|quick|precision|compare|fp8|fp8-routes|fp8-conv|fp8-attention|fewstep|speedups|decode|service|service-speedups|service-fewstep|controls-bench|service-controls|scaling-one|scaling-all|sm121|ctest]...
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/spriteforge-out}"; mkdir -p "$OUT"
source deploy/gpu/env.sh
export SPRITEFORGE_COMMIT="${SPRITEFORGE_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
export SPRITEFORGE_DRIVER="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
# Every target: engine, benches, coordinator, worker, client and tests (the probes that
# compile on their own, fp8-routes, fp8-conv and fp8-attention, alone need none).
for stage in "${@:-golden bench}"; do
  case "$stage" in
    fp8-routes|fp8-conv|fp8-attention) ;;
    *) bash deploy/gpu/build.sh >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }; break ;;
  esac
done
BIN=build-gpu/worker
G=.gpu-deps/golden
C=.gpu-deps/tiny-sdxl-controls; [ -d "$C" ] || C=tests/golden/tiny-sdxl-controls  # ControlNet, IP-Adapter cases
CONTROLS="${SPRITEFORGE_CONTROLS:-/tmp/spriteforge-controls}"  # random SDXL ControlNets and IP-Adapter Plus
for stage in "${@:-golden bench}"; do
  case "$stage" in
    golden)
      for spec in fp32:1e-3 fp16:2e-2 bf16:5e-2; do
        dtype=${spec%%:*}; tol=${spec#*:}
        echo "== golden e2e on cuda, $dtype (tolerance $tol)"
        $BIN/engine/spriteforge-golden-check --golden $G --device cuda --dtype $dtype --tolerance $tol \
          --json "$OUT/golden-cuda-$dtype.json" 2>&1 | grep -v '^\[' | tee -a "$OUT/golden.txt"
      done
      # The workflow cases (LoRA in both file formats, img2img) and the controls (ControlNet,
      # IP-Adapter; the UNet step replayed as a CUDA graph with the residuals as inputs) in fp32 and fp16.
      for spec in fp32:1e-3 fp16:2e-2; do
        dtype=${spec%%:*}; tol=${spec#*:}
        echo "== golden workflows on cuda, $dtype (tolerance $tol)"
        $BIN/engine/spriteforge-golden-check --golden $G --workflows .gpu-deps/tiny-sdxl-workflows --device cuda \
          --dtype $dtype --tolerance $tol --json "$OUT/golden-workflows-cuda-$dtype.json" 2>&1 | grep -v '^\[' | tee -a "$OUT/golden.txt"
        echo "== golden controls on cuda, $dtype (tolerance $tol)"
        $BIN/engine/spriteforge-golden-check --golden $G --controls $C --device cuda \
          --dtype $dtype --tolerance $tol --json "$OUT/golden-controls-cuda-$dtype.json" 2>&1 | grep -v '^\[' | tee -a "$OUT/golden.txt"
      done
      echo "== golden controls on cuda, fp8 Linears in the UNet and ControlNet (reported)"
      $BIN/engine/spriteforge-golden-check --golden $G --controls $C --device cuda --dtype fp8 \
        --tolerance 1 --json "$OUT/golden-controls-cuda-fp8.json" 2>&1 | grep -v '^\[' | tee -a "$OUT/golden.txt"
      echo "== golden e2e on cuda, fp16, NCHW UNet (tolerance 2e-2)"
      $BIN/engine/spriteforge-golden-check --golden $G --device cuda --dtype fp16 --tolerance 2e-2 --channels-last 0 \
        --json "$OUT/golden-cuda-fp16-nchw.json" 2>&1 | grep -v '^\[' | tee -a "$OUT/golden.txt" ;;
    kernels)
      echo "== fused CUDA kernels vs LibTorch ops"
      grep -E "spriteforge_cuda_kernels|registers|spill" "$OUT/build.log" | head -20 > "$OUT/kernels-ptxas.txt"
      $BIN/engine/bench/spriteforge-kernel-check 2>&1 | tee "$OUT/kernels.txt" ;;
    profile)
      # fp16 guided steps for one and eight images, fused kernels on and off (no CUDA graphs).
      for spec in 1:1 8:1 8:0; do
        echo "== UNet profile: images ${spec%%:*}, fused kernels ${spec#*:}"
        $BIN/engine/bench/spriteforge-unet-profile --images ${spec%%:*} --fused-kernels ${spec#*:} 2>&1 | grep -v warning | tee -a "$OUT/unet-profile.txt"
      done ;;
    bench)
      echo "== optimized fp16, bf16 and fp8 Linears, 1024x1024, 30 steps"
      $BIN/engine/bench/spriteforge-bench --dtypes fp16,bf16,fp8 --batches 1,4,8,16 --runs 2 --json "$OUT/bench.json" 2>&1 | grep -v warning | tee "$OUT/bench.txt" ;;
    summary)
      echo "== fp16, bf16 and fp8 Linears at batch 1 and 8, 1024x1024, 30 steps"
      $BIN/engine/bench/spriteforge-bench --dtypes fp16,bf16,fp8 --batches 1,8 --runs 1 --json "$OUT/bench-summary.json" 2>&1 | grep -v warning | tee "$OUT/bench-summary.txt" ;;
    variants|quick)
      # channels-last, CUDA graphs, fused kernels (defaults first); "quick": the defaults vs NCHW.
      combos="1:1:1 0:1:1 1:1:0 0:1:0 1:0:1"; [ "$stage" = quick ] && combos="1:1:1 0:1:1"
      for v in $combos; do
        IFS=: read -r cl graphs fused <<<"$v"
        echo "== fp16 variant: channels-last $cl, CUDA graphs $graphs, fused kernels $fused"
        $BIN/engine/bench/spriteforge-bench --dtypes fp16 --batches 1,8 --runs 1 --channels-last $cl --cuda-graphs $graphs \
          --fused-kernels $fused --json "$OUT/bench-variant-cl$cl-g$graphs-f$fused.json" 2>&1 | grep -v warning | tee -a "$OUT/bench-variants.txt"
      done ;;
    fp8)
      # bf16 with fp8 Linears: the golden cases (lossy by design: error reported, not gated)
      # and the speed against plain bf16.
      echo "== golden e2e on cuda, fp8 Linears (reported)"
      $BIN/engine/spriteforge-golden-check --golden $G --device cuda --dtype fp8 --tolerance 1 \
        --json "$OUT/golden-cuda-fp8.json" 2>&1 | grep -v '^\[' | tee -a "$OUT/golden.txt"
      echo "== UNet profile: images 8, fp8 Linears"
      $BIN/engine/bench/spriteforge-unet-profile --images 8 --dtype fp8 2>&1 | grep -v warning | tee -a "$OUT/unet-profile.txt"
      echo "== bf16 vs fp8 Linears, 1024x1024, 30 steps"
      $BIN/engine/bench/spriteforge-bench --dtypes bf16,fp8 --batches 1,8 --runs 1 --json "$OUT/bench-fp8.json" 2>&1 | grep -v warning | tee "$OUT/bench-fp8.txt" ;;
    fp8-routes)
      # What this LibTorch offers for fp8 attention and convolutions, against fp16 at SDXL's shapes.
      echo "== fp8 routes for attention and 3x3 convolutions"
      python3 deploy/gpu/fp8_routes_probe.py "$OUT/fp8-routes.json" 2>&1 | grep -v Warning | tee "$OUT/fp8-routes.txt" ;;
    fp8-conv|fp8-attention)
      # cuDNN's own fp8 convolution and fp8 flash attention, reached through its graph API
      # (LibTorch's conv2d and scaled_dot_product_attention refuse fp8): fp16 vs e4m3 3x3
      # convolutions at the UNet's and the VAE decoder's shapes; e4m3 attention at the UNet's
      # self-attention shapes (fp16 SDPA at the same shapes: fp8-routes).
      probe=${stage#fp8-}
      echo "== cuDNN fp8 $probe probe"
      site=$(python3 -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')
      lib=$(find "$site" /usr/local/cuda/lib64 /usr/lib -name 'libcudnn.so.9' 2>/dev/null | head -1)
      inc=$(find "$site" /usr/local/cuda/include /usr/include .gpu-deps/cudnn-include -name cudnn_graph.h 2>/dev/null | head -1)
      echo "cuDNN library $lib, headers $inc" | tee "$OUT/fp8-$probe.txt"
      mkdir -p build-gpu
      nvcc -O2 -std=c++17 -arch=sm_${SPRITEFORGE_CUDA_ARCHS%%;*} -I"$(dirname "$inc")" deploy/gpu/cudnn_fp8_${probe}_probe.cu \
        -L"$(dirname "$lib")" -l:libcudnn.so.9 -Xlinker -rpath="$(dirname "$lib")" -o build-gpu/cudnn-fp8-$probe-probe 2>&1 \
        | tail -5 | tee -a "$OUT/fp8-$probe.txt"
      build-gpu/cudnn-fp8-$probe-probe "$OUT/fp8-$probe.json" 2>&1 | tee -a "$OUT/fp8-$probe.txt" ;;
    precision)
      echo "== fp16/bf16/fp8 vs fp32, full-size UNet"
      $BIN/engine/bench/spriteforge-unet-precision --size 1024 --batch 2 2>&1 | tee "$OUT/unet-precision.txt" ;;
    fewstep)
      # SDXL-Lightning's shape: 4 steps, CFG 1 (one UNet pass per image), Euler trailing, a
      # random rank-64 LoRA merged; then the switch to a second LoRA.
      echo "== 4-step CFG-1 Euler trailing, rank-64 LoRA merged, 1024x1024"
      $BIN/engine/bench/spriteforge-bench --dtypes fp16,fp8 --batches 8,16 --steps 4 --cfg 1 --schedule trailing \
        --lora-rank 64 --runs 2 --json "$OUT/bench-fewstep.json" 2>&1 | grep -v warning | tee "$OUT/bench-fewstep.txt" ;;
    speedups)
      # The opt-in speed-ups that change pixels, against the exact path in the same process:
      # CFG only on the first half of the steps, deep cache every 3 steps, both; each row
      # with its time per image and its pixel difference from the exact path's images.
      echo "== guidance interval and deep cache vs exact, ${SPEEDUP_DTYPES:-fp16,fp8}, batch 8, 1024x1024, 30 steps, CFG 5"
      $BIN/engine/bench/spriteforge-bench --dtypes "${SPEEDUP_DTYPES:-fp16,fp8}" --batches 8 --runs 1 --speedups \
        --json "$OUT/bench-speedups.json" 2>&1 | grep -v warning | tee "$OUT/bench-speedups.txt" ;;
    decode)
      # Few-step generation decodes a large share of its time: one image per VAE call
      # (the default) against as many as memory allows.
      # Then the fp16 model with a bfloat16 VAE (--vae-dtype bf16).
      # Then the VAE in channels-last (NHWC) against NCHW, and where a decode's time goes.
      for spec in 1:fp16:0 0:fp16:0 1:bf16:0 1:fp16:1 1:bf16:1; do
        IFS=: read -r d vae cl <<<"$spec"
        echo "== 4-step CFG-1, fp16, batch 16, decode batch $d (0: as memory allows), VAE $vae, channels-last $cl"
        $BIN/engine/bench/spriteforge-bench --dtypes fp16 --batches 16 --steps 4 --cfg 1 --schedule trailing --runs 1 \
          --decode-batch $d --vae-dtype $vae --vae-channels-last $cl --json "$OUT/bench-decode-$d-$vae-cl$cl.json" 2>&1 \
          | grep -v warning | tee -a "$OUT/bench-decode.txt"
      done
      for cl in 0 1; do
        echo "== VAE decode profile, one 1024x1024 image, fp16, channels-last $cl"
        $BIN/engine/bench/spriteforge-unet-profile --vae 1 --images 1 --channels-last $cl --top 30 2>&1 | grep -v warning \
          | tee -a "$OUT/vae-profile.txt"
      done ;;
    service)
      # One coordinator, one worker per visible GPU; fp16 and fp8; the benchmark at batch 8.
      gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | awk '{print tolower($NF)}')
      n=$(nvidia-smi -L | wc -l)
      name="$gpu"; [ "${CUDA_VISIBLE_DEVICES:-}" = "" ] && [ "$n" -gt 1 ] && name="${gpu}x$n"
      echo "== service on $name: ${SERVICE_JOBS:-64}-image jobs, 1024x1024, 30 steps, CFG 6, Euler"
      python3 deploy/gpu/service_check.py --build build-gpu --out "$OUT/$name-service.json" \
        --dtypes "${SERVICE_DTYPES:-fp16,fp8}" --jobs "${SERVICE_JOBS:-64}" 2>&1 | tee "$OUT/service.txt" ;;
    service-speedups)
      # The service with each opt-in speed-up against the benchmark with the same one.
      gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | awk '{print tolower($NF)}')
      for speedup in ${SERVICE_SPEEDUPS:-interval deep-cache}; do
        echo "== service on $gpu with $speedup: ${SERVICE_JOBS:-64}-image jobs, 1024x1024, 30 steps, CFG 6"
        python3 deploy/gpu/service_check.py --build build-gpu --out "$OUT/$gpu-service-$speedup.json" \
          --dtypes "${SERVICE_DTYPES:-fp16}" --jobs "${SERVICE_JOBS:-64}" --speedup $speedup \
          --work /tmp/spriteforge-service-$speedup 2>&1 | tee -a "$OUT/service-speedups.txt"
      done ;;
    service-fewstep)
      # The service on few-step jobs (4 steps, CFG 1, Euler trailing, a rank-64 LoRA uploaded
      # with the job, batch 16) against the benchmark with the same settings.
      gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | awk '{print tolower($NF)}')
      echo "== service on $gpu: ${FEWSTEP_JOBS:-256}-image 4-step jobs with a rank-64 LoRA, batch 16"
      python3 deploy/gpu/service_check.py --build build-gpu --out "$OUT/$gpu-service-fewstep.json" \
        --dtypes "${SERVICE_DTYPES:-fp16,fp8}" --jobs "${FEWSTEP_JOBS:-256}" --batch 16 --fewstep \
        --work /tmp/spriteforge-service-fewstep 2>&1 | tee "$OUT/service-fewstep.txt" ;;
    controls-bench)
      # Per dtype in one process: no controls first, then the full ControlNet, the small one,
      # IP-Adapter Plus, and the full ControlNet with IP-Adapter Plus (service-controls' jobs);
      # each row's time per image against the first, with the targets (35%, 15%, 5%).
      echo "== random SDXL ControlNets (full, small), IP-Adapter Plus and ViT-H encoder in $CONTROLS"
      $BIN/engine/bench/spriteforge-bench --write-controls "$CONTROLS" 2>&1 | tee "$OUT/controls-bench.txt"
      echo "== ControlNets and IP-Adapter Plus vs none, ${CONTROLS_DTYPES:-fp16,fp8}, batch 8, 1024x1024, 30 steps"
      $BIN/engine/bench/spriteforge-bench --dtypes "${CONTROLS_DTYPES:-fp16,fp8}" --batches "${CONTROLS_BATCHES:-8}" \
        --runs "${CONTROLS_RUNS:-1}" --controls-set "$CONTROLS" --json "$OUT/controls-bench.json" 2>&1 \
        | grep -v warning | tee -a "$OUT/controls-bench.txt" ;;
    service-controls)
      # The whole service on pose x identity jobs (builtin:walk-8dir's 32 poses x 2 characters,
      # the full ControlNet and IP-Adapter Plus), against the benchmark with both in the same run.
      gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | awk '{print tolower($NF)}')
      echo "== service on $gpu: ${SERVICE_JOBS:-64}-image pose x identity jobs, full ControlNet + IP-Adapter Plus"
      python3 deploy/gpu/service_check.py --build build-gpu --out "$OUT/$gpu-service-controls.json" \
        --dtypes "${SERVICE_DTYPES:-fp16}" --jobs "${SERVICE_JOBS:-64}" --controls "$CONTROLS" \
        --work /tmp/spriteforge-service-controls 2>&1 | tee "$OUT/service-controls.txt" ;;
    scaling-one|scaling-all)
      # One coordinator and one worker per GPU: first GPU 0 alone, then every GPU; fp16,
      # 64- and 256-image jobs. The second run reports its speed-up over the first.
      gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | awk '{print tolower($NF)}')
      n=$(nvidia-smi -L | wc -l)
      if [ "$stage" = scaling-one ]; then
        echo "== service scaling: GPU 0 alone"
        CUDA_VISIBLE_DEVICES=0 python3 deploy/gpu/service_check.py --build build-gpu --out "$OUT/$gpu-one-gpu-service.json" \
          --dtypes fp16 --jobs "${SCALING_JOBS:-64,256}" --skip-bench 2>&1 | tee -a "$OUT/scaling.txt"
      else
        echo "== service scaling: all $n GPUs"
        python3 deploy/gpu/service_check.py --build build-gpu --out "$OUT/${gpu}x$n-service.json" --dtypes fp16 \
          --jobs "${SCALING_JOBS:-64,256}" --baseline "$OUT/$gpu-one-gpu-service.json" 2>&1 | tee -a "$OUT/scaling.txt"
      fi ;;
    sm121)
      # DGX Spark's GB10 (compute capability 12.1): the fused kernels compile for it with
      # this CUDA (compile only: no such GPU here).
      echo "== fused kernels for sm_121 (compile only)"
      nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
      { $nvcc --version | tail -2; $nvcc -O3 -std=c++17 -arch=sm_121 -Xptxas=-v -I . \
          -c worker/engine/cuda/fused_kernels.cu -o /tmp/fused_kernels_sm121.o 2>&1 | grep -cE "Compiling entry" \
          | sed 's/^/kernels compiled for sm_121: /'; cuobjdump --list-elf /tmp/fused_kernels_sm121.o; } 2>&1 | tee "$OUT/sm121-kernels.txt" ;;
    ctest)
      echo "== ctest on the GPU machine (torch-free suites and the CPU engine tests)"
      # Multi-process (label system) and soak tests are left out unless CTEST_LABELS_EXCLUDE says otherwise.
      ctest --test-dir build-gpu --output-on-failure -j 8 --timeout 600 -LE "${CTEST_LABELS_EXCLUDE:-system|soak}" 2>&1 \
        | tail -15 | tee "$OUT/ctest.txt" ;;
    compare)
      echo "== baseline fp32 vs optimized bf16"
      $BIN/engine/bench/spriteforge-bench --compare --dtypes bf16 --batches 1,8 --runs 1 --json "$OUT/bench-compare.json" 2>&1 | tee "$OUT/bench-compare.txt" ;;
  esac
done
