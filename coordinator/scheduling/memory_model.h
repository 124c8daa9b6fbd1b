// Predicts a worker's peak device memory for a batch of b images at W x H, and learns from
// what the worker reports: peak(b) = fixed + b x per_image, per image shape. Pure: no I/O,
// no clock; the coordinator feeds it observations and out-of-memory events.
#pragma once

#include <cstdint>
#include <map>
#include <utility>

namespace spriteforge::coordinator {

struct MemoryPrior {
  uint64_t fixed_bytes;              // weights plus workspace that does not scale with b
  uint64_t per_image_bytes_at_1mp;   // per image at 1024 x 1024; scaled by pixel count
};

// SDXL base in fp16 on an H100 (measured): 6.9 GB of weights and decode workspace, about
// 0.35 GB per image (two UNet samples each) at 1024 x 1024.
constexpr MemoryPrior kSdxlFp16Prior{7'400'000'000ull, 350'000'000ull};

// What conditioning adds, where the files' sizes are unknown (the planner takes the sizes of
// uploaded files and of the ones workers report instead): a full SDXL ControlNet's fp16
// weights, about 2.5 GB ("mid" and "small" variants are far smaller, their files say so),
// and IP-Adapter Plus with its ViT-H/14 image encoder, about 1.3 GB. A ControlNet's
// activations are about half a UNet encoder's, a quarter of the UNet's: per image, a
// quarter of the prior's 0.35 GB at 1024 x 1024.
constexpr uint64_t kControlNetBytes = 2'500'000'000ull;
constexpr uint64_t kIpAdapterBytes = 1'300'000'000ull;
constexpr uint64_t kControlNetPerImageBytesAt1mp = 90'000'000ull;

class MemoryModel {
 public:
  explicit MemoryModel(MemoryPrior prior) : prior_(prior) {}

  uint64_t PredictPeak(int batch, int width, int height) const;

  // The largest batch whose predicted peak fits `budget_bytes`, at most `hard_cap` and at most
  // the cap learnt from out-of-memory failures for this shape; 0 when not even one fits.
  // `extra_per_image_at_1mp`: what each image adds beyond the model (ControlNets'
  // activations), scaled by pixel count like the prior.
  int MaxBatch(int width, int height, uint64_t budget_bytes, int hard_cap, uint64_t extra_per_image_at_1mp = 0) const;

  // A batch finished and reported its measured peak.
  void Observe(int batch, int width, int height, uint64_t peak_bytes);

  // A batch ran out of memory: this shape's cap drops below `batch` (halved).
  void OnOutOfMemory(int batch, int width, int height);

  int CapFor(int width, int height) const;  // 0 = no cap learnt

 private:
  struct Fit {
    std::map<int, uint64_t> peak_by_batch;  // largest peak seen per batch size
    int cap = 0;
  };
  using Shape = std::pair<int, int>;
  MemoryPrior prior_;
  std::map<Shape, Fit> fits_;
};

}  // namespace spriteforge::coordinator
