// Fused elementwise CUDA kernels of the fast path, on raw device pointers (no torch): the
// engine's src/fused_ops.cc checks shapes, layout and alignment before calling them.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace spriteforge::engine::cuda {

enum class ElementType { kFloat32, kFloat16, kBFloat16 };

// Rows quantized for fp8 GEMMs: data[r, :] = round_e4m3(v[r, :] / scales[r]) with
// scales[r] = max|v[r, :]| / 448 (e4m3's largest finite value), so v ~ data * scale.
// The producing kernel rounds v to its element type first, as if it had stored it.
struct Fp8Out {
  uint8_t* data = nullptr;
  float* scales = nullptr;
};

// Per-(image, group) partial moments written by the first pass of GroupNormSilu.
int64_t GroupNormPartialFloats(int64_t n, int64_t groups, int num_sms, int64_t group_elements);

// y = act(((x + channel_bias[n, c]) - mean) * rstd * gamma[c] + beta[c]) over NCHW x, with
// mean and variance per (n, group) of x + channel_bias; act is SiLU or identity.
// channel_bias may be null ([N, C], same type as x); gamma and beta are [C], same type.
// Needs hw % (16 / sizeof(element)) == 0 and 16-byte aligned x and y. `partials` holds
// GroupNormPartialFloats(...) floats of scratch.
cudaError_t GroupNormSilu(const void* x, const void* channel_bias, const void* gamma,
                          const void* beta, void* y, float* partials, int64_t n, int64_t c,
                          int64_t hw, int64_t groups, float eps, bool silu, ElementType type,
                          int num_sms, cudaStream_t stream);

// The same GroupNorm over channels-last (NHWC) x and y. Needs c % (16 / sizeof(element)) == 0
// and c <= 4096 (fp16/bf16; 2048 for float32); `partials` holds 3 * n * groups *
// NhwcGroupNormSplits(n, hw, num_sms) floats of scratch.
int64_t NhwcGroupNormSplits(int64_t n, int64_t hw, int num_sms);
cudaError_t NhwcGroupNormSilu(const void* x, const void* channel_bias, const void* gamma, const void* beta,
                              void* y, float* partials, int64_t n, int64_t c, int64_t hw, int64_t groups,
                              float eps, bool silu, ElementType type, int num_sms, cudaStream_t stream);

// GEGLU: out[r, f] = in[r, f] * gelu(in[r, features + f]) (exact, erf-based GELU), for
// rows x (2 * features) input. Needs features % (16 / sizeof(element)) == 0, 16-byte aligned.
cudaError_t Geglu(const void* in, void* out, int64_t rows, int64_t features, ElementType type,
                  int num_sms, cudaStream_t stream);

// Over rows x c: sum_out = x + y (rounded to the element type), out = layer_norm(sum_out) *
// gamma + beta. y and sum_out may both be null (plain LayerNorm of x). With fp8.data set
// (16-bit types), out is not written: the normed rows go to fp8 instead. Needs
// c % (16 / sizeof(element)) == 0, c <= 256 * (16 / sizeof(element)), 16-byte aligned rows.
cudaError_t AddLayerNorm(const void* x, const void* y, const void* gamma, const void* beta, void* sum_out,
                         void* out, Fp8Out fp8, int64_t rows, int64_t c, float eps, ElementType type,
                         cudaStream_t stream);

// Rows x k (fp16/bf16) to fp8 as described at Fp8Out. Needs k % 16 == 0, 16-byte aligned.
cudaError_t QuantizeRowsFp8(const void* x, Fp8Out out, int64_t rows, int64_t k, ElementType type,
                            cudaStream_t stream);

// GEGLU as above (fp16/bf16), its rows x features result going to fp8 only. Needs
// features % 16 == 0 and features <= 8192.
cudaError_t GegluFp8(const void* in, Fp8Out out, int64_t rows, int64_t features, ElementType type,
                     cudaStream_t stream);

// out = a + b + bias[c] over NCHW (or, with channels_last, NHWC) a and b (a residual plus a convolution's output, whose
// bias is added here instead of in a pass of its own). Needs hw % (16 / sizeof(element)) == 0.
cudaError_t AddChannelBias(const void* a, const void* b, const void* bias, void* out, int64_t n, int64_t c,
                           int64_t hw, bool channels_last, ElementType type, int num_sms, cudaStream_t stream);

}  // namespace spriteforge::engine::cuda
