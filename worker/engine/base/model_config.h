// SDXL architecture, as diffusers-style config.json files describe it. Field names mirror
// the JSON keys. Built-in defaults are SDXL base 1.0; a folder of */config.json overrides.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine/base/schedule.h"

namespace spriteforge::engine {

struct ClipTextConfig {
  int vocab_size = 49408;
  int hidden_size = 768;
  int intermediate_size = 3072;
  int num_hidden_layers = 12;
  int num_attention_heads = 12;
  int max_position_embeddings = 77;
  int projection_dim = 768;
  int eos_token_id = 49407;
  std::string hidden_act = "quick_gelu";  // quick_gelu | gelu
  double layer_norm_eps = 1e-5;
};

struct UNetConfig {
  int in_channels = 4;
  int out_channels = 4;
  std::vector<int> block_out_channels = {320, 640, 1280};
  std::vector<std::string> down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"};
  std::vector<std::string> up_block_types = {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"};
  int layers_per_block = 2;
  std::vector<int> attention_head_dim = {5, 10, 20};  // heads per level, as diffusers names it
  std::vector<int> transformer_layers_per_block = {1, 2, 10};
  int cross_attention_dim = 2048;
  bool use_linear_projection = true;
  int addition_time_embed_dim = 256;
  int projection_class_embeddings_input_dim = 2816;
  int norm_num_groups = 32;
  double norm_eps = 1e-5;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
};

struct VaeConfig {
  int in_channels = 3;
  int out_channels = 3;
  int latent_channels = 4;
  std::vector<int> block_out_channels = {128, 256, 512, 512};
  int layers_per_block = 2;
  int norm_num_groups = 32;
  double scaling_factor = 0.13025;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;
};

struct SdxlConfig {
  ClipTextConfig text_encoder;
  ClipTextConfig text_encoder_2;
  UNetConfig unet;
  VaeConfig vae;
  SchedulerConfig scheduler;
};

// SDXL base 1.0: CLIP ViT-L, OpenCLIP bigG, the 2.6 B-parameter UNet, the SDXL VAE.
SdxlConfig SdxlBaseConfig();

// The SDXL architecture at toy width (the golden test model's shape): 32-64 channels,
// three UNet levels. Renders a 128x128 image on a CPU in about a second.
SdxlConfig TinySdxlConfig();

// Overrides `base` with whatever of text_encoder/, text_encoder_2/, unet/, vae/ (config.json)
// and scheduler/ (scheduler_config.json) exist under `dir`. Errors name file and field.
absl::StatusOr<SdxlConfig> LoadSdxlConfig(const std::string& dir, SdxlConfig base);

// Parses one config.json text of each kind (exposed for tests and the built-in models).
absl::StatusOr<ClipTextConfig> ParseClipTextConfig(const std::string& json, const std::string& file);
absl::StatusOr<UNetConfig> ParseUNetConfig(const std::string& json, const std::string& file);
absl::StatusOr<VaeConfig> ParseVaeConfig(const std::string& json, const std::string& file);
absl::StatusOr<SchedulerConfig> ParseSchedulerConfig(const std::string& json, const std::string& file);

}  // namespace spriteforge::engine
