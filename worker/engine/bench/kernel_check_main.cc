// spriteforge-kernel-check: the fused CUDA kernels (src/fused_ops.h) against LibTorch's ops
// on fresh random inputs at the UNet's and VAE's real shapes: relative L2 error of both
// against a float32 reference, NaN-poisoned outputs, and the time of each. Exits 1 when a
// fused result is wrong. Usage: spriteforge-kernel-check [--dtypes fp16,bf16] [--reps 50]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include <torch/torch.h>

#include "worker/engine/src/fused_ops.h"
#include "worker/engine/src/layers.h"
#include "worker/engine/src/torch_compat.h"

namespace sf = spriteforge::engine;

namespace {

double RelativeError(const torch::Tensor& out, const torch::Tensor& ref) {
  torch::Tensor o = out.to(torch::kDouble), r = ref.to(torch::kDouble);
  return ((o - r).norm() / r.norm()).item<double>();
}

// Mean milliseconds per call, after warm-up, device-synchronised.
double TimeMs(const std::function<torch::Tensor()>& fn, int reps) {
  for (int i = 0; i < 3; ++i) fn();
  torch::cuda::synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) fn();
  torch::cuda::synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / reps;
}

// Fills the caching allocator's next block of this size with NaN, so an element the kernel
// fails to write shows up as NaN.
void Poison(at::IntArrayRef shape, const torch::TensorOptions& options) {
  torch::full(shape, std::nan(""), options);
}


bool Report(const std::string& name, torch::ScalarType dtype, const std::function<torch::Tensor()>& fused_fn,
            const std::function<torch::Tensor()>& stock_fn, const torch::Tensor& reference,
            at::IntArrayRef out_shape, int reps, double tolerance) {
  auto options = torch::TensorOptions().dtype(dtype).device(torch::kCUDA);
  sf::SetFusedKernelsEnabled(true);
  Poison(out_shape, options);
  torch::Tensor fused = fused_fn();
  const bool finite = torch::isfinite(fused).all().item<bool>();
  const double fused_err = RelativeError(fused, reference);
  const double fused_ms = TimeMs(fused_fn, reps);
  sf::SetFusedKernelsEnabled(false);
  torch::Tensor stock = stock_fn();
  const double stock_err = RelativeError(stock, reference);
  const double stock_ms = TimeMs(stock_fn, reps);
  const bool ok = finite && fused_err <= tolerance;
  std::printf("%-44s %-5s fused %.2e (%6.3f ms)  stock %.2e (%6.3f ms)  speedup %.2fx  %s\n", name.c_str(),
              dtype == torch::kHalf ? "fp16" : "bf16", fused_err, fused_ms, stock_err, stock_ms,
              stock_ms / fused_ms, ok ? "ok" : (finite ? "WRONG" : "UNWRITTEN/NaN"));
  return ok;
}

#if defined(SPRITEFORGE_CUDA_KERNELS)  // the fp8 types exist in the GPU machine's LibTorch only
torch::Tensor Dequantize(const sf::Fp8Rows& q) {
  return q.data.to(torch::kFloat).view({-1, q.data.size(-1)}) * q.scale;
}

// fp8 rows from a fused producer must equal quantizing the producer's 16-bit output.
bool SameFp8(const sf::Fp8Rows& a, const sf::Fp8Rows& b) {
  return a.scale.equal(b.scale) && a.data.view(torch::kByte).equal(b.data.view(torch::kByte));
}

// The fp8 path (bf16 models): quantizers and the fp8 GEMM against bf16 and float32 on the
// UNet's Linear shapes. fp8 is lossy by design: e4m3 keeps 3 mantissa bits, so a product of
// two quantized operands is off by about 3-4% (relative L2); more than 6% is a fault.
bool CheckFp8(int reps) {
  if (std::string why = sf::Fp8Unsupported(torch::Device(torch::kCUDA, 0)); !why.empty()) {
    std::printf("fp8: skipped (%s)\n", why.c_str());
    return true;
  }
  bool ok = true;
  auto options = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  // Quantizer: against LibTorch's float -> e4m3 conversion of x / scale.
  {
    torch::Tensor x = torch::randn({16 * 1024, 1280}, options) * 3;
    sf::Fp8Rows q = sf::QuantizeRowsFp8(x);
    torch::Tensor scale = x.to(torch::kFloat).abs().amax({1}, true).clamp_min(1e-12) / 448.0;
    torch::Tensor ref = (x.to(torch::kFloat) / scale).to(c10::ScalarType::Float8_e4m3fn);
    const double differ = q.data.view(torch::kByte).ne(ref.view(torch::kByte)).to(torch::kDouble).mean().item<double>();
    const double err = RelativeError(Dequantize(q), x.to(torch::kFloat));
    const double ms = TimeMs([&] { return sf::QuantizeRowsFp8(x).data; }, reps);
    const bool good = torch::allclose(q.scale, scale) && differ <= 2e-3 && err < 0.04;
    // A few values differ by one e4m3 step from LibTorch's own conversion of x / scale.
    std::printf("%-44s bf16 fp8 rows %.2e (%6.3f ms), %.1e of bytes differ from LibTorch's  %s\n",
                "quantize rows 16384x1280", err, ms, differ, good ? "ok" : "WRONG");
    ok &= good;
  }
  // Fused producers: LayerNorm and GEGLU writing fp8 rows.
  {
    torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({1280}).eps(1e-5));
    norm->to(torch::kCUDA, torch::kBFloat16);
    torch::Tensor x = torch::randn({16 * 1024, 1280}, options), y = torch::randn({16 * 1024, 1280}, options);
    sf::StreamAndNorm plain = sf::AddLayerNorm(x, y, norm), fused = sf::AddLayerNorm(x, y, norm, /*fp8=*/true);
    const bool good = fused.normed.fp8.defined() && fused.stream.equal(plain.stream) &&
                      SameFp8(fused.normed.fp8, sf::QuantizeRowsFp8(plain.normed.values));
    const double ms = TimeMs([&] { return sf::AddLayerNorm(x, y, norm, true).normed.fp8.data; }, reps);
    std::printf("%-44s bf16 (%6.3f ms)  %s\n", "add+LayerNorm -> fp8 rows 16384x1280", ms,
                good ? "ok (same bytes as LayerNorm, then quantize)" : "WRONG");
    ok &= good;
    torch::Tensor p = torch::randn({16 * 1024, 2 * 5120}, options);
    sf::Rows geglu = sf::Geglu(p, /*fp8=*/true);
    const bool geglu_good = geglu.fp8.defined() && SameFp8(geglu.fp8, sf::QuantizeRowsFp8(sf::Geglu(p).values));
    const double geglu_ms = TimeMs([&] { return sf::Geglu(p, true).fp8.data; }, reps);
    std::printf("%-44s bf16 (%6.3f ms)  %s\n", "GEGLU -> fp8 rows 16384x10240", geglu_ms,
                geglu_good ? "ok (same bytes as GEGLU, then quantize)" : "WRONG");
    ok &= geglu_good;
  }
  // GEMMs: [M, K] x [N, K]^T + bias, timed with the input already quantized (as the fused
  // producers hand it over) and with the quantization included.
  for (auto [m, k, n] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {2 * 1024, 1280, 1280}, {16 * 1024, 1280, 1280}, {16 * 1024, 1280, 10240},
           {16 * 1024, 5120, 1280}, {16 * 4096, 640, 5120}, {16 * 4096, 2560, 640}}) {
    torch::Tensor x = torch::randn({m, k}, options);
    torch::Tensor w = torch::randn({n, k}, options) / std::sqrt(static_cast<double>(k));
    torch::Tensor b = torch::randn({n}, options) * 0.1;
    torch::Tensor ref = torch::addmm(b.to(torch::kFloat), x.to(torch::kFloat), w.to(torch::kFloat).t());
    sf::Fp8Rows wq = sf::QuantizeWeightFp8(w), xq = sf::QuantizeRowsFp8(x);
    const double fp8_err = RelativeError(sf::Fp8Linear(xq, wq, b), ref);
    const double bf16_err = RelativeError(torch::addmm(b, x, w.t()), ref);
    const double fp8_ms = TimeMs([&] { return sf::Fp8Linear(xq, wq, b); }, reps);
    const double fp8_q_ms = TimeMs([&] { return sf::Fp8Linear(sf::QuantizeRowsFp8(x), wq, b); }, reps);
    const double bf16_ms = TimeMs([&] { return torch::addmm(b, x, w.t()); }, reps);
    const double tflop = 2.0 * m * k * n / 1e9;
    const bool good = fp8_err < 0.06;
    char name[128];
    std::snprintf(name, sizeof(name), "fp8 GEMM %ldx%ldx%ld", m, k, n);
    std::printf("%-44s fp8 %.2e (%6.3f ms, %4.0f TFLOP/s; %6.3f ms with quantize)  bf16 %.2e (%6.3f ms, %4.0f TFLOP/s)"
                "  speedup %.2fx  %s\n",
                name, fp8_err, fp8_ms, tflop / fp8_ms, fp8_q_ms, bf16_err, bf16_ms, tflop / bf16_ms, bf16_ms / fp8_ms,
                good ? "ok" : "WRONG");
    ok &= good;
  }
  return ok;
}
#else
bool CheckFp8(int) { return true; }
#endif

}  // namespace

int main(int argc, char** argv) {
  std::vector<torch::ScalarType> dtypes = {torch::kHalf, torch::kBFloat16};
  int reps = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], v = argv[i + 1];
    if (flag == "--reps") reps = std::stoi(v);
    else if (flag == "--dtypes" && v == "fp16") dtypes = {torch::kHalf};
    else if (flag == "--dtypes" && v == "bf16") dtypes = {torch::kBFloat16};
  }
  if (!torch::cuda::is_available() || !sf::FusedKernelsAvailable()) {
    std::fprintf(stderr, "spriteforge-kernel-check: needs CUDA and an engine built with the CUDA toolkit\n");
    return 2;
  }
  torch::NoGradGuard no_grad;
  torch::manual_seed(1234);
  bool all_ok = true;
  struct GnShape { int64_t n, c, h, w, groups; bool silu, bias, channels_last = false; };
  const std::vector<GnShape> gn_shapes = {
      {2, 320, 128, 128, 32, true, true},   {16, 320, 128, 128, 32, true, true},
      {16, 640, 64, 64, 32, true, false},   {16, 1280, 32, 32, 32, false, false},
      {1, 128, 1024, 1024, 32, true, false}, {1, 512, 128, 128, 32, false, false},
      {2, 320, 128, 128, 32, true, true, true}, {16, 320, 128, 128, 32, true, true, true},
      {16, 2560, 32, 32, 32, true, true, true}, {16, 1280, 32, 32, 32, false, false, true},
      {1, 128, 1024, 1024, 32, true, false, true}, {1, 256, 512, 512, 32, true, false, true}};
  for (torch::ScalarType dtype : dtypes) {
    const double tol = dtype == torch::kHalf ? 2e-3 : 1.5e-2;
    auto options = torch::TensorOptions().dtype(dtype).device(torch::kCUDA);
    for (const GnShape& s : gn_shapes) {
      torch::nn::GroupNorm norm(torch::nn::GroupNormOptions(s.groups, s.c).eps(1e-5));
      norm->weight.set_data(torch::randn({s.c}) * 0.5 + 1);
      norm->bias.set_data(torch::randn({s.c}) * 0.1);
      torch::Tensor x = (torch::randn({s.n, s.c, s.h, s.w}, options.dtype(torch::kFloat)) * 2 + 0.3);
      torch::Tensor bias = s.bias ? torch::randn({s.n, s.c}, options.dtype(torch::kFloat)) : torch::Tensor();
      norm->to(torch::kCUDA, torch::kFloat);
      sf::SetFusedKernelsEnabled(false);
      torch::Tensor reference = sf::GroupNormAct(x, norm, s.silu, bias);
      norm->to(torch::kCUDA, dtype);
      torch::Tensor xd = x.to(dtype), bd = s.bias ? bias.to(dtype) : torch::Tensor();
      if (s.channels_last) xd = xd.contiguous(at::MemoryFormat::ChannelsLast);
      auto fn = [&] { return sf::GroupNormAct(xd, norm, s.silu, bd); };
      char name[128];
      std::snprintf(name, sizeof(name), "GroupNorm%s%s %ldx%ldx%ldx%ld%s", s.silu ? "+SiLU" : "",
                    s.bias ? "+shift" : "", s.n, s.c, s.h, s.w, s.channels_last ? " NHWC" : "");
      all_ok &= Report(name, dtype, fn, fn, reference, x.sizes(), reps, tol);
    }
    for (auto [rows, features] : std::vector<std::pair<int64_t, int64_t>>{{2 * 4096, 2560}, {16 * 4096, 2560}, {16 * 1024, 5120}}) {
      torch::Tensor p = torch::randn({rows, 2 * features}, options.dtype(torch::kFloat));
      sf::SetFusedKernelsEnabled(false);
      torch::Tensor reference = sf::Geglu(p).values;
      torch::Tensor pd = p.to(dtype);
      auto fn = [&] { return sf::Geglu(pd).values; };
      char name[128];
      std::snprintf(name, sizeof(name), "GEGLU %ldx%ld", rows, 2 * features);
      all_ok &= Report(name, dtype, fn, fn, reference, {rows, features}, reps, tol);
    }
    // The transformer blocks' residual sum + LayerNorm, and the first LayerNorm (no sum).
    for (auto [rows, c, with_sum] : std::vector<std::tuple<int64_t, int64_t, bool>>{
             {2 * 4096, 640, true}, {16 * 4096, 640, true}, {16 * 1024, 1280, true}, {16 * 1024, 1280, false}}) {
      torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({c}).eps(1e-5));
      norm->weight.set_data(torch::randn({c}) * 0.5 + 1);
      norm->bias.set_data(torch::randn({c}) * 0.1);
      torch::Tensor x = torch::randn({rows, c}, options.dtype(torch::kFloat)) * 3;
      torch::Tensor y = with_sum ? torch::randn({rows, c}, options.dtype(torch::kFloat)) + 0.5 : torch::Tensor();
      torch::Tensor xd = x.to(dtype), yd = with_sum ? y.to(dtype) : torch::Tensor();
      norm->to(torch::kCUDA, torch::kFloat);
      sf::SetFusedKernelsEnabled(false);
      // The reference normalises the stream as stored (rounded to dtype), like the model does.
      torch::Tensor stream = with_sum ? (xd + yd) : xd;
      torch::Tensor reference = sf::AddLayerNorm(stream.to(torch::kFloat), {}, norm).normed.values;
      norm->to(torch::kCUDA, dtype);
      sf::SetFusedKernelsEnabled(true);
      const bool stream_exact = sf::AddLayerNorm(xd, yd, norm).stream.equal(stream);
      auto fn = [&] { return sf::AddLayerNorm(xd, yd, norm).normed.values; };
      char name[128];
      std::snprintf(name, sizeof(name), "%sLayerNorm %ldx%ld%s", with_sum ? "add+" : "", rows, c,
                    stream_exact ? "" : " (SUM DIFFERS)");
      all_ok &= stream_exact && Report(name, dtype, fn, fn, reference, {rows, c}, reps, tol);
    }
    // ResnetBlock output: residual + convolution output + the convolution's bias.
    for (auto [n, c, hw, cl] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool>>{
             {2, 320, 128 * 128, false}, {16, 640, 64 * 64, false}, {16, 640, 64 * 64, true}}) {
      torch::Tensor a = torch::randn({n, c, hw / 64, 64}, options.dtype(torch::kFloat));
      torch::Tensor b = torch::randn({n, c, hw / 64, 64}, options.dtype(torch::kFloat));
      torch::Tensor bias = torch::randn({c}, options.dtype(torch::kFloat));
      sf::SetFusedKernelsEnabled(false);
      torch::Tensor reference = sf::AddChannelBias(a, b, bias);
      const auto format = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
      torch::Tensor ad = a.to(dtype).contiguous(format), bd = b.to(dtype).contiguous(format), biasd = bias.to(dtype);
      auto fn = [&] { return sf::AddChannelBias(ad, bd, biasd); };
      char name[128];
      std::snprintf(name, sizeof(name), "residual+bias %ldx%ldx%ld%s", n, c, hw, cl ? " NHWC" : "");
      all_ok &= Report(name, dtype, fn, fn, reference, a.sizes(), reps, tol);
    }
  }
#if SPRITEFORGE_HAS_SDPA
  for (torch::ScalarType dtype : dtypes) {
    const double tol = dtype == torch::kHalf ? 2e-3 : 1.5e-2;
    auto options = torch::TensorOptions().dtype(torch::kFloat).device(torch::kCUDA);
    // The VAE's paths around stock kernels ("fused" = the engine's, "stock" = ATen's): its one
    // 512-wide attention head as two GEMMs and a softmax, and NHWC nearest-neighbour doubling.
    torch::Tensor q = torch::randn({1, 1, 16384, 512}, options), k = torch::randn({1, 1, 16384, 512}, options);
    torch::Tensor v = torch::randn({1, 1, 16384, 512}, options);
    torch::Tensor reference = at::scaled_dot_product_attention(q, k, v);
    torch::Tensor qd = q.to(dtype), kd = k.to(dtype), vd = v.to(dtype);
    all_ok &= Report("attention 1x16384x512, one head", dtype, [&] { return sf::compat::Attention(qd, kd, vd, false); },
                     [&] { return at::scaled_dot_product_attention(qd, kd, vd); }, reference, q.sizes(), reps, tol);
    namespace F = torch::nn::functional;
    const auto twice = F::InterpolateFuncOptions().mode(torch::kNearest).scale_factor(std::vector<double>{2.0, 2.0});
    torch::Tensor x = torch::randn({1, 256, 512, 512}, options);
    torch::Tensor xd = x.to(dtype).contiguous(at::MemoryFormat::ChannelsLast);
    all_ok &= Report("nearest 2x 1x256x512x512 NHWC", dtype, [&] { return sf::UpsampleNearest2x(xd); },
                     [&] { return F::interpolate(xd, twice); }, F::interpolate(x, twice), {1, 256, 1024, 1024}, reps, tol);
  }
#endif
  sf::SetFusedKernelsEnabled(true);
  all_ok &= CheckFp8(reps);
  std::printf("%s\n", all_ok ? "all fused kernels match" : "FUSED KERNEL MISMATCH");
  return all_ok ? 0 : 1;
}
