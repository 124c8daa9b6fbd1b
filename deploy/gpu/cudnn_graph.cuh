// cuDNN graph-API helpers shared by the GPU probes (cudnn_fp8_conv_probe.cu,
// cudnn_fp8_attention_probe.cu): descriptors with RAII, tensors, a graph builder, the
// heuristics' plans, timed execution, random fp16 inputs quantized to e4m3, the report.
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace probe {

#define CHECK_CUDA(x)                                                                      \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

// A cuDNN call that may fail for a plan or graph cuDNN does not support: returns false.
inline bool Ok(cudnnStatus_t s, const char* what, bool quiet = false) {
  if (s != CUDNN_STATUS_SUCCESS && !quiet) std::fprintf(stderr, "  %s: %s\n", what, cudnnGetErrorString(s));
  return s == CUDNN_STATUS_SUCCESS;
}

struct Desc {
  cudnnBackendDescriptor_t d = nullptr;
  explicit Desc(cudnnBackendDescriptorType_t t) { cudnnBackendCreateDescriptor(t, &d); }
  ~Desc() { if (d) cudnnBackendDestroyDescriptor(d); }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  template <typename T>
  Desc& Set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t n, const T* v) {
    status = status == CUDNN_STATUS_SUCCESS ? cudnnBackendSetAttribute(d, name, type, n, v) : status;
    return *this;
  }
  bool Finalize(const char* what, bool quiet = false) {
    if (status == CUDNN_STATUS_SUCCESS) status = cudnnBackendFinalize(d);
    return Ok(status, what, quiet);
  }
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
};

// A tensor in logical NCHW order with explicit strides.
inline std::unique_ptr<Desc> Tensor(int64_t uid, cudnnDataType_t type, std::vector<int64_t> dims,
                                    std::vector<int64_t> strides, bool is_virtual = false) {
  auto t = std::make_unique<Desc>(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t alignment = 16;
  t->Set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type)
      .Set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, dims.size(), dims.data())
      .Set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, strides.size(), strides.data())
      .Set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)
      .Set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
  if (is_virtual) t->Set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
  if (!t->Finalize("tensor")) return nullptr;
  return t;
}

struct Plan {
  std::unique_ptr<Desc> plan;
  int64_t workspace = 0;
  float ms = 0;
};

struct Graph {
  std::vector<std::unique_ptr<Desc>> keep;  // descriptors the graph refers to
  std::unique_ptr<Desc> graph;
};

// Builds one operation graph: keeps every descriptor the graph refers to, adds operations in
// order; after any failure ok() is false and nothing more is added.
class GraphBuilder {
 public:
  explicit GraphBuilder(cudnnHandle_t handle) : handle_(handle) {}
  bool ok() const { return ok_; }

  cudnnBackendDescriptor_t Keep(std::unique_ptr<Desc> d) {
    if (!d) ok_ = false;
    if (!ok_) return nullptr;
    cudnnBackendDescriptor_t raw = d->d;
    graph_.keep.push_back(std::move(d));
    return raw;
  }
  cudnnBackendDescriptor_t Tensor(int64_t uid, cudnnDataType_t type, const std::vector<int64_t>& dims,
                                  const std::vector<int64_t>& strides, bool is_virtual = false) {
    return ok_ ? Keep(probe::Tensor(uid, type, dims, strides, is_virtual)) : nullptr;
  }
  // A virtual float or fp8 intermediate, numbered from 100 (below: the caller's ids).
  cudnnBackendDescriptor_t Virtual(cudnnDataType_t type, const std::vector<int64_t>& dims,
                                   const std::vector<int64_t>& strides) {
    return Tensor(next_virtual_++, type, dims, strides, true);
  }
  // An operation descriptor with its attributes set: finalized and added to the graph.
  void Op(std::unique_ptr<Desc> op, const char* what) {
    if (ok_ && !op->Finalize(what)) ok_ = false;
    if (ok_) ops_.push_back(Keep(std::move(op)));
  }
  // y = x (mode) b in float; b may be null for unary modes.
  void Pointwise(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                 cudnnBackendDescriptor_t y) {
    auto pw = std::make_unique<Desc>(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    pw->Set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode)
        .Set(CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &kFloat);
    cudnnBackendDescriptor_t pwd = Finalized(std::move(pw), "pointwise");
    if (!ok_) return;
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
    cudnnBackendDescriptor_t rd = Finalized(std::move(r), "reduction");
    if (!ok_) return;
    auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    op->Set(CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd)
        .Set(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)
        .Set(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y);
    Op(std::move(op), "reduction op");
  }
  void Matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
    auto m = std::make_unique<Desc>(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    m->Set(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &kFloat);
    cudnnBackendDescriptor_t md = Finalized(std::move(m), "matmul");
    if (!ok_) return;
    auto op = std::make_unique<Desc>(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    op->Set(CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a)
        .Set(CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b)
        .Set(CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c)
        .Set(CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &md);
    Op(std::move(op), "matmul op");
  }
  // The graph of the operations added, finalized (named `what` in a failure), into `g`.
  bool Finish(Graph& g, const char* what) {
    if (!ok_) return false;
    graph_.graph = std::make_unique<Desc>(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    graph_.graph->Set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, ops_.size(), ops_.data())
        .Set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_);
    const bool finalized = graph_.graph->Finalize(what);
    g = std::move(graph_);
    return finalized;
  }

 private:
  static constexpr cudnnDataType_t kFloat = CUDNN_DATA_FLOAT;
  cudnnBackendDescriptor_t Finalized(std::unique_ptr<Desc> d, const char* what) {
    if (ok_ && !d->Finalize(what)) ok_ = false;
    return Keep(std::move(d));
  }
  cudnnHandle_t handle_;
  Graph graph_;
  std::vector<cudnnBackendDescriptor_t> ops_;
  int64_t next_virtual_ = 100;
  bool ok_ = true;
};

// Every plan the heuristics (mode A, then fallback) offer that finalizes.
inline std::vector<Plan> Plans(cudnnHandle_t handle, Graph& g) {
  std::vector<Plan> plans;
  for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
    Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    heur.Set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g.graph->d)
        .Set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    if (!heur.Finalize("heuristics")) continue;
    int64_t count = 0;
    cudnnBackendGetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr);
    count = std::min<int64_t>(count, 12);
    std::vector<std::unique_ptr<Desc>> cfgs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count; ++i) {
      cfgs.push_back(std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR));
      raw.push_back(cfgs.back()->d);
    }
    int64_t got = 0;
    if (count > 0 && !Ok(cudnnBackendGetAttribute(heur.d, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                                  count, &got, raw.data()), "heuristic results"))
      continue;
    for (int64_t i = 0; i < got; ++i) {
      Plan p;
      p.plan = std::make_unique<Desc>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      p.plan->Set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle)
          .Set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw[i]);
      if (!p.plan->Finalize("plan", /*quiet=*/true)) continue;
      int64_t n = 0;
      cudnnBackendGetAttribute(p.plan->d, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &p.workspace);
      plans.push_back(std::move(p));
    }
    if (!plans.empty()) break;
  }
  return plans;
}

inline bool Execute(cudnnHandle_t handle, Plan& p, std::vector<int64_t> uids, std::vector<void*> ptrs, void* workspace) {
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  pack.Set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, uids.size(), uids.data())
      .Set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, ptrs.size(), ptrs.data())
      .Set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  if (!pack.Finalize("variant pack")) return false;
  return Ok(cudnnBackendExecute(handle, p.plan->d, pack.d), "execute", true);
}

// Deterministic pseudo-random values in [-range, range).
__global__ void Fill(__half* out, int64_t n, uint32_t seed, float range) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint32_t v = (uint32_t)i * 2654435761u ^ seed;
    v ^= v >> 16; v *= 0x7feb352d; v ^= v >> 15; v *= 0x846ca68b; v ^= v >> 16;
    out[i] = __float2half(((v & 0xffffff) / 16777216.f * 2.f - 1.f) * range);
  }
}

// x * inv_scale[i / inner % channels] as e4m3 (saturating); one scale when channels == 1.
__global__ void Quantize(const __half* x, __nv_fp8_e4m3* out, int64_t n, const float* inv_scale, int64_t channels,
                         int64_t inner) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float s = inv_scale[(i / inner) % channels];
    out[i] = __nv_fp8_e4m3(__half2float(x[i]) * s);
  }
}

template <typename F>
inline float TimeMs(F f, int runs = 20) {
  for (int i = 0; i < 3; ++i) f();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a);
  for (int i = 0; i < runs; ++i) f();
  cudaEventRecord(b);
  CHECK_CUDA(cudaEventSynchronize(b));
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / runs;
}

// Fastest plan of `plans` (timed), or -1 when none runs.
inline int Fastest(cudnnHandle_t handle, std::vector<Plan>& plans, const std::vector<int64_t>& uids,
            const std::vector<void*>& ptrs) {
  int best = -1;
  for (size_t i = 0; i < plans.size(); ++i) {
    void* ws = nullptr;
    if (plans[i].workspace > 0 && cudaMalloc(&ws, plans[i].workspace) != cudaSuccess) continue;
    bool ok = Execute(handle, plans[i], uids, ptrs, ws) && cudaDeviceSynchronize() == cudaSuccess;
    if (ok) {
      plans[i].ms = TimeMs([&] { Execute(handle, plans[i], uids, ptrs, ws); });
      if (best < 0 || plans[i].ms < plans[best].ms) best = static_cast<int>(i);
    }
    cudaGetLastError();
    if (ws) cudaFree(ws);
  }
  return best;
}

inline void RunOnce(cudnnHandle_t handle, Plan& p, const std::vector<int64_t>& uids, const std::vector<void*>& ptrs) {
  void* ws = nullptr;
  if (p.workspace > 0) CHECK_CUDA(cudaMalloc(&ws, p.workspace));
  Execute(handle, p, uids, ptrs, ws);
  CHECK_CUDA(cudaDeviceSynchronize());
  if (ws) cudaFree(ws);
}

// A cuDNN handle on device 0 (the versions and the GPU printed), and the opening of the
// probe's JSON report naming them.
inline cudnnHandle_t OpenCudnn(std::string* report) {
  cudnnHandle_t handle = nullptr;
  if (!Ok(cudnnCreate(&handle), "cudnnCreate")) std::exit(1);
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("cuDNN %zu on %s (sm_%d%d)\n", cudnnGetVersion(), prop.name, prop.major, prop.minor);
  *report = "{\"cudnn\": " + std::to_string(cudnnGetVersion()) + ", \"gpu\": \"" + prop.name + "\"";
  return handle;
}

// The report written to `path` when one is given.
inline void WriteReport(const char* path, const std::string& report) {
  if (!path) return;
  if (FILE* f = std::fopen(path, "w")) std::fputs(report.c_str(), f), std::fclose(f);
}

}  // namespace probe
