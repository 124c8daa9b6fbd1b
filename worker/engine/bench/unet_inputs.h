// Random inputs of one guided SDXL UNet call, shared by the tools that time or compare the
// full-size UNet on its own (spriteforge-unet-profile, spriteforge-unet-precision).
#pragma once

#include <torch/torch.h>

#include "worker/engine/base/model_config.h"

namespace spriteforge::engine {

struct UNetInputs {
  torch::Tensor sample, context, pooled, time_ids;
};

// `batch` samples of size x size pixels (size / 8 latents), prompt embeddings and the
// size-conditioning ids of an uncropped image.
inline UNetInputs RandomUNetInputs(const UNetConfig& config, int64_t batch, int size,
                                   const torch::TensorOptions& options) {
  const float s = static_cast<float>(size);
  return {torch::randn({batch, config.in_channels, size / 8, size / 8}, options),
          torch::randn({batch, 77, config.cross_attention_dim}, options), torch::randn({batch, 1280}, options),
          torch::tensor({s, s, 0.f, 0.f, s, s}, options).unsqueeze(0).expand({batch, 6}).contiguous()};
}

}  // namespace spriteforge::engine
