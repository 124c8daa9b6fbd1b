// CLIP text transformer (CLIP ViT-L and OpenCLIP bigG of SDXL), named like the
// transformers checkpoint: text_model.{embeddings,encoder.layers.N,final_layer_norm} and,
// for bigG, text_projection.
#pragma once

#include <torch/torch.h>

#include "worker/engine/base/model_config.h"
#include "worker/engine/src/layers.h"

namespace spriteforge::engine {

struct ClipOutput {
  torch::Tensor penultimate;  // [B, 77, hidden]: hidden states before the last layer
  torch::Tensor pooled;       // [B, projection_dim]: final LN at the first EOS, projected (bigG only)
};

class ClipTextEncoderImpl : public torch::nn::Module {
 public:
  ClipTextEncoderImpl(const ClipTextConfig& config, bool with_projection);
  // ids: [B, 77] int64 on the module's device.
  ClipOutput forward(const torch::Tensor& ids);

 private:
  ClipTextConfig config_;
  bool with_projection_;
  torch::nn::Module* text_model_ = nullptr;
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  std::vector<std::shared_ptr<torch::nn::Module>> layers_;
  torch::nn::LayerNorm final_layer_norm_{nullptr};
  Linear text_projection_{nullptr};
};
TORCH_MODULE(ClipTextEncoder);

}  // namespace spriteforge::engine
