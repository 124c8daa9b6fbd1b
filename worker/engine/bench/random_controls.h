// ControlNets, an IP-Adapter Plus and its CLIP vision encoder of random values, in the files
// and layouts the real ones come in, for a model architecture the engine builds with random
// weights ("builtin:sdxl-base", "builtin:tiny"). Speed and memory do not depend on weight
// values, so the benchmark and the service check measure with these as with downloaded
// files; nothing this large needs to be stored or fetched.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace spriteforge::bench {

// What WriteRandomControls puts under its folder, named like the models whose shapes they
// have. The ControlNet folders are a worker's --controlnet-dir entries, the adapter and the
// encoder folder its --ip-adapter-dir entries.
inline constexpr char kControlNetDir[] = "controlnet";
// diffusers/controlnet-canny-sdxl-1.0: the UNet's down path and mid block, transformer
// depths [1, 2, 10] (2.5 GB in fp16 for SDXL).
inline constexpr char kFullControlNet[] = "controlnet-canny-sdxl-1.0";
// diffusers/controlnet-canny-sdxl-1.0-small: its resnets without transformer blocks
// (DownBlock2D x 3, transformer_layers_per_block [0, 0, 0]; 320 MB in fp16 for SDXL).
inline constexpr char kSmallControlNet[] = "controlnet-canny-sdxl-1.0-small";
inline constexpr char kIpAdapterDir[] = "ip-adapter";
// h94/IP-Adapter sdxl_models/ip-adapter-plus_sdxl_vit-h: a perceiver resampler (width 1280,
// depth 4, 20 heads of 64, 16 tokens) over ViT-H's penultimate hidden states.
inline constexpr char kIpAdapterPlus[] = "ip-adapter-plus_sdxl_vit-h";
// h94/IP-Adapter models/image_encoder: CLIPVisionModelWithProjection ViT-H/14.
inline constexpr char kImageEncoder[] = "image_encoder";

// Writes the four models for `model`'s architecture under `dir` in fp16 (Linear and
// convolution weights uniform in +-1/sqrt(fan_in) as the engine's random models have them,
// norms 1, biases 0), then `dir`/complete.json. A folder already complete for `model` is
// kept as it is. Returns the bytes of weights under `dir`.
absl::StatusOr<uint64_t> WriteRandomControls(const std::string& dir, const std::string& model, uint64_t seed);

}  // namespace spriteforge::bench
