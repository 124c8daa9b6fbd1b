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

// GEGLU on a projection [..., 2F]: first half * gelu(second half).
torch::Tensor Geglu(const torch::Tensor& projected);

// The residual stream update and the LayerNorm that reads it, in one pass: returns
// {x + y, layer_norm(x + y)} over the last dimension; with y undefined, {x, layer_norm(x)}.
struct StreamAndNorm {
  torch::Tensor stream, normed;
};
StreamAndNorm AddLayerNorm(const torch::Tensor& x, const torch::Tensor& y, const torch::nn::LayerNorm& norm);

// a + b + bias[None, :, None, None] over NCHW tensors: a residual plus a convolution's output
// computed without its bias.
torch::Tensor AddChannelBias(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bias);

// Process-wide switch (on by default) for benchmarks; the kernels exist only in CUDA builds.
void SetFusedKernelsEnabled(bool enabled);
bool FusedKernelsAvailable();

}  // namespace spriteforge::engine
