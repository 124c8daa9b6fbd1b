// spriteforge-unet-profile: where one guided SDXL-base UNet step spends its GPU time. Builds
// the full-size UNet with random weights, warms up, then records one forward pass (batch
// 2 x images, as classifier-free guidance runs it) with the Kineto profiler and prints GPU
// kernel time by category (GEMM, convolution, attention, norms, elementwise, copies) and the
// costliest kernels. CUDA graphs are off here so every kernel is visible. --vae 1 profiles
// the VAE decoder instead: one decode call of --images latents.
//
//   spriteforge-unet-profile [--images 8] [--size 1024] [--dtype fp16|bf16]
//                            [--channels-last 1|0] [--fused-kernels 0|1] [--top 25] [--vae 0|1]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "worker/engine/base/model_config.h"
#include "worker/engine/bench/unet_inputs.h"
#include "worker/engine/src/fused_ops.h"
#include "worker/engine/src/layers.h"
#include "worker/engine/src/unet.h"
#include "worker/engine/src/vae.h"

namespace sf = spriteforge::engine;
namespace prof = torch::autograd::profiler;

namespace {

struct KernelTotal {
  double ms = 0;
  int calls = 0;
};

// Coarse buckets by kernel name; the names come from cuBLAS/cuDNN/flash/ATen and ours.
std::string Category(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("flash") || has("fmha") || has("attention") || has("Attention")) return "attention";
  if (has("conv") || has("Conv") || has("implicit_gemm") || has("xmma_fprop") || has("cudnn") ||
      has("nhwc") || has("nchw"))
    return "convolution";
  if (has("gemm") || has("Gemm") || has("cutlass") || has("sm90") || has("ampere") || has("nvjet")) return "gemm";
  if (has("group_norm") || has("GroupNorm") || has("groupnorm")) return "group norm";
  if (has("layer_norm") || has("LayerNorm")) return "layer norm";
  if (has("spriteforge")) return "fused (ours)";
  if (has("copy") || has("Copy") || has("cat") || has("CatArray")) return "copy/cat";
  if (has("elementwise") || has("vectorized") || has("Elementwise")) return "elementwise";
  if (has("reduce") || has("Reduce")) return "reduction";
  return "other";
}

std::string ShapesText(const prof::KinetoEvent& e) {
  std::string text;
  if (!e.hasShapes()) return text;
  for (const auto& shape : e.shapes()) {
    if (shape.empty()) continue;
    text += text.empty() ? "[" : " [";
    for (size_t i = 0; i < shape.size(); ++i) text += (i ? "," : "") + std::to_string(shape[i]);
    text += "]";
  }
  return text;
}

double DurationMs(const prof::KinetoEvent& e) {
#if TORCH_VERSION_MAJOR >= 2
  return e.durationNs() / 1e6;
#else
  return e.durationUs() / 1e3;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  int images = 8, size = 1024, top = 25;
  bool channels_last = true, fused = true, vae = false;
  torch::ScalarType dtype = torch::kHalf;
  bool fp8 = false;  // --dtype fp8: bf16 with fp8 Linears
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--images") images = std::atoi(value.c_str());
    else if (flag == "--size") size = std::atoi(value.c_str());
    else if (flag == "--top") top = std::atoi(value.c_str());
    else if (flag == "--channels-last") channels_last = value != "0";
    else if (flag == "--fused-kernels") fused = value != "0";
    else if (flag == "--vae") vae = value != "0";
    else if (flag == "--dtype") {
      dtype = value == "fp16" ? torch::kHalf : torch::kBFloat16;
      fp8 = value == "fp8";
    }
    else {
      std::fprintf(stderr, "spriteforge-unet-profile: error: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (!torch::cuda::is_available()) {
    std::fprintf(stderr, "spriteforge-unet-profile: error: needs a CUDA device\n");
    return 2;
  }
  torch::NoGradGuard no_grad;
  at::globalContext().setBenchmarkCuDNN(true);
  sf::SetFusedKernelsEnabled(fused);
  const auto memory_format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  auto options = torch::TensorOptions().device(torch::kCUDA).dtype(dtype);
  std::function<torch::Tensor()> step;
  int64_t batch = images;
  if (vae) {
    sf::Vae decoder(sf::SdxlBaseConfig().vae);
    decoder->eval();
    decoder->to(torch::kCUDA, dtype);
    if (channels_last) sf::ToChannelsLast(*decoder);
    const torch::Tensor z = torch::randn({images, 4, size / 8, size / 8}, options).contiguous(memory_format);
    step = [decoder, z]() mutable { return decoder->decode(z); };
  } else {
    const sf::UNetConfig config = sf::SdxlBaseConfig().unet;
    sf::UNet unet(config);
    unet->eval();
    unet->to(torch::kCUDA, dtype);
    if (fp8) sf::QuantizeLinearsToFp8(*unet);
    if (channels_last) sf::ToChannelsLast(*unet);
    batch = 2 * images;
    const sf::UNetInputs in = sf::RandomUNetInputs(config, batch, size, options);
    const torch::Tensor sample = in.sample.contiguous(memory_format);
    torch::Tensor timestep = torch::full({batch}, 500.0, options.dtype(torch::kFloat));
    // As the pipeline runs it: fused self-attention projections, the prompts' cross-attention
    // keys and values projected once outside the step.
    unet->FuseSelfAttentionProjections();
    const torch::Tensor context_kv = unet->CrossAttentionKV(in.context);
    step = [unet, sample, timestep, context_kv, in]() mutable {
      return unet->ForwardWithKV(sample, timestep, context_kv, in.pooled, in.time_ids);
    };
  }
  for (int i = 0; i < 3; ++i) step();
  torch::cuda::synchronize();

  const prof::ProfilerConfig profiler_config(torch::profiler::impl::ProfilerState::KINETO,
                                            /*report_input_shapes=*/true);
  const std::set<prof::ActivityType> activities{prof::ActivityType::CPU, prof::ActivityType::CUDA};
  prof::prepareProfiler(profiler_config, activities);
  prof::enableProfiler(profiler_config, activities);
  step();
  torch::cuda::synchronize();
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();

  // A kernel's linked correlation id names the ATen op that launched it.
  std::map<uint64_t, std::string> op_of;
  for (const auto& e : result->events()) {
    if (e.deviceType() == c10::DeviceType::CPU) op_of[e.correlationId()] = e.name() + " " + ShapesText(e);
  }
  std::map<std::string, KernelTotal> by_kernel, by_category, by_op;
  double total = 0;
  for (const auto& e : result->events()) {
    if (e.deviceType() != c10::DeviceType::CUDA) continue;
    const double ms = DurationMs(e);
    const std::string name = e.name();
    by_kernel[name].ms += ms;
    by_kernel[name].calls += 1;
    by_category[Category(name)].ms += ms;
    by_category[Category(name)].calls += 1;
    auto op = op_of.find(e.linkedCorrelationId());
    const std::string op_key = (op == op_of.end() ? std::string("?") : op->second) + " -> " + Category(name);
    by_op[op_key].ms += ms;
    by_op[op_key].calls += 1;
    total += ms;
  }
  std::printf("%s, batch %lld at %dx%d, %s, channels-last %d, fused kernels %d: GPU time %.2f ms\n",
              vae ? "VAE decode" : "UNet forward", static_cast<long long>(batch), size, size, fp8 ? "fp8" : dtype == torch::kHalf ? "fp16" : "bf16", channels_last ? 1 : 0,
              fused ? 1 : 0, total);
  auto print_sorted = [&](const std::map<std::string, KernelTotal>& m, int limit, size_t width) {
    std::vector<std::pair<std::string, KernelTotal>> rows(m.begin(), m.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
    for (int i = 0; i < limit && i < static_cast<int>(rows.size()); ++i) {
      std::printf("  %8.2f ms %5.1f%% %5d calls  %s\n", rows[i].second.ms, 100 * rows[i].second.ms / total,
                  rows[i].second.calls, rows[i].first.substr(0, width).c_str());
    }
  };
  std::printf("by category:\n");
  print_sorted(by_category, 20, 40);
  std::printf("costliest kernels:\n");
  print_sorted(by_kernel, top, 150);
  std::printf("costliest ops (launching ATen op, input shapes -> kernel category):\n");
  print_sorted(by_op, top, 150);
  return 0;
}
