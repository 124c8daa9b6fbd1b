// Fused versions of the elementwise chains that dominate the UNet's memory traffic, with
// plain LibTorch equivalents. On CUDA tensors in fp16/bf16, when the engine was built with
// the CUDA toolkit (cuda/fused_kernels.cu), one kernel replaces several passes; everywhere
// else (the CPU, float32, odd shapes) the LibTorch ops run, so reference numerics stay.
#pragma once

#include <torch/torch.h>

namespace spriteforge::engine {

// silu(group_norm(x + channel_bias[:, :, None, None])) (or without the SiLU);
// channel_bias is [N, C] or undefined.
torch::Tensor GroupNormAct(const torch::Tensor& x, const torch::nn::GroupNorm& norm, bool silu,
                           const torch::Tensor& channel_bias = {});

// Rows [..., K] quantized to fp8 (e4m3) for fp8 GEMMs, one float32 scale per row:
// values ~ data * scale, scale [rows, 1] (for a weight [N, K]: one per output channel, [1, N]).
struct Fp8Rows {
  torch::Tensor data, scale;
  bool defined() const { return data.defined(); }
};

// A Linear's input: its rows as values, or, for fp8 Linears, already quantized by the
// kernel that produced them (only one of the two is set).
struct Rows {
  torch::Tensor values;
  Fp8Rows fp8;
};

// GEGLU on a projection [..., 2F]: first half * gelu(second half). With fp8 (for an fp8
// Linear), the result comes quantized where the fused kernel applies.
Rows Geglu(const torch::Tensor& projected, bool fp8 = false);

// The residual stream update and the LayerNorm that reads it, in one pass: returns
// {x + y, layer_norm(x + y)} over the last dimension; with y undefined, {x, layer_norm(x)}.
// With fp8, the normed rows come quantized where the fused kernel applies.
struct StreamAndNorm {
  torch::Tensor stream;
  Rows normed;
};
StreamAndNorm AddLayerNorm(const torch::Tensor& x, const torch::Tensor& y, const torch::nn::LayerNorm& norm,
                           bool fp8 = false);

// a + b + bias[None, :, None, None] over NCHW tensors: a residual plus a convolution's output
// computed without its bias.
torch::Tensor AddChannelBias(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bias);

// fp8 Linears (CUDA builds with the fused kernels, compute capability 8.9 or newer):
// an empty string where `device` runs them, else why not.
std::string Fp8Unsupported(const torch::Device& device);
// A weight [N, K] as fp8 with one scale per output channel.
Fp8Rows QuantizeWeightFp8(const torch::Tensor& weight);
// x [..., K] (fp16/bf16 on CUDA) quantized per row.
Fp8Rows QuantizeRowsFp8(const torch::Tensor& x);
// x W^T + bias on fp8 tensor cores with fp32 accumulation: [..., N] in bfloat16.
torch::Tensor Fp8Linear(const Fp8Rows& x, const Fp8Rows& weight, const torch::Tensor& bias);

// A channels-last (NHWC) 4-D tensor that is not also plain contiguous (1x1 images are both).
bool IsChannelsLast(const torch::Tensor& t);

// Process-wide switch (on by default) for benchmarks; the kernels exist only in CUDA builds.
void SetFusedKernelsEnabled(bool enabled);
bool FusedKernelsAvailable();

}  // namespace spriteforge::engine
