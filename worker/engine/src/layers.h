// Building blocks shared by the text encoders, UNet and VAE. Parameter names follow the
// diffusers/transformers checkpoint keys, so loading is a name lookup.
#pragma once

#include <memory>

#include <torch/torch.h>

namespace spriteforge::engine {

// Shared switch for seamless tiles: every 3x3 convolution of a model pads circularly
// while it is on.
using TilingFlag = std::shared_ptr<bool>;

// Conv2d with "weight"/"bias" like torch::nn::Conv2d, whose same-size padding can wrap
// around the edges (circular) when the model's tiling flag is set.
class Conv2dImpl : public torch::nn::Module {
 public:
  Conv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = -1,
             TilingFlag tiling = nullptr);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight, bias;

 private:
  int64_t stride_, padding_;
  TilingFlag tiling_;
};
TORCH_MODULE(Conv2d);

torch::nn::Linear MakeLinear(int64_t in, int64_t out, bool bias = true);
torch::nn::GroupNorm MakeGroupNorm(int64_t groups, int64_t channels, double eps);
torch::nn::LayerNorm MakeLayerNorm(int64_t dim, double eps);

// Multi-head attention over [batch, tokens, heads * head_dim] tensors.
torch::Tensor MultiHeadAttention(const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, int64_t heads, bool causal);

// Sinusoidal timestep features of width `dim` ([N] -> [N, dim]), computed in float32.
torch::Tensor TimestepFeatures(const torch::Tensor& t, int64_t dim, bool flip_sin_to_cos,
                               double freq_shift);

}  // namespace spriteforge::engine
