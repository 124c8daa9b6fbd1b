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

#include "src/fused_ops.h"

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
      {16, 2560, 32, 32, 32, true, true, true}, {16, 1280, 32, 32, 32, false, false, true}};
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
      torch::Tensor reference = sf::Geglu(p);
      torch::Tensor pd = p.to(dtype);
      auto fn = [&] { return sf::Geglu(pd); };
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
      torch::Tensor reference = sf::AddLayerNorm(stream.to(torch::kFloat), {}, norm).normed;
      norm->to(torch::kCUDA, dtype);
      sf::SetFusedKernelsEnabled(true);
      const bool stream_exact = sf::AddLayerNorm(xd, yd, norm).stream.equal(stream);
      auto fn = [&] { return sf::AddLayerNorm(xd, yd, norm).normed; };
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
  std::printf("%s\n", all_ok ? "all fused kernels match" : "FUSED KERNEL MISMATCH");
  return all_ok ? 0 : 1;
}
