#include "worker/engine/cuda/fused_kernels.h"

#include <algorithm>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

namespace spriteforge::engine::cuda {
namespace {

constexpr int kThreads = 256;
// NHWC GroupNorm blocks: one row of packs per pixel (c <= 4096 channels: up to 512 packs of 8).
constexpr int kMaxNhwcThreads = 512;

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T FromFloat(float v);
template <> __device__ __forceinline__ float FromFloat<float>(float v) { return v; }
template <> __device__ __forceinline__ __half FromFloat<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// 16 bytes of T: one vector load or store per thread.
template <typename T>
struct alignas(16) Pack {
  static constexpr int kSize = 16 / sizeof(T);
  T v[kSize];
};

// Count, mean and sum of squared deviations; combined pairwise (Chan et al.), which stays
// accurate over the hundreds of thousands of elements of one group.
struct Moments {
  float n, mean, m2;
};

__device__ __forceinline__ Moments Combine(const Moments& a, const Moments& b) {
  const float n = a.n + b.n;
  if (n == 0.f) return {0.f, 0.f, 0.f};
  const float delta = b.mean - a.mean, wb = b.n / n;
  return {n, a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.n * wb};
}

__device__ __forceinline__ Moments WarpCombine(Moments m) {
  for (int offset = 16; offset > 0; offset >>= 1) {
    Moments other{__shfl_down_sync(0xffffffffu, m.n, offset),
                  __shfl_down_sync(0xffffffffu, m.mean, offset),
                  __shfl_down_sync(0xffffffffu, m.m2, offset)};
    m = Combine(m, other);
  }
  return m;  // complete in lane 0
}

// Layout of one (image, group): Cg channels of hw elements, contiguous.
struct GroupShape {
  int64_t c, hw, groups, splits;
  __device__ int64_t ChannelsPerGroup() const { return c / groups; }
  __device__ int64_t Elements() const { return ChannelsPerGroup() * hw; }
};

// Pass 1: block (split, image * groups + group) reduces its slice of the group.
template <typename T>
__global__ void __launch_bounds__(kThreads) GroupMomentsKernel(const T* __restrict__ x,
                                                               const T* __restrict__ bias,
                                                               float* __restrict__ partials,
                                                               GroupShape s) {
  constexpr int V = Pack<T>::kSize;
  const int64_t ng = blockIdx.y, image = ng / s.groups, group = ng % s.groups;
  const int64_t cg = s.ChannelsPerGroup(), first_channel = group * cg;
  const int64_t packs = s.Elements() / V, per_split = (packs + s.splits - 1) / s.splits;
  const int64_t begin = blockIdx.x * per_split, end = min(packs, begin + per_split);
  const Pack<T>* in = reinterpret_cast<const Pack<T>*>(x + (image * s.c + first_channel) * s.hw);

  Moments m{0.f, 0.f, 0.f};
  for (int64_t p = begin + threadIdx.x; p < end; p += kThreads) {
    const Pack<T> pack = in[p];
    const float b = bias ? ToFloat(bias[image * s.c + first_channel + p * V / s.hw]) : 0.f;
    float v[V], sum = 0.f;
#pragma unroll
    for (int i = 0; i < V; ++i) sum += (v[i] = ToFloat(pack.v[i]) + b);
    const float mean = sum / V;
    float m2 = 0.f;
#pragma unroll
    for (int i = 0; i < V; ++i) m2 += (v[i] - mean) * (v[i] - mean);
    m = Combine(m, Moments{static_cast<float>(V), mean, m2});
  }
  __shared__ Moments warps[kThreads / 32];
  m = WarpCombine(m);
  if ((threadIdx.x & 31) == 0) warps[threadIdx.x >> 5] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    Moments total = warps[0];
    for (int w = 1; w < kThreads / 32; ++w) total = Combine(total, warps[w]);
    float* out = partials + 3 * (ng * s.splits + blockIdx.x);
    out[0] = total.n;
    out[1] = total.mean;
    out[2] = total.m2;
  }
}

// Pass 2: every block combines its group's partials (same order everywhere, so every block
// sees the same statistics), then normalises, applies the affine map and SiLU.
template <typename T>
__global__ void __launch_bounds__(kThreads) GroupApplyKernel(const T* __restrict__ x,
                                                             const T* __restrict__ bias,
                                                             const T* __restrict__ gamma,
                                                             const T* __restrict__ beta,
                                                             const float* __restrict__ partials,
                                                             T* __restrict__ y, GroupShape s,
                                                             float eps, bool silu) {
  constexpr int V = Pack<T>::kSize;
  const int64_t ng = blockIdx.y, image = ng / s.groups, group = ng % s.groups;
  const int64_t cg = s.ChannelsPerGroup(), first_channel = group * cg;
  Moments total{0.f, 0.f, 0.f};
  for (int64_t i = 0; i < s.splits; ++i) {
    const float* p = partials + 3 * (ng * s.splits + i);
    total = Combine(total, Moments{p[0], p[1], p[2]});
  }
  const float mean = total.mean, rstd = rsqrtf(total.m2 / total.n + eps);

  const int64_t packs = s.Elements() / V, per_split = (packs + s.splits - 1) / s.splits;
  const int64_t begin = blockIdx.x * per_split, end = min(packs, begin + per_split);
  const int64_t offset = (image * s.c + first_channel) * s.hw;
  const Pack<T>* in = reinterpret_cast<const Pack<T>*>(x + offset);
  Pack<T>* out = reinterpret_cast<Pack<T>*>(y + offset);
  for (int64_t p = begin + threadIdx.x; p < end; p += kThreads) {
    const int64_t channel = first_channel + p * V / s.hw;
    const float b = bias ? ToFloat(bias[image * s.c + channel]) : 0.f;
    const float scale = rstd * ToFloat(gamma[channel]);
    const float shift = ToFloat(beta[channel]) + (b - mean) * scale;
    const Pack<T> pack = in[p];
    Pack<T> result;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      float v = ToFloat(pack.v[i]) * scale + shift;
      if (silu) v = v / (1.f + __expf(-v));
      result.v[i] = FromFloat<T>(v);
    }
    out[p] = result;
  }
}

// value * gelu(gate), with the exact (erf) GELU.
__device__ __forceinline__ float GegluValue(float value, float gate) {
  return value * 0.5f * gate * (1.f + erff(gate * 0.70710678118654752f));
}

template <typename T>
__global__ void __launch_bounds__(kThreads) GegluKernel(const T* __restrict__ in, T* __restrict__ out,
                                                        int64_t rows, int64_t features) {
  constexpr int V = Pack<T>::kSize;
  const int64_t row_packs = features / V, total = rows * row_packs;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t row = i / row_packs, col = (i % row_packs) * V;
    const Pack<T> a = *reinterpret_cast<const Pack<T>*>(in + row * 2 * features + col);
    const Pack<T> g = *reinterpret_cast<const Pack<T>*>(in + row * 2 * features + features + col);
    Pack<T> r;
#pragma unroll
    for (int k = 0; k < V; ++k) r.v[k] = FromFloat<T>(GegluValue(ToFloat(a.v[k]), ToFloat(g.v[k])));
    *reinterpret_cast<Pack<T>*>(out + row * features + col) = r;
  }
}

// Channels-last (NHWC) GroupNorm: an image is hw pixels of c channels. A block's threads
// split as pixels_per_pass rows of packs_per_pixel packs, so each thread keeps the same V
// channels (a pack may straddle two groups) and keeps per-channel moments.
struct NhwcShape {
  int64_t c, hw, groups, splits;
  int packs_per_pixel, pixels_per_pass;
  __device__ int64_t PixelsPerSplit() const { return (hw + splits - 1) / splits; }
};

template <typename T>
__global__ void NhwcMomentsKernel(const T* __restrict__ x, const T* __restrict__ bias,
                                  float* __restrict__ partials, NhwcShape s) {
  constexpr int V = Pack<T>::kSize;
  extern __shared__ Moments per_thread[];  // [blockDim.x][V]
  const int64_t image = blockIdx.y;
  const int j = threadIdx.x % s.packs_per_pixel, r = threadIdx.x / s.packs_per_pixel;
  const int64_t begin = blockIdx.x * s.PixelsPerSplit(), end = min(s.hw, begin + s.PixelsPerSplit());
  const Pack<T>* in = reinterpret_cast<const Pack<T>*>(x + image * s.hw * s.c);
  float b[V];
#pragma unroll
  for (int i = 0; i < V; ++i) b[i] = bias ? ToFloat(bias[image * s.c + j * V + i]) : 0.f;
  // Sums of deviations from the thread's first value per channel: no division in the loop,
  // and no cancellation from a large mean over the few hundred values one thread sees.
  float shift[V], s1[V], s2[V];
  int count = 0;
#pragma unroll
  for (int i = 0; i < V; ++i) shift[i] = s1[i] = s2[i] = 0.f;
  if (begin + r < end) {
    const Pack<T> first = in[(begin + r) * s.packs_per_pixel + j];
#pragma unroll
    for (int i = 0; i < V; ++i) shift[i] = ToFloat(first.v[i]) + b[i];
  }
  for (int64_t pixel = begin + r; pixel < end; pixel += s.pixels_per_pass) {
    const Pack<T> pack = in[pixel * s.packs_per_pixel + j];
    ++count;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const float d = ToFloat(pack.v[i]) + b[i] - shift[i];
      s1[i] += d;
      s2[i] += d * d;
    }
  }
  Moments m[V];
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const float n = static_cast<float>(count);
    m[i] = count ? Moments{n, shift[i] + s1[i] / n, fmaxf(0.f, s2[i] - s1[i] * s1[i] / n)} : Moments{0.f, 0.f, 0.f};
  }
#pragma unroll
  for (int i = 0; i < V; ++i) per_thread[threadIdx.x * V + i] = m[i];
  __syncthreads();
  const int64_t cg = s.c / s.groups;
  for (int64_t g = threadIdx.x; g < s.groups; g += blockDim.x) {
    Moments total{0.f, 0.f, 0.f};
    for (int64_t ch = g * cg; ch < (g + 1) * cg; ++ch) {
      for (int row = 0; row < s.pixels_per_pass; ++row) {
        total = Combine(total, per_thread[(row * s.packs_per_pixel + ch / V) * V + ch % V]);
      }
    }
    float* out = partials + 3 * ((image * s.groups + g) * s.splits + blockIdx.x);
    out[0] = total.n;
    out[1] = total.mean;
    out[2] = total.m2;
  }
}

// Pass 2: the block turns its image's group statistics, gamma, beta and shift into a
// per-channel scale and offset in shared memory, then streams its pixels with the moments
// kernel's thread layout: each thread keeps its V channels' scale and offset in registers
// (the form before, with a 64-bit division per pack, took twice the NCHW kernel's time at
// 1024x1024x128 on an H100).
template <typename T>
__global__ void __launch_bounds__(kMaxNhwcThreads) NhwcApplyKernel(const T* __restrict__ x, const T* __restrict__ bias,
                                                                   const T* __restrict__ gamma, const T* __restrict__ beta,
                                                                   const float* __restrict__ partials, T* __restrict__ y,
                                                                   NhwcShape s, float eps, bool silu) {
  constexpr int V = Pack<T>::kSize;
  extern __shared__ float affine[];  // scale[c], offset[c], then mean[groups], rstd[groups]
  float* group_mean = affine + 2 * s.c;
  float* group_rstd = group_mean + s.groups;
  const int64_t image = blockIdx.y, cg = s.c / s.groups;
  for (int64_t g = threadIdx.x; g < s.groups; g += blockDim.x) {
    Moments total{0.f, 0.f, 0.f};
    for (int64_t i = 0; i < s.splits; ++i) {
      const float* p = partials + 3 * ((image * s.groups + g) * s.splits + i);
      total = Combine(total, Moments{p[0], p[1], p[2]});
    }
    group_mean[g] = total.mean;
    group_rstd[g] = rsqrtf(total.m2 / total.n + eps);
  }
  __syncthreads();
  for (int64_t ch = threadIdx.x; ch < s.c; ch += blockDim.x) {
    const int64_t g = ch / cg;
    const float scale = group_rstd[g] * ToFloat(gamma[ch]);
    const float b = bias ? ToFloat(bias[image * s.c + ch]) : 0.f;
    affine[ch] = scale;
    affine[s.c + ch] = ToFloat(beta[ch]) + (b - group_mean[g]) * scale;
  }
  __syncthreads();
  const int j = threadIdx.x % s.packs_per_pixel, r = threadIdx.x / s.packs_per_pixel;
  float scale[V], offset[V];
#pragma unroll
  for (int i = 0; i < V; ++i) scale[i] = affine[j * V + i], offset[i] = affine[s.c + j * V + i];
  const int64_t begin = blockIdx.x * s.PixelsPerSplit(), end = min(s.hw, begin + s.PixelsPerSplit());
  const Pack<T>* in = reinterpret_cast<const Pack<T>*>(x + image * s.hw * s.c) + j;
  Pack<T>* out = reinterpret_cast<Pack<T>*>(y + image * s.hw * s.c) + j;
  for (int64_t pixel = begin + r; pixel < end; pixel += s.pixels_per_pass) {
    const Pack<T> pack = in[pixel * s.packs_per_pixel];
    Pack<T> result;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      float v = ToFloat(pack.v[i]) * scale[i] + offset[i];
      if (silu) v = v / (1.f + __expf(-v));
      result.v[i] = FromFloat<T>(v);
    }
    out[pixel * s.packs_per_pixel] = result;
  }
}

// One warp per row of c elements: the row stays in registers (kPacks packs per lane), so
// the sum is read once and the variance is an exact second pass over registers.
constexpr int kRowsPerBlock = 4;

__device__ __forceinline__ float WarpSum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Row-wise fp8: a row's scale maps its largest magnitude onto e4m3's largest finite value.
constexpr float kFp8Max = 448.f;
__device__ __forceinline__ float Fp8RowScale(float amax) { return fmaxf(amax, 1e-12f) / kFp8Max; }

// V values / scale as V e4m3 bytes (round to nearest even, saturating), one store. A true
// division, so the bytes equal LibTorch's conversion of x / scale.
template <int V>
__device__ __forceinline__ void StoreFp8(uint8_t* dst, const float* v, float scale) {
  static_assert(V == 8 || V == 4, "one 8- or 4-byte store");
  uint32_t words[V / 4];
#pragma unroll
  for (int w = 0; w < V / 4; ++w) {
    const uint32_t lo = __nv_cvt_float2_to_fp8x2(make_float2(v[4 * w] / scale, v[4 * w + 1] / scale),
                                                 __NV_SATFINITE, __NV_E4M3);
    const uint32_t hi = __nv_cvt_float2_to_fp8x2(make_float2(v[4 * w + 2] / scale, v[4 * w + 3] / scale),
                                                 __NV_SATFINITE, __NV_E4M3);
    words[w] = lo | (hi << 16);
  }
  if constexpr (V == 8) *reinterpret_cast<uint2*>(dst) = make_uint2(words[0], words[1]);
  else *reinterpret_cast<uint32_t*>(dst) = words[0];
}

template <typename T, int kPacks>
__global__ void __launch_bounds__(32 * kRowsPerBlock) AddLayerNormKernel(
    const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ gamma,
    const T* __restrict__ beta, T* __restrict__ sum_out, T* __restrict__ out, uint8_t* __restrict__ q_out,
    float* __restrict__ q_scales, int64_t rows, int64_t c, float eps) {
  constexpr int V = Pack<T>::kSize;
  const int64_t row = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  const int64_t packs = c / V;
  const Pack<T>* xr = reinterpret_cast<const Pack<T>*>(x + row * c);
  const Pack<T>* yr = y ? reinterpret_cast<const Pack<T>*>(y + row * c) : nullptr;
  Pack<T>* sr = sum_out ? reinterpret_cast<Pack<T>*>(sum_out + row * c) : nullptr;
  float v[kPacks][V];
  float sum = 0.f;
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    const int64_t p = lane + 32 * k;
    if (p >= packs) break;
    const Pack<T> a = xr[p];
    Pack<T> b;
    if (yr) b = yr[p];
#pragma unroll
    for (int i = 0; i < V; ++i) {
      // Round the sum to T first: it is the residual stream the next layers read.
      const T s = yr ? FromFloat<T>(ToFloat(a.v[i]) + ToFloat(b.v[i])) : a.v[i];
      if (yr) b.v[i] = s;
      sum += (v[k][i] = ToFloat(s));
    }
    if (sr) sr[p] = b;
  }
  const float mean = WarpSum(sum) / c;
  float m2 = 0.f;
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    if (lane + 32 * k >= packs) break;
#pragma unroll
    for (int i = 0; i < V; ++i) m2 += (v[k][i] - mean) * (v[k][i] - mean);
  }
  const float rstd = rsqrtf(WarpSum(m2) / c + eps);
  const Pack<T>* g = reinterpret_cast<const Pack<T>*>(gamma);
  const Pack<T>* bt = reinterpret_cast<const Pack<T>*>(beta);
  float amax = 0.f;
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    const int64_t p = lane + 32 * k;
    if (p >= packs) break;
    const Pack<T> gp = g[p], bp = bt[p];
#pragma unroll
    for (int i = 0; i < V; ++i) {
      v[k][i] = (v[k][i] - mean) * rstd * ToFloat(gp.v[i]) + ToFloat(bp.v[i]);
      if (q_out) amax = fmaxf(amax, fabsf(ToFloat(FromFloat<T>(v[k][i]))));
    }
  }
  if (q_out) {
    // fp8 rows for the Linears that read this norm: the output in T is never stored.
    const float scale = Fp8RowScale(WarpMax(amax));
    if (lane == 0) q_scales[row] = scale;
#pragma unroll
    for (int k = 0; k < kPacks; ++k) {
      const int64_t p = lane + 32 * k;
      if (p >= packs) break;
      float r[V];
#pragma unroll
      for (int i = 0; i < V; ++i) r[i] = ToFloat(FromFloat<T>(v[k][i]));
      StoreFp8<V>(q_out + row * c + p * V, r, scale);
    }
    return;
  }
  Pack<T>* o = reinterpret_cast<Pack<T>*>(out + row * c);
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    const int64_t p = lane + 32 * k;
    if (p >= packs) break;
    Pack<T> r;
#pragma unroll
    for (int i = 0; i < V; ++i) r.v[i] = FromFloat<T>(v[k][i]);
    o[p] = r;
  }
}

// One warp per row: the row's largest magnitude, then the row again as e4m3 bytes.
template <typename T>
__global__ void __launch_bounds__(32 * kRowsPerBlock) QuantizeRowsKernel(const T* __restrict__ x,
                                                                         uint8_t* __restrict__ q,
                                                                         float* __restrict__ scales,
                                                                         int64_t rows, int64_t k) {
  constexpr int V = Pack<T>::kSize;
  const int64_t row = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  const int64_t packs = k / V;
  const Pack<T>* xr = reinterpret_cast<const Pack<T>*>(x + row * k);
  float amax = 0.f;
  for (int64_t p = lane; p < packs; p += 32) {
    const Pack<T> a = xr[p];
#pragma unroll
    for (int i = 0; i < V; ++i) amax = fmaxf(amax, fabsf(ToFloat(a.v[i])));
  }
  const float scale = Fp8RowScale(WarpMax(amax));
  if (lane == 0) scales[row] = scale;
  for (int64_t p = lane; p < packs; p += 32) {  // the second read of the row hits the cache
    const Pack<T> a = xr[p];
    float r[V];
#pragma unroll
    for (int i = 0; i < V; ++i) r[i] = ToFloat(a.v[i]);
    StoreFp8<V>(q + row * k + p * V, r, scale);
  }
}

// GEGLU whose rows go out as e4m3 bytes: one block per row keeps the products in registers
// (kPacks packs per thread) while the block finds the row's largest magnitude.
constexpr int kRowThreads = 256;

template <typename T, int kPacks>
__global__ void __launch_bounds__(kRowThreads) GegluFp8Kernel(const T* __restrict__ in, uint8_t* __restrict__ q,
                                                              float* __restrict__ scales, int64_t features) {
  constexpr int V = Pack<T>::kSize;
  const int64_t row = blockIdx.x, packs = features / V;
  const Pack<T>* values = reinterpret_cast<const Pack<T>*>(in + row * 2 * features);
  const Pack<T>* gates = values + packs;
  float r[kPacks][V];
  float amax = 0.f;
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    const int64_t p = threadIdx.x + kRowThreads * k;
    if (p >= packs) break;
    const Pack<T> a = values[p], g = gates[p];
#pragma unroll
    for (int i = 0; i < V; ++i) {
      r[k][i] = ToFloat(FromFloat<T>(GegluValue(ToFloat(a.v[i]), ToFloat(g.v[i]))));
      amax = fmaxf(amax, fabsf(r[k][i]));
    }
  }
  __shared__ float warp_max[kRowThreads / 32];
  amax = WarpMax(amax);
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = amax;
  __syncthreads();
#pragma unroll
  for (int w = 0; w < kRowThreads / 32; ++w) amax = fmaxf(amax, warp_max[w]);
  const float scale = Fp8RowScale(amax);
  if (threadIdx.x == 0) scales[row] = scale;
#pragma unroll
  for (int k = 0; k < kPacks; ++k) {
    const int64_t p = threadIdx.x + kRowThreads * k;
    if (p >= packs) break;
    StoreFp8<V>(q + row * features + p * V, r[k], scale);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) AddChannelBiasKernel(const T* __restrict__ a, const T* __restrict__ b,
                                                                 const T* __restrict__ bias, T* __restrict__ out,
                                                                 int64_t total_packs, int64_t c, int64_t hw,
                                                                 bool channels_last) {
  constexpr int V = Pack<T>::kSize;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; p < total_packs;
       p += static_cast<int64_t>(gridDim.x) * kThreads) {
    // NCHW: one channel per pack (hw % V == 0); NHWC: V consecutive channels (c % V == 0).
    const int64_t first = channels_last ? (p * V) % c : (p * V / hw) % c;
    const Pack<T> pa = reinterpret_cast<const Pack<T>*>(a)[p];
    const Pack<T> pb = reinterpret_cast<const Pack<T>*>(b)[p];
    Pack<T> r;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const float cb = ToFloat(bias[channels_last ? first + i : first]);
      r.v[i] = FromFloat<T>(ToFloat(pa.v[i]) + ToFloat(pb.v[i]) + cb);
    }
    reinterpret_cast<Pack<T>*>(out)[p] = r;
  }
}

int64_t Splits(int64_t n, int64_t groups, int num_sms, int64_t group_elements) {
  // Enough blocks for a few waves over the chip, but at least a few thousand elements each.
  const int64_t want = (4LL * num_sms + n * groups - 1) / (n * groups);
  const int64_t most = std::max<int64_t>(1, group_elements / 4096);
  return std::clamp<int64_t>(want, 1, std::min<int64_t>(most, 256));
}

template <typename T>
cudaError_t LaunchGroupNorm(const void* x, const void* bias, const void* gamma, const void* beta,
                            void* y, float* partials, int64_t n, GroupShape s, float eps,
                            bool silu, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(s.splits), static_cast<unsigned>(n * s.groups));
  GroupMomentsKernel<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(x),
                                                       static_cast<const T*>(bias), partials, s);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  GroupApplyKernel<T><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<const T*>(gamma),
      static_cast<const T*>(beta), partials, static_cast<T*>(y), s, eps, silu);
  return cudaGetLastError();
}

template <typename T>
cudaError_t LaunchNhwcGroupNorm(const void* x, const void* bias, const void* gamma, const void* beta, void* y,
                                float* partials, int64_t n, NhwcShape s, float eps, bool silu,
                                cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(s.splits), static_cast<unsigned>(n));
  const int threads = s.packs_per_pixel * s.pixels_per_pass;
  const size_t shared = sizeof(Moments) * threads * Pack<T>::kSize;
  NhwcMomentsKernel<T><<<grid, threads, shared, stream>>>(static_cast<const T*>(x), static_cast<const T*>(bias),
                                                          partials, s);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  NhwcApplyKernel<T><<<grid, threads, sizeof(float) * 2 * (s.c + s.groups), stream>>>(
      static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<const T*>(gamma),
      static_cast<const T*>(beta), partials, static_cast<T*>(y), s, eps, silu);
  return cudaGetLastError();
}

// Grid of a grid-stride kernel over `packs` packs: one pack per thread up to 16 blocks per SM.
unsigned StridedBlocks(int64_t packs, int num_sms) {
  return static_cast<unsigned>(std::clamp<int64_t>((packs + kThreads - 1) / kThreads, 1, 16LL * num_sms));
}

template <typename T>
cudaError_t LaunchGeglu(const void* in, void* out, int64_t rows, int64_t features, int num_sms,
                        cudaStream_t stream) {
  const int64_t packs = rows * features / Pack<T>::kSize;
  GegluKernel<T><<<StridedBlocks(packs, num_sms), kThreads, 0, stream>>>(
      static_cast<const T*>(in), static_cast<T*>(out), rows, features);
  return cudaGetLastError();
}

unsigned RowBlocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

template <typename T>
cudaError_t LaunchAddLayerNorm(const void* x, const void* y, const void* gamma, const void* beta,
                               void* sum_out, void* out, Fp8Out fp8, int64_t rows, int64_t c, float eps,
                               cudaStream_t stream) {
  if (fp8.data && sizeof(T) != 2) return cudaErrorInvalidValue;
  const int64_t lanes_packs = (c / Pack<T>::kSize + 31) / 32;
  const auto args = [&](auto kernel) {
    kernel<<<RowBlocks(rows), 32 * kRowsPerBlock, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(y), static_cast<const T*>(gamma),
        static_cast<const T*>(beta), static_cast<T*>(sum_out), static_cast<T*>(out), fp8.data, fp8.scales, rows,
        c, eps);
    return cudaGetLastError();
  };
  if (lanes_packs <= 2) return args(AddLayerNormKernel<T, 2>);
  if (lanes_packs <= 4) return args(AddLayerNormKernel<T, 4>);
  if (lanes_packs <= 8) return args(AddLayerNormKernel<T, 8>);
  return cudaErrorInvalidValue;
}

template <typename T>
cudaError_t LaunchAddChannelBias(const void* a, const void* b, const void* bias, void* out, int64_t n,
                                 int64_t c, int64_t hw, bool channels_last, int num_sms, cudaStream_t stream) {
  const int64_t packs = n * c * hw / Pack<T>::kSize;
  AddChannelBiasKernel<T><<<StridedBlocks(packs, num_sms), kThreads, 0, stream>>>(
      static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(bias), static_cast<T*>(out),
      packs, c, hw, channels_last);
  return cudaGetLastError();
}

// Calls launch(T{}) with T the CUDA type of `type`.
template <typename Launch>
cudaError_t Dispatch(ElementType type, Launch&& launch) {
  switch (type) {
    case ElementType::kFloat32: return launch(float{});
    case ElementType::kFloat16: return launch(__half{});
    case ElementType::kBFloat16: return launch(__nv_bfloat16{});
  }
  return cudaErrorInvalidValue;
}

}  // namespace

int64_t GroupNormPartialFloats(int64_t n, int64_t groups, int num_sms, int64_t group_elements) {
  return 3 * n * groups * Splits(n, groups, num_sms, group_elements);
}

cudaError_t GroupNormSilu(const void* x, const void* channel_bias, const void* gamma,
                          const void* beta, void* y, float* partials, int64_t n, int64_t c,
                          int64_t hw, int64_t groups, float eps, bool silu, ElementType type,
                          int num_sms, cudaStream_t stream) {
  const GroupShape s{c, hw, groups, Splits(n, groups, num_sms, c / groups * hw)};
  return Dispatch(type, [&](auto t) {
    return LaunchGroupNorm<decltype(t)>(x, channel_bias, gamma, beta, y, partials, n, s, eps, silu, stream);
  });
}

int64_t NhwcGroupNormSplits(int64_t n, int64_t hw, int num_sms) {
  // A few waves of blocks over the chip, each block at least 64 pixels.
  const int64_t want = (4LL * num_sms + n - 1) / n;
  return std::clamp<int64_t>(want, 1, std::max<int64_t>(1, hw / 64));
}

cudaError_t NhwcGroupNormSilu(const void* x, const void* channel_bias, const void* gamma, const void* beta,
                              void* y, float* partials, int64_t n, int64_t c, int64_t hw, int64_t groups,
                              float eps, bool silu, ElementType type, int num_sms, cudaStream_t stream) {
  // Shared memory: moments of every thread's pack, and the per-channel affine map.
  if (c % groups != 0 || c > 4096 || groups > c) return cudaErrorInvalidValue;
  const int64_t splits = NhwcGroupNormSplits(n, hw, num_sms);
  return Dispatch(type, [&](auto t) {
    using T = decltype(t);
    const int packs = static_cast<int>(c / Pack<T>::kSize);
    if (packs > kMaxNhwcThreads) return cudaErrorInvalidValue;  // one block row per pixel
    const NhwcShape shape{c, hw, groups, splits, packs, std::max(1, kThreads / packs)};
    return LaunchNhwcGroupNorm<T>(x, channel_bias, gamma, beta, y, partials, n, shape, eps, silu, stream);
  });
}

cudaError_t Geglu(const void* in, void* out, int64_t rows, int64_t features, ElementType type,
                  int num_sms, cudaStream_t stream) {
  return Dispatch(type, [&](auto t) { return LaunchGeglu<decltype(t)>(in, out, rows, features, num_sms, stream); });
}

cudaError_t AddLayerNorm(const void* x, const void* y, const void* gamma, const void* beta, void* sum_out,
                         void* out, Fp8Out fp8, int64_t rows, int64_t c, float eps, ElementType type,
                         cudaStream_t stream) {
  return Dispatch(type, [&](auto t) {
    return LaunchAddLayerNorm<decltype(t)>(x, y, gamma, beta, sum_out, out, fp8, rows, c, eps, stream);
  });
}

cudaError_t AddChannelBias(const void* a, const void* b, const void* bias, void* out, int64_t n, int64_t c,
                           int64_t hw, bool channels_last, ElementType type, int num_sms, cudaStream_t stream) {
  return Dispatch(type, [&](auto t) {
    return LaunchAddChannelBias<decltype(t)>(a, b, bias, out, n, c, hw, channels_last, num_sms, stream);
  });
}

cudaError_t QuantizeRowsFp8(const void* x, Fp8Out out, int64_t rows, int64_t k, ElementType type,
                            cudaStream_t stream) {
  return Dispatch(type, [&](auto t) {
    using T = decltype(t);
    if (sizeof(T) != 2) return cudaErrorInvalidValue;  // one 8-byte store per pack of 8
    QuantizeRowsKernel<T><<<RowBlocks(rows), 32 * kRowsPerBlock, 0, stream>>>(static_cast<const T*>(x), out.data,
                                                                              out.scales, rows, k);
    return cudaGetLastError();
  });
}

cudaError_t GegluFp8(const void* in, Fp8Out out, int64_t rows, int64_t features, ElementType type,
                     cudaStream_t stream) {
  return Dispatch(type, [&](auto t) -> cudaError_t {
    using T = decltype(t);
    if (sizeof(T) != 2) return cudaErrorInvalidValue;
    const int64_t thread_packs = (features / Pack<T>::kSize + kRowThreads - 1) / kRowThreads;
    const auto launch = [&](auto kernel) {
      kernel<<<static_cast<unsigned>(rows), kRowThreads, 0, stream>>>(static_cast<const T*>(in), out.data,
                                                                       out.scales, features);
      return cudaGetLastError();
    };
    // Exact counts for SDXL's 2560 and 5120 features (2 and 3 packs): spare packs cost registers.
    if (thread_packs <= 1) return launch(GegluFp8Kernel<T, 1>);
    if (thread_packs <= 2) return launch(GegluFp8Kernel<T, 2>);
    if (thread_packs <= 3) return launch(GegluFp8Kernel<T, 3>);
    if (thread_packs <= 4) return launch(GegluFp8Kernel<T, 4>);
    return cudaErrorInvalidValue;
  });
}

}  // namespace spriteforge::engine::cuda
