// Loads SDXL weights into the engine's modules from a single-file checkpoint (original
// key layout) or a diffusers folder, converting any stored float dtype to float32 on the
// way in; the caller then moves the models to the run device and dtype.
#pragma once

#include <string>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "worker/engine/base/model_config.h"
#include "worker/engine/src/clip_text_encoder.h"
#include "worker/engine/src/unet.h"
#include "worker/engine/src/vae.h"

namespace spriteforge::engine {

struct SdxlModels {
  SdxlConfig config;
  ClipTextEncoder text_encoder{nullptr};
  ClipTextEncoder text_encoder_2{nullptr};
  UNet unet{nullptr};
  Vae vae{nullptr};
};

// Builds the modules for `config` with random weights (the benchmark and the built-in
// model use them as they are).
SdxlModels BuildSdxl(const SdxlConfig& config);

// The architecture of a checkpoint: a diffusers folder's own configs, or SDXL base for a
// single file; then `config_dir` (if not empty) overrides.
absl::StatusOr<SdxlConfig> ResolveConfig(const std::string& model_path, const std::string& config_dir);

// Copies every parameter from the checkpoint. Missing tensors and shape mismatches are
// errors naming the key and file; unused tensors are counted in one log line.
absl::Status LoadWeights(const std::string& model_path, SdxlModels& models);

}  // namespace spriteforge::engine
