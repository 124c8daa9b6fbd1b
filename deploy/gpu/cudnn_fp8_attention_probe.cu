// Measures cuDNN's fp8 (e4m3) flash attention at SDXL's self-attention shapes, through cuDNN's
// graph API (LibTorch's scaled_dot_product_attention has no fp8 kernel). The graph is the
// composite form cuDNN's fused attention engine matches for fp8 inference on Hopper:
//   S = Q K^T * attn_scale * dq * dk; P = softmax(S) (max, sub, exp, sum, div; log-sum-exp as a
//   virtual stats tensor); amax_s = max|P|; O' = fp8(P * scale_s) V * ds * dv; amax_o = max|O'|;
//   O = fp8(O' * scale_o).
// Q, K, V and O are [batch, tokens, heads, 64] (the engine's token rows); K^T is K's tensor
// with its last two strides swapped. First a small case against a float64 reference on the
// host, then the fastest plan per shape (fp16 SDPA at the same shapes: run-checks fp8-routes).
// Usage: cudnn_fp8_attention_probe [json_out]
#include <cmath>
#include <string>
#include <vector>

#include "cudnn_graph.cuh"

namespace {

using namespace probe;
using Dims = std::vector<int64_t>;

struct Shape {
  const char* name;
  int64_t b, h, s, d;
};

// Variant-pack ids of the graph's inputs and outputs.
enum : int64_t { kQ = 1, kK, kV, kO, kDescaleQ, kDescaleK, kDescaleV, kDescaleS, kScaleS, kScaleO, kAmaxS, kAmaxO, kAttnScale };
constexpr int kScalars = 8;  // kDescaleQ .. kAmaxO, in that order

// The graph for one shape, its operations in the order the fused engine expects them.
bool BuildAttentionGraph(cudnnHandle_t handle, const Shape& s, Graph& g) {
  GraphBuilder b(handle);
  const cudnnDataType_t e4m3 = CUDNN_DATA_FP8_E4M3, f32 = CUDNN_DATA_FLOAT;
  const Dims rows = {s.b, s.h, s.s, s.d}, rows_strides = {s.s * s.h * s.d, s.d, s.h * s.d, 1};
  const Dims kt = {s.b, s.h, s.d, s.s}, kt_strides = {s.s * s.h * s.d, s.d, 1, s.h * s.d};
  const Dims scores = {s.b, s.h, s.s, s.s}, scores_strides = {s.h * s.s * s.s, s.s * s.s, s.s, 1};
  const Dims row = {s.b, s.h, s.s, 1}, row_strides = {s.h * s.s, s.s, 1, 1};
  const Dims out_strides = {s.h * s.s * s.d, s.s * s.d, s.d, 1}, one = {1, 1, 1, 1};
  const auto q = b.Tensor(kQ, e4m3, rows, rows_strides), k = b.Tensor(kK, e4m3, kt, kt_strides);
  const auto v = b.Tensor(kV, e4m3, rows, rows_strides), o = b.Tensor(kO, e4m3, rows, rows_strides);
  cudnnBackendDescriptor_t scalar[kScalars];
  for (int i = 0; i < kScalars; ++i) scalar[i] = b.Tensor(kDescaleQ + i, f32, one, one);
  auto by_value = std::make_unique<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t uid = kAttnScale, alignment = 16;
  const bool yes = true;
  by_value->Set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f32)
      .Set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, one.data())
      .Set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, one.data())
      .Set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)
      .Set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment)
      .Set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
  if (!by_value->Finalize("attn_scale")) return false;
  const auto attn_scale = b.Keep(std::move(by_value));
  auto score = [&] { return b.Virtual(f32, scores, scores_strides); };
  auto per_row = [&] { return b.Virtual(f32, row, row_strides); };
  auto out = [&] { return b.Virtual(f32, rows, out_strides); };
  const auto s0 = score(), s1 = score(), s2 = score(), s3 = score();
  b.Matmul(q, k, s0);
  b.Pointwise(CUDNN_POINTWISE_MUL, s0, attn_scale, s1);
  b.Pointwise(CUDNN_POINTWISE_MUL, s1, scalar[0], s2);  // descale_q
  b.Pointwise(CUDNN_POINTWISE_MUL, s2, scalar[1], s3);  // descale_k
  const auto max = per_row(), centred = score(), exps = score(), sum = per_row();
  b.Reduce(CUDNN_REDUCE_TENSOR_MAX, s3, max);
  b.Pointwise(CUDNN_POINTWISE_SUB, s3, max, centred);
  b.Pointwise(CUDNN_POINTWISE_EXP, centred, nullptr, exps);
  b.Reduce(CUDNN_REDUCE_TENSOR_ADD, exps, sum);
  const auto log_sum = per_row(), stats = per_row(), p = score();
  b.Pointwise(CUDNN_POINTWISE_LOG, sum, nullptr, log_sum);
  b.Pointwise(CUDNN_POINTWISE_ADD, max, log_sum, stats);
  b.Pointwise(CUDNN_POINTWISE_DIV, exps, sum, p);
  b.Reduce(CUDNN_REDUCE_TENSOR_AMAX, p, scalar[6]);  // amax_s
  const auto p8 = b.Virtual(e4m3, scores, scores_strides);
  b.Pointwise(CUDNN_POINTWISE_MUL, p, scalar[4], p8);  // scale_s
  const auto o0 = out(), o1 = out(), o2 = out();
  b.Matmul(p8, v, o0);
  b.Pointwise(CUDNN_POINTWISE_MUL, o0, scalar[3], o1);  // descale_s
  b.Pointwise(CUDNN_POINTWISE_MUL, o1, scalar[2], o2);  // descale_v
  b.Pointwise(CUDNN_POINTWISE_MUL, o2, scalar[5], o);   // scale_o
  b.Reduce(CUDNN_REDUCE_TENSOR_AMAX, o2, scalar[7]);    // amax_o
  return b.Finish(g, "fp8 attention graph");
}

// Device buffers of one shape: e4m3 Q, K, V, O and the eight scalars.
struct Buffers {
  explicit Buffers(const Shape& s) : n(s.b * s.s * s.h * s.d) {
    for (void** p : {&q, &k, &v, &o}) CHECK_CUDA(cudaMalloc(p, n));
    CHECK_CUDA(cudaMalloc(&scalars, kScalars * sizeof(float)));
  }
  ~Buffers() {
    for (void* p : {q, k, v, o, static_cast<void*>(scalars)}) cudaFree(p);
  }
  // Descales 1 (inputs already in range), P scaled to e4m3's range and back, O by `scale_o`.
  void SetScales(float scale_o) {
    const float host[kScalars] = {1.f, 1.f, 1.f, 1.f / 448.f, 448.f, scale_o, 0.f, 0.f};
    CHECK_CUDA(cudaMemcpy(scalars, host, sizeof host, cudaMemcpyHostToDevice));
  }
  std::vector<int64_t> Uids() const {
    std::vector<int64_t> uids = {kQ, kK, kV, kO};
    for (int i = 0; i < kScalars; ++i) uids.push_back(kDescaleQ + i);
    uids.push_back(kAttnScale);
    return uids;
  }
  std::vector<void*> Pointers(float* attn_scale) const {
    std::vector<void*> ptrs = {q, k, v, o};
    for (int i = 0; i < kScalars; ++i) ptrs.push_back(scalars + i);
    ptrs.push_back(attn_scale);  // by value: a host pointer
    return ptrs;
  }
  int64_t n;
  void *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  float* scalars = nullptr;
};

// The small case against float64 on the host: largest error of O relative to max|O|.
double CheckSmall(cudnnHandle_t handle) {
  const Shape s{"check", 1, 2, 256, 64};
  Graph graph;
  if (!BuildAttentionGraph(handle, s, graph)) return -1;
  auto plans = Plans(handle, graph);
  if (plans.empty()) return -1;
  Buffers buf(s);
  std::vector<__nv_fp8_e4m3> q(buf.n), k(buf.n), v(buf.n);
  uint32_t state = 7;
  auto next = [&] { state = state * 1664525u + 1013904223u; return ((state >> 8) / 16777216.f * 2.f - 1.f) * 2.f; };
  for (int64_t i = 0; i < buf.n; ++i) q[i] = __nv_fp8_e4m3(next()), k[i] = __nv_fp8_e4m3(next()), v[i] = __nv_fp8_e4m3(next());
  CHECK_CUDA(cudaMemcpy(buf.q, q.data(), buf.n, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(buf.k, k.data(), buf.n, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(buf.v, v.data(), buf.n, cudaMemcpyHostToDevice));
  const float scale_o = 100.f;  // |O| <= 2: use e4m3's range
  buf.SetScales(scale_o);
  float attn_scale = 1.f / std::sqrt(static_cast<float>(s.d));
  RunOnce(handle, plans[0], buf.Uids(), buf.Pointers(&attn_scale));
  std::vector<__nv_fp8_e4m3> o(buf.n);
  CHECK_CUDA(cudaMemcpy(o.data(), buf.o, buf.n, cudaMemcpyDeviceToHost));
  auto at = [&](int64_t tok, int64_t head, int64_t x) { return (tok * s.h + head) * s.d + x; };
  double worst = 0, largest = 0;
  std::vector<double> p(s.s);
  for (int64_t head = 0; head < s.h; ++head) {
    for (int64_t i = 0; i < s.s; ++i) {
      double m = -1e300, z = 0;
      for (int64_t j = 0; j < s.s; ++j) {
        double dot = 0;
        for (int64_t x = 0; x < s.d; ++x) dot += double(float(q[at(i, head, x)])) * double(float(k[at(j, head, x)]));
        p[j] = dot * attn_scale;
        m = std::max(m, p[j]);
      }
      for (int64_t j = 0; j < s.s; ++j) z += (p[j] = std::exp(p[j] - m));
      for (int64_t x = 0; x < s.d; ++x) {
        double want = 0;
        for (int64_t j = 0; j < s.s; ++j) want += p[j] / z * double(float(v[at(j, head, x)]));
        largest = std::max(largest, std::fabs(want));
        worst = std::max(worst, std::fabs(double(float(o[at(i, head, x)])) / scale_o - want));
      }
    }
  }
  return worst / std::max(largest, 1e-30);
}

}  // namespace

int main(int argc, char** argv) {
  std::string json;
  cudnnHandle_t handle = OpenCudnn(&json);
  const double check = CheckSmall(handle);
  std::printf("check 1x2x256x64 against float64: largest error %.4f of max|O| (-1: no plan)\n", check);
  // Self-attention of the UNet at batch 8 with CFG (16 rows): 64x64 latents (4096 tokens, 10
  // heads) and 32x32 (1024 tokens, 20 heads), head size 64.
  const std::vector<Shape> shapes = {{"4096 tokens x 10 heads", 16, 10, 4096, 64}, {"1024 tokens x 20 heads", 16, 20, 1024, 64}};
  json += ", \"check_error\": " + std::to_string(check) + ", \"shapes\": [";
  for (size_t i = 0; i < shapes.size(); ++i) {
    const Shape& s = shapes[i];
    Graph graph;
    float ms = -1;
    int plan_count = 0;
    if (BuildAttentionGraph(handle, s, graph)) {
      auto plans = Plans(handle, graph);
      plan_count = static_cast<int>(plans.size());
      Buffers buf(s);
      buf.SetScales(1.f);
      float attn_scale = 0.125f;
      const int best = Fastest(handle, plans, buf.Uids(), buf.Pointers(&attn_scale));
      if (best >= 0) ms = plans[best].ms;
    }
    const double flops = 4.0 * s.b * s.h * s.s * s.s * s.d;
    std::printf("%-24s fp8 %7.3f ms (%4.0f TFLOP/s, %d plans)\n", s.name, ms, ms > 0 ? flops / ms / 1e9 : 0.0, plan_count);
    json += std::string(i ? ", " : "") + "{\"shape\": \"" + s.name + "\", \"fp8_ms\": " + std::to_string(ms) +
            ", \"plans\": " + std::to_string(plan_count) + "}";
  }
  json += "]}\n";
  WriteReport(argc > 1 ? argv[1] : nullptr, json);
  cudnnDestroy(handle);
  return 0;
}
