// ControlNets in the diffusers layout (ControlNetModel: config.json +
// diffusion_pytorch_model.safetensors): their configuration, and the checks that a file is a
// ControlNet that fits the loaded UNet, made on the config and the safetensors header before
// any module is allocated. Errors are one line naming the file and the field or tensor.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine/base/model_config.h"

namespace spriteforge::engine {

class SafetensorsFile;

struct ControlNetConfig {
  // The encoder: a copy of the UNet's down path and mid block, configured by the fields of
  // the same names (in_channels, block_out_channels, down_block_types, layers_per_block,
  // attention_head_dim or num_attention_heads, transformer_layers_per_block, ...). Full,
  // "mid" and "small" SDXL ControlNets differ only in these.
  UNetConfig encoder;
  std::vector<int> conditioning_embedding_out_channels = {16, 32, 96, 256};
  int conditioning_channels = 3;
  bool bgr = false;                     // controlnet_conditioning_channel_order "bgr"
  bool global_pool_conditions = false;  // residuals averaged over the image (shuffle-style models)

  // The residuals, one per UNet skip connection: conv_in's, then each level's resnets and
  // its downsampler (none after the last level). Their channel counts, in that order.
  std::vector<int> ResidualChannels() const;
};

// Parses a ControlNetModel config.json text. Refuses other model classes (a UNet's or VAE's
// config, ControlNet-XS, union models) and settings this engine does not implement.
absl::StatusOr<ControlNetConfig> ParseControlNetConfig(const std::string& json, const std::string& file);

// A ControlNet's two files: `model_path` is the folder holding them, or the .safetensors
// file with config.json beside it.
struct ControlNetFiles {
  std::string config;
  std::string weights;
};
absl::StatusOr<ControlNetFiles> FindControlNetFiles(const std::string& model_path);

// The residuals must match the UNet's skips (channels per level, layers per block), and the
// ControlNet must read the same text context and pooled/time-id embedding.
absl::Status CheckControlNetFitsUNet(const ControlNetConfig& config, const UNetConfig& unet, const std::string& file);

// The characteristic tensors of `config` in `weights` (names, shapes, floating point).
absl::Status CheckControlNetWeights(const SafetensorsFile& weights, const ControlNetConfig& config);

// All of the above for `model_path`; returns its config.
absl::StatusOr<ControlNetConfig> CheckControlNet(const std::string& model_path, const UNetConfig& unet);

}  // namespace spriteforge::engine
