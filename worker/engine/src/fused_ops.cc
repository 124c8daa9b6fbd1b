#include "worker/engine/src/fused_ops.h"

#include <atomic>

#if defined(SPRITEFORGE_CUDA_KERNELS)  // set by CMake when nvcc built cuda/fused_kernels.cu
#include <ATen/cuda/CUDAContext.h>

#include "worker/engine/cuda/fused_kernels.h"
#endif

namespace spriteforge::engine {
namespace {

std::atomic<bool> fused_enabled{true};

#if defined(SPRITEFORGE_CUDA_KERNELS)
bool Aligned(const torch::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

// Reduced precision on CUDA only: float32 keeps LibTorch's kernels, the reference path.
bool UseKernels(const torch::Tensor& t, cuda::ElementType* type,
                at::MemoryFormat format = at::MemoryFormat::Contiguous) {
  if (!fused_enabled.load(std::memory_order_relaxed) || !t.is_cuda() || !t.is_contiguous(format) || !Aligned(t)) {
    return false;
  }
  if (t.scalar_type() == torch::kHalf) *type = cuda::ElementType::kFloat16;
  else if (t.scalar_type() == torch::kBFloat16) *type = cuda::ElementType::kBFloat16;
  else return false;
  return true;
}

void Check(cudaError_t error, const char* what) {
  TORCH_CHECK(error == cudaSuccess, what, " kernel failed: ", cudaGetErrorString(error));
}

int SmCount() { return at::cuda::getCurrentDeviceProperties()->multiProcessorCount; }

// Uninitialised fp8 rows of shape [..., K] on options' device, with a [rows, 1] scale column.
Fp8Rows EmptyFp8Rows(at::IntArrayRef shape, const torch::TensorOptions& options) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  return {torch::empty(shape, options.dtype(c10::ScalarType::Float8_e4m3fn)),
          torch::empty({rows, 1}, options.dtype(torch::kFloat))};
}

// The same rows as the kernels write them.
cuda::Fp8Out KernelTarget(const Fp8Rows& rows) {
  return {static_cast<uint8_t*>(rows.data.data_ptr()), rows.scale.data_ptr<float>()};
}
#endif

}  // namespace

bool IsChannelsLast(const torch::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

void SetFusedKernelsEnabled(bool enabled) { fused_enabled = enabled; }

bool FusedKernelsAvailable() {
#if defined(SPRITEFORGE_CUDA_KERNELS)
  return true;
#else
  return false;
#endif
}

torch::Tensor GroupNormAct(const torch::Tensor& x, const torch::nn::GroupNorm& norm, bool silu,
                           const torch::Tensor& channel_bias) {
#if defined(SPRITEFORGE_CUDA_KERNELS)
  cuda::ElementType type;
  const auto& o = norm->options;
  const int64_t pack = 16 / x.element_size();
  // NCHW packs run along a channel's pixels, NHWC packs across a pixel's channels.
  const bool nhwc = IsChannelsLast(x);
  const auto format = nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  if (x.dim() == 4 && o.affine() && UseKernels(x, &type, format) &&
      (nhwc ? x.size(1) % pack == 0 && x.size(1) <= 512 * pack : x.size(2) * x.size(3) % pack == 0) &&
      norm->weight.scalar_type() == x.scalar_type() &&
      (!channel_bias.defined() || (channel_bias.is_contiguous() && channel_bias.scalar_type() == x.scalar_type()))) {
    const int64_t n = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3), groups = o.num_groups();
    const int sms = SmCount();
    torch::Tensor y = torch::empty_like(x);  // keeps x's layout
    const int64_t partial_floats = nhwc ? 3 * n * groups * cuda::NhwcGroupNormSplits(n, hw, sms)
                                        : cuda::GroupNormPartialFloats(n, groups, sms, c / groups * hw);
    torch::Tensor partials = torch::empty({partial_floats}, x.options().dtype(torch::kFloat));
    const void* shift = channel_bias.defined() ? channel_bias.data_ptr() : nullptr;
    const auto kernel = nhwc ? cuda::NhwcGroupNormSilu : cuda::GroupNormSilu;
    Check(kernel(x.data_ptr(), shift, norm->weight.data_ptr(), norm->bias.data_ptr(), y.data_ptr(),
                 partials.data_ptr<float>(), n, c, hw, groups, static_cast<float>(o.eps()), silu, type, sms,
                 at::cuda::getCurrentCUDAStream()),
          nhwc ? "GroupNorm (channels-last)" : "GroupNorm");
    return y;
  }
#endif
  torch::Tensor h = channel_bias.defined() ? x + channel_bias.unsqueeze(-1).unsqueeze(-1) : x;
  torch::Tensor y = torch::group_norm(h, norm->options.num_groups(), norm->weight, norm->bias,
                                      norm->options.eps());
  return silu ? torch::silu(y) : y;
}

StreamAndNorm AddLayerNorm(const torch::Tensor& x, const torch::Tensor& y, const torch::nn::LayerNorm& norm,
                           bool fp8) {
  const auto& o = norm->options;
#if defined(SPRITEFORGE_CUDA_KERNELS)
  cuda::ElementType type;
  const int64_t c = x.size(-1), pack = 16 / x.element_size();
  if (UseKernels(x, &type) && o.normalized_shape().size() == 1 && o.elementwise_affine() && c % pack == 0 &&
      c <= 256 * pack && norm->weight.scalar_type() == x.scalar_type() &&
      (!y.defined() || (y.is_contiguous() && Aligned(y) && y.sizes() == x.sizes() &&
                        y.scalar_type() == x.scalar_type()))) {
    torch::Tensor stream = y.defined() ? torch::empty_like(x) : x;
    Rows normed;
    cuda::Fp8Out fp8_out;
    if (fp8 && c % 16 == 0) {
      normed.fp8 = EmptyFp8Rows(x.sizes(), x.options());
      fp8_out = KernelTarget(normed.fp8);
    } else {
      normed.values = torch::empty_like(x);
    }
    Check(cuda::AddLayerNorm(x.data_ptr(), y.defined() ? y.data_ptr() : nullptr, norm->weight.data_ptr(),
                             norm->bias.data_ptr(), y.defined() ? stream.data_ptr() : nullptr,
                             normed.values.defined() ? normed.values.data_ptr() : nullptr, fp8_out, x.numel() / c, c,
                             static_cast<float>(o.eps()), type, at::cuda::getCurrentCUDAStream()),
          "LayerNorm");
    return {stream, normed};
  }
#endif
  torch::Tensor stream = y.defined() ? x + y : x;
  return {stream, {torch::layer_norm(stream, o.normalized_shape(), norm->weight, norm->bias, o.eps()), {}}};
}

torch::Tensor AddChannelBias(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bias) {
#if defined(SPRITEFORGE_CUDA_KERNELS)
  cuda::ElementType type;
  const bool channels_last = IsChannelsLast(a);
  const auto format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const int64_t pack = 16 / a.element_size();
  if (a.dim() == 4 && UseKernels(a, &type, format) && UseKernels(b, &type, format) && a.sizes() == b.sizes() &&
      a.scalar_type() == b.scalar_type() && bias.is_contiguous() && bias.scalar_type() == a.scalar_type() &&
      (channels_last ? a.size(1) % pack : a.size(2) * a.size(3) % pack) == 0) {
    torch::Tensor out = torch::empty_like(a);
    Check(cuda::AddChannelBias(a.data_ptr(), b.data_ptr(), bias.data_ptr(), out.data_ptr(), a.size(0), a.size(1),
                               a.size(2) * a.size(3), channels_last, type, SmCount(),
                               at::cuda::getCurrentCUDAStream()),
          "residual add");
    return out;
  }
#endif
  return a + (b + bias.view({1, -1, 1, 1}));
}

Rows Geglu(const torch::Tensor& projected, bool fp8) {
  const int64_t features = projected.size(-1) / 2;
#if defined(SPRITEFORGE_CUDA_KERNELS)
  cuda::ElementType type;
  if (UseKernels(projected, &type) && features % (16 / projected.element_size()) == 0) {
    std::vector<int64_t> shape = projected.sizes().vec();
    shape.back() = features;
    const int64_t rows = projected.numel() / (2 * features);
    if (fp8 && features % 16 == 0 && features <= 8192) {
      Fp8Rows out = EmptyFp8Rows(shape, projected.options());
      Check(cuda::GegluFp8(projected.data_ptr(), KernelTarget(out), rows, features, type,
                           at::cuda::getCurrentCUDAStream()),
            "GEGLU (fp8)");
      return {{}, out};
    }
    torch::Tensor out = torch::empty(shape, projected.options());
    Check(cuda::Geglu(projected.data_ptr(), out.data_ptr(), rows, features, type, SmCount(),
                      at::cuda::getCurrentCUDAStream()),
          "GEGLU");
    return {out, {}};
  }
#endif
  std::vector<torch::Tensor> parts = projected.chunk(2, -1);
  return {parts[0] * torch::gelu(parts[1]), {}};
}

std::string Fp8Unsupported(const torch::Device& device) {
#if defined(SPRITEFORGE_CUDA_KERNELS)
  if (!device.is_cuda()) return "fp8 Linear layers run on CUDA devices only";
  const cudaDeviceProp* p = at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index());
  if (p->major * 10 + p->minor < 89) {
    return "fp8 Linear layers need compute capability 8.9 or newer (this GPU has " + std::to_string(p->major) + "." +
           std::to_string(p->minor) + ")";
  }
  return "";
#else
  (void)device;
  return "fp8 Linear layers need an engine built with the CUDA kernels (SPRITEFORGE_WITH_CUDA_KERNELS)";
#endif
}

Fp8Rows QuantizeWeightFp8(const torch::Tensor& weight) {
#if defined(SPRITEFORGE_CUDA_KERNELS)
  torch::Tensor w = weight.to(torch::kFloat);
  torch::Tensor scale = w.abs().amax({1}, /*keepdim=*/true).clamp_min(1e-12) / 448.0;
  return {(w / scale).to(c10::ScalarType::Float8_e4m3fn).contiguous(), scale.view({1, -1}).contiguous()};
#else
  (void)weight;
  TORCH_CHECK(false, Fp8Unsupported(torch::kCPU));
  return {};
#endif
}

Fp8Rows QuantizeRowsFp8(const torch::Tensor& x) {
#if defined(SPRITEFORGE_CUDA_KERNELS)
  cuda::ElementType type;
  const int64_t k = x.size(-1);
  TORCH_CHECK(UseKernels(x, &type) && k % 16 == 0, "fp8 rows need contiguous fp16/bf16 CUDA input with K % 16 == 0");
  Fp8Rows out = EmptyFp8Rows(x.sizes(), x.options());
  Check(cuda::QuantizeRowsFp8(x.data_ptr(), KernelTarget(out), x.numel() / k, k, type,
                              at::cuda::getCurrentCUDAStream()),
        "fp8 quantization");
  return out;
#else
  (void)x;
  TORCH_CHECK(false, Fp8Unsupported(torch::kCPU));
  return {};
#endif
}

torch::Tensor Fp8Linear(const Fp8Rows& x, const Fp8Rows& weight, const torch::Tensor& bias) {
#if defined(SPRITEFORGE_CUDA_KERNELS)
  const int64_t k = x.data.size(-1), n = weight.data.size(0);
  std::vector<int64_t> shape = x.data.sizes().vec();
  shape.back() = n;
  // Row-wise scales on both sides: cuBLAS/CUTLASS apply them in the GEMM epilogue.
  torch::Tensor out = at::_scaled_mm(x.data.view({-1, k}), weight.data.t(), x.scale, weight.scale,
                                     bias.defined() ? std::optional<torch::Tensor>(bias) : std::nullopt,
                                     /*scale_result=*/std::nullopt, torch::kBFloat16, /*use_fast_accum=*/false);
  return out.view(shape);
#else
  (void)x, (void)weight, (void)bias;
  TORCH_CHECK(false, Fp8Unsupported(torch::kCPU));
  return {};
#endif
}

}  // namespace spriteforge::engine
