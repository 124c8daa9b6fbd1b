// Checks that a --model path holds an SDXL checkpoint of the configured architecture before
// any module is allocated: a text file, a truncated download, an empty folder or a tiny model
// loaded with SDXL base's configuration is refused in milliseconds with one line naming the
// file and what is wrong, instead of building a full-size model first. Reads headers only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine/base/key_mapping.h"
#include "worker/engine/base/model_config.h"

namespace spriteforge::engine {

// One tensor the architecture must have, in both layouts: `original` in the single-file key
// layout with its stored shape, `diffusers` inside `component`'s folder with its own shape.
// An empty shape means "must be absent" (one past the last layer: the layer counts match).
struct ExpectedTensor {
  Component component;
  std::string original;
  std::vector<int64_t> original_shape;
  std::string diffusers;
  std::vector<int64_t> diffusers_shape;
  bool absent = false;
};

// The characteristic tensors of `config`: each component's input and output convolutions or
// embeddings, the first and last attention projections of every level, and the layer counts.
std::vector<ExpectedTensor> CharacteristicTensors(const SdxlConfig& config);

// diffusers names weights diffusion_pytorch_model.safetensors (unet, vae) or
// model.safetensors (text encoders), sometimes with a .fp16 variant.
absl::StatusOr<std::string> DiffusersComponentFile(const std::string& dir, Component c);

// Checks `model_path` (a single .safetensors file or a diffusers folder) against `config`.
absl::Status CheckCheckpoint(const std::string& model_path, const SdxlConfig& config);

}  // namespace spriteforge::engine
