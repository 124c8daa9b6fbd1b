// What a simulated worker's GPU costs in time and memory. Time grows linearly with batch
// size and pixels from one measured anchor (docs/perf/h200-service.json: SDXL fp16 on an
// H200, a batch of 8 at 1024x1024 renders in 7.0 s, PNG encoding takes about 0.23 s off
// the GPU's path). Memory: weights plus a share per image, scaled by pixels.
#pragma once

#include <cstdint>

namespace spriteforge::fleet {

struct GpuModel {
  double batch_seconds = 7.0;    // a batch of `batch_ref` images at 1024x1024
  int batch_ref = 8;
  double package_seconds = 0.23; // PNG encoding of a batch, beside the GPU
  uint64_t total_bytes = 141ull << 30;
  uint64_t reserve_bytes = 2ull << 30;
  uint64_t weights_bytes = 7ull << 30;
  uint64_t per_image_bytes_at_1mp = 350ull << 20;

  double RenderSeconds(int batch, int width, int height) const {
    return batch_seconds * batch / batch_ref * (static_cast<double>(width) * height / (1024.0 * 1024.0));
  }
  // Peak device memory of a batch: weights with their workspace, plus each image's share.
  uint64_t PeakBytes(int batch, int width, int height) const {
    const double mp = static_cast<double>(width) * height / (1024.0 * 1024.0);
    return weights_bytes + weights_bytes / 8 + static_cast<uint64_t>(batch * mp * per_image_bytes_at_1mp);
  }
  uint64_t BudgetBytes() const { return total_bytes > reserve_bytes ? total_bytes - reserve_bytes : 0; }
};

// How the fleet misbehaves; probabilities are per batch.
struct FailureModel {
  double oom_rate = 0;          // the batch fails with out of memory early in its render
  double crash_rate = 0;        // the worker process dies halfway through the batch
  double reconnect_seconds = 30;  // (simulated) until a crashed worker is back
  int link_delay_ms = 0;        // added to every message the worker sends (a slow link)
};

}  // namespace spriteforge::fleet
