// The one mapping between the original single-file SDXL key layout
// (sd_xl_base_1.0.safetensors) and the diffusers names the engine's modules use.
#pragma once

#include <string>
#include <vector>

#include "worker/engine/base/model_config.h"

namespace spriteforge::engine {

enum class Component { kTextEncoder, kTextEncoder2, kUNet, kVae };
const char* ComponentFolder(Component c);  // "text_encoder", "text_encoder_2", "unet", "vae"

// How a stored tensor becomes a module parameter.
enum class Transform {
  kNone,
  kSliceQ, kSliceK, kSliceV,  // thirds of OpenCLIP's fused attn.in_proj_{weight,bias}
  kTranspose,                 // OpenCLIP's text_projection is stored [in, out]
  kSqueezeConv,               // the VAE's 1x1-conv attention weights [C,C,1,1] -> linear [C,C]
};

struct MappedKey {
  Component component;
  std::string name;  // diffusers name inside the component
  Transform transform = Transform::kNone;
};

// Maps one original-layout key. Returns no entries for tensors the pipeline does not use
// (position_ids, logit_scale, ...), and several for fused tensors.
std::vector<MappedKey> MapOriginalKey(const std::string& key, const SdxlConfig& config);

}  // namespace spriteforge::engine
