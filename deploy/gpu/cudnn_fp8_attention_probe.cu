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
#include <cstring>
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

class AttentionGraph {
 public:
  AttentionGraph(cudnnHandle_t handle, const Shape& s) : handle_(handle) { ok_ = Build(s); }
  bool ok() const { return ok_; }
  Graph& graph() { return g_; }

 private:
  cudnnBackendDescriptor_t Keep(std::unique_ptr<Desc> d) {
    if (!d) {
      ok_ = false;
      return nullptr;
    }
    cudnnBackendDescriptor_t raw = d->d;
    g_.keep.push_back(std::move(d));
    return raw;
  }
  cudnnBackendDescriptor_t T(int64_t uid, cudnnDataType_t type, const Dims& dims, const Dims& strides, bool virt = false) {
    return Keep(Tensor(uid, type, dims, strides, virt));
  }
  cudnnBackendDescriptor_t Virtual(cudnnDataType_t type, const Dims& dims, const Dims& strides) {
    return T(next_virtual_++, type, dims, strides, true);
  }
  void Op(std::unique_ptr<Desc> op, const char* what) {
    if (!op->Finalize(what)) ok_ = false;
    ops_.push_back(Keep(std::move(op)));
  }
  void Pointwise(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                 cudnnBackendDescriptor_t y) {
    auto pw = std::make_unique<Desc>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    pw->Set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode)
        .Set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &kFloat);
    if (!pw->Finalize("pointwise")) ok_ = false;
    cudnnBackendDescriptor_t pwd = Keep(std::move(pw));
    auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    op->Set(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pwd)
        .Set(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x);
    if (b) op->Set(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b);
    op->Set(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    Op(std::move(op), "pointwise op");
  }
  void Reduce(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    auto r = std::make_unique<Desc>(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    r->Set(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &kFloat)
        .Set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode);
    if (!r->Finalize("reduction")) ok_ = false;
    cudnnBackendDescriptor_t rd = Keep(std::move(r));
    auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    op->Set(CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd)
        .Set(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)
        .Set(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    Op(std::move(op), "reduction op");
  }
  void Matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
    auto m = std::make_unique<Desc>(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    m->Set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &kFloat);
    if (!m->Finalize("matmul")) ok_ = false;
    cudnnBackendDescriptor_t md = Keep(std::move(m));
    auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    op->Set(CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a)
        .Set(CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b)
        .Set(CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c)
        .Set(CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &md);
    Op(std::move(op), "matmul op");
  }

  bool Build(const Shape& s) {
    const cudnnDataType_t e4m3 = CUDNN_DATA_FP8_E4M3;
    const Dims rows = {s.b, s.h, s.s, s.d}, rows_strides = {s.s * s.h * s.d, s.d, s.h * s.d, 1};
    const Dims kt = {s.b, s.h, s.d, s.s}, kt_strides = {s.s * s.h * s.d, s.d, 1, s.h * s.d};
    const Dims scores = {s.b, s.h, s.s, s.s}, scores_strides = {s.h * s.s * s.s, s.s * s.s, s.s, 1};
    const Dims row = {s.b, s.h, s.s, 1}, row_strides = {s.h * s.s, s.s, 1, 1};
    const Dims out_strides = {s.h * s.s * s.d, s.s * s.d, s.d, 1}, one = {1, 1, 1, 1};
    const auto q = T(kQ, e4m3, rows, rows_strides), k = T(kK, e4m3, kt, kt_strides);
    const auto v = T(kV, e4m3, rows, rows_strides), o = T(kO, e4m3, rows, rows_strides);
    cudnnBackendDescriptor_t scalar[kScalars];
    for (int i = 0; i < kScalars; ++i) scalar[i] = T(kDescaleQ + i, kFloat, one, one);
    auto by_value = std::make_unique<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    const int64_t uid = kAttnScale, alignment = 16;
    const bool yes = true;
    by_value->Set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &kFloat)
        .Set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, one.data())
        .Set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, one.data())
        .Set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)
        .Set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment)
        .Set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &yes);
    if (!by_value->Finalize("attn_scale")) return false;
    const auto attn_scale = Keep(std::move(by_value));
    if (!ok_) return false;
    auto score = [&] { return Virtual(kFloat, scores, scores_strides); };
    auto per_row = [&] { return Virtual(kFloat, row, row_strides); };
    auto out = [&] { return Virtual(kFloat, rows, out_strides); };
    const auto s0 = score(), s1 = score(), s2 = score(), s3 = score();
    Matmul(q, k, s0);
    Pointwise(CUDNN_POINTWISE_MUL, s0, attn_scale, s1);
    Pointwise(CUDNN_POINTWISE_MUL, s1, scalar[0], s2);  // descale_q
    Pointwise(CUDNN_POINTWISE_MUL, s2, scalar[1], s3);  // descale_k
    const auto max = per_row(), centred = score(), exps = score(), sum = per_row();
    Reduce(CUDNN_REDUCE_TENSOR_MAX, s3, max);
    Pointwise(CUDNN_POINTWISE_SUB, s3, max, centred);
    Pointwise(CUDNN_POINTWISE_EXP, centred, nullptr, exps);
    Reduce(CUDNN_REDUCE_TENSOR_ADD, exps, sum);
    const auto log_sum = per_row(), stats = per_row(), p = score();
    Pointwise(CUDNN_POINTWISE_LOG, sum, nullptr, log_sum);
    Pointwise(CUDNN_POINTWISE_ADD, max, log_sum, stats);
    Pointwise(CUDNN_POINTWISE_DIV, exps, sum, p);
    Reduce(CUDNN_REDUCE_TENSOR_AMAX, p, scalar[6]);  // amax_s
    const auto p8 = Virtual(e4m3, scores, scores_strides);
    Pointwise(CUDNN_POINTWISE_MUL, p, scalar[4], p8);  // scale_s
    const auto o0 = out(), o1 = out(), o2 = out();
    Matmul(p8, v, o0);
    Pointwise(CUDNN_POINTWISE_MUL, o0, scalar[3], o1);  // descale_s
    Pointwise(CUDNN_POINTWISE_MUL, o1, scalar[2], o2);  // descale_v
    Pointwise(CUDNN_POINTWISE_MUL, o2, scalar[5], o);   // scale_o
    Reduce(CUDNN_REDUCE_TENSOR_AMAX, o2, scalar[7]);    // amax_o
    if (!ok_) return false;
    g_.graph = std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    g_.graph->Set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops_.size(), ops_.data())
        .Set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_);
    return g_.graph->Finalize("fp8 attention graph");
  }

  static constexpr cudnnDataType_t kFloat = CUDNN_DATA_FLOAT;
  cudnnHandle_t handle_;
  Graph g_;
  std::vector<cudnnBackendDescriptor_t> ops_;
  int64_t next_virtual_ = 100;
  bool ok_ = true;
};

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
  AttentionGraph graph(handle, s);
  if (!graph.ok()) return -1;
  auto plans = Plans(handle, graph.graph());
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
  cudnnHandle_t handle;
  if (!Ok(cudnnCreate(&handle), "cudnnCreate")) return 1;
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("cuDNN %zu on %s (sm_%d%d)\n", cudnnGetVersion(), prop.name, prop.major, prop.minor);
  const double check = CheckSmall(handle);
  std::printf("check 1x2x256x64 against float64: largest error %.4f of max|O| (-1: no plan)\n", check);
  // Self-attention of the UNet at batch 8 with CFG (16 rows): 64x64 latents (4096 tokens, 10
  // heads) and 32x32 (1024 tokens, 20 heads), head size 64.
  const std::vector<Shape> shapes = {{"4096 tokens x 10 heads", 16, 10, 4096, 64}, {"1024 tokens x 20 heads", 16, 20, 1024, 64}};
  std::string json = "{\"cudnn\": " + std::to_string(cudnnGetVersion()) + ", \"gpu\": \"" + prop.name +
                     "\", \"check_error\": " + std::to_string(check) + ", \"shapes\": [";
  for (size_t i = 0; i < shapes.size(); ++i) {
    const Shape& s = shapes[i];
    AttentionGraph graph(handle, s);
    float ms = -1;
    int plan_count = 0;
    if (graph.ok()) {
      auto plans = Plans(handle, graph.graph());
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
  if (argc > 1) {
    if (FILE* f = std::fopen(argv[1], "w")) std::fputs(json.c_str(), f), std::fclose(f);
  }
  cudnnDestroy(handle);
  return 0;
}
