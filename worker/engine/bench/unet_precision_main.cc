// spriteforge-unet-precision: how far the reduced-precision UNet drifts from float32 on the
// full SDXL-base architecture. One random-weight UNet (fixed seed, weights in a sane range)
// runs the same guided-batch inputs in fp32 and in fp16/bf16/fp8 (bf16 with fp8 Linears) on
// the GPU; prints
// ||reduced - fp32|| / ||fp32|| per timestep.
//
//   spriteforge-unet-precision [--device cuda] [--size 1024] [--batch 2]
#include <cstdio>
#include <cstdlib>
#include <string>

#include <torch/torch.h>

#include "worker/engine/base/model_config.h"
#include "worker/engine/bench/unet_inputs.h"
#include "worker/engine/src/fused_ops.h"
#include "worker/engine/src/layers.h"
#include "worker/engine/src/unet.h"

namespace sf = spriteforge::engine;

int main(int argc, char** argv) {
  std::string device_name = "cuda";
  int size = 1024, batch = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--device") device_name = value;
    else if (flag == "--size") size = std::atoi(value.c_str());
    else if (flag == "--batch") batch = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "spriteforge-unet-precision: error: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const torch::Device device(device_name);
  const sf::UNetConfig config = sf::SdxlBaseConfig().unet;
  sf::UNet reference(config);
  reference->eval();
  reference->to(device, torch::kFloat);
  auto f32 = torch::TensorOptions().device(device).dtype(torch::kFloat);
  const auto [sample, context, pooled, time_ids] = sf::RandomUNetInputs(config, batch, size, f32);
  at::globalContext().setAllowTF32CuDNN(false);
  struct Variant {
    const char* name;
    torch::ScalarType dtype;
    bool fp8;
  };
  for (const Variant& v : {Variant{"fp16", torch::kHalf, false}, Variant{"bf16", torch::kBFloat16, false},
                           Variant{"fp8", torch::kBFloat16, true}}) {
    if (v.fp8 && !sf::Fp8Unsupported(device).empty()) {
      std::printf("fp8: skipped (%s)\n", sf::Fp8Unsupported(device).c_str());
      continue;
    }
    const char* name = v.name;
    const torch::ScalarType dtype = v.dtype;
    sf::UNet reduced(config);
    reduced->eval();
    auto src = reference->named_parameters(true);
    for (auto& p : reduced->named_parameters(true)) p.value().copy_(src[p.key()].cpu());
    reduced->to(device, dtype);
    if (v.fp8) sf::QuantizeLinearsToFp8(*reduced);
    for (double t : {961.0, 501.0, 1.0}) {
      torch::Tensor timestep = torch::full({1}, t, f32);
      torch::Tensor want = reference->forward(sample, timestep, context, pooled, time_ids);
      torch::Tensor got = reduced->forward(sample.to(dtype), timestep, context.to(dtype), pooled.to(dtype),
                                           time_ids.to(dtype)).to(torch::kFloat);
      double rel = ((got - want).norm() / want.norm()).item<double>();
      std::printf("%s t=%4.0f  relative L2 error vs fp32: %.3g  (output rms %.3g, finite %d)\n", name, t, rel,
                  want.pow(2).mean().sqrt().item<double>(), torch::isfinite(got).all().item<bool>() ? 1 : 0);
    }
  }
  return 0;
}
