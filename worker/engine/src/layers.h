// Building blocks shared by the text encoders, UNet and VAE. Parameter names follow the
// diffusers/transformers checkpoint keys, so loading is a name lookup.
#pragma once

#include <memory>

#include <torch/torch.h>

#include "worker/engine/src/fused_ops.h"

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
  torch::Tensor forward(const torch::Tensor& x) { return Apply(x, /*with_bias=*/true); }
  // Without the bias, for callers that fold it into the next per-channel op.
  torch::Tensor Apply(const torch::Tensor& x, bool with_bias);

  torch::Tensor weight, bias;

 private:
  int64_t stride_, padding_;
  TilingFlag tiling_;
};
TORCH_MODULE(Conv2d);

// y = x W^T + b over the last dimension, with "weight" [out, in] and optional "bias" [out]
// like torch::nn::Linear. Inputs of any rank run as one 2-D GEMM with the bias added in its
// epilogue; LibTorch's linear adds the bias in a separate broadcast pass for 3-D inputs on
// some versions, which measured as 13% of the UNet step at batch eight on an H100.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool with_bias = true);
  torch::Tensor forward(const torch::Tensor& x) { return Apply(Rows{x, {}}); }
  // The same on rows that may come quantized already (a module's forward cannot be overloaded).
  torch::Tensor Apply(const Rows& x);

  // From now on run on fp8 tensor cores (src/fused_ops.h): the weight becomes an fp8 copy
  // with one scale per output channel (the original is released) and inputs are quantized
  // per row; outputs are bfloat16. False, changing nothing, where the shape does not suit
  // fp8 GEMMs (in or out features not a multiple of 16).
  bool QuantizeToFp8();
  bool is_fp8() const { return weight_fp8_.defined(); }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  // One Linear whose output is the parts' outputs side by side, for parts that read the
  // same input (one GEMM instead of several). The parts' weights become views of the
  // stacked weight, so memory does not grow. Parts must agree on in features and fp8 and
  // have no bias; nullptr otherwise.
  static std::shared_ptr<LinearImpl> Stack(const std::vector<LinearImpl*>& parts);
  // For merging LoRAs: the weight in float32 (dequantized when fp8), and a new value
  // written into the existing storage, so stacked views and captured CUDA graphs see it
  // (fp8 weights are quantized again, per output channel).
  torch::Tensor FloatWeight() const;
  void AssignWeight(const torch::Tensor& value);
  // The stored weight exactly as it is (fp8 bytes and scales, or the weight), to put back
  // bit for bit after a merge.
  struct Saved {
    torch::Tensor weight, fp8_data, fp8_scale;
  };
  Saved Save(const torch::Device& to) const;
  void Restore(const Saved& saved);
  uint64_t StoredBytes() const;  // of what Save copies

  uint64_t Fp8WeightBytes() const {
    return is_fp8() ? weight_fp8_.data.numel() + weight_fp8_.scale.numel() * sizeof(float) : 0;
  }

  torch::Tensor weight, bias;

 private:
  int64_t in_, out_;
  Fp8Rows weight_fp8_;
};
TORCH_MODULE(Linear);

// Every Linear under `model` that can (LinearImpl::QuantizeToFp8) as fp8 GEMMs; returns
// the bytes of the fp8 weights and scales, which are not parameters.
uint64_t QuantizeLinearsToFp8(torch::nn::Module& model);

Linear MakeLinear(int64_t in, int64_t out, bool bias = true);
torch::nn::GroupNorm MakeGroupNorm(int64_t groups, int64_t channels, double eps);
torch::nn::LayerNorm MakeLayerNorm(int64_t dim, double eps);

// The module's 4-D weights (its convolutions) in channels-last (NHWC) layout.
void ToChannelsLast(torch::nn::Module& module);

// Nearest-neighbour to twice the height and width (each pixel a 2x2 block). Channels-last
// tensors as one broadcast copy that keeps their layout: ATen's NHWC kernel took 2.8 ms per
// 1024x1024 VAE decode on an H100, 2.7x its NCHW kernel's time.
torch::Tensor UpsampleNearest2x(const torch::Tensor& x);

// Multi-head attention over [batch, tokens, heads * head_dim] tensors.
torch::Tensor MultiHeadAttention(const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, int64_t heads, bool causal);

// Sinusoidal timestep features of width `dim` ([N] -> [N, dim]), computed in float32.
torch::Tensor TimestepFeatures(const torch::Tensor& t, int64_t dim, bool flip_sin_to_cos,
                               double freq_shift);

}  // namespace spriteforge::engine
