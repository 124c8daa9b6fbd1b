// CLIP text transformer (CLIP ViT-L and OpenCLIP bigG of SDXL), named like the
// transformers checkpoint: text_model.{embeddings,encoder.layers.N,final_layer_norm} and,
// for bigG, text_projection.
#pragma once

#include <torch/torch.h>

#include "worker/engine/base/model_config.h"
#include "worker/engine/src/layers.h"

namespace spriteforge::engine {

// CLIP's transformer layer (pre-norm self-attention and MLP), named like the transformers
// checkpoint: self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1/fc2, layer_norm2. Causal in
// the text encoders, not in the vision encoder.
struct ClipAttention : torch::nn::Module {
  ClipAttention(int64_t dim, int64_t heads, bool causal);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t heads;
  bool causal;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};

struct ClipMlp : torch::nn::Module {
  ClipMlp(int64_t dim, int64_t hidden, bool quick_gelu);
  torch::Tensor forward(const torch::Tensor& x);
  bool quick_gelu;
  Linear fc1{nullptr}, fc2{nullptr};
};

// Reads hidden_size, num_attention_heads, intermediate_size, hidden_act and layer_norm_eps.
struct ClipLayer : torch::nn::Module {
  ClipLayer(const ClipTextConfig& c, bool causal);
  torch::Tensor forward(torch::Tensor x);
  std::shared_ptr<ClipAttention> self_attn;
  std::shared_ptr<ClipMlp> mlp;
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
};

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
