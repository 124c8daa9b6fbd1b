// CLIP's vision transformer with projection (transformers' CLIPVisionModelWithProjection,
// the image encoder of IP-Adapters), named like its checkpoint: vision_model.{embeddings,
// pre_layrnorm, encoder.layers.N, post_layernorm} and visual_projection. Also the image
// processor that prepares its input.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "spriteforge/engine/engine.h"
#include "worker/engine/base/safetensors.h"
#include "worker/engine/src/clip_text_encoder.h"

namespace spriteforge::engine {

// The fields of the folder's config.json the encoder uses.
struct ClipVisionConfig {
  int hidden_size = 1280;
  int intermediate_size = 5120;
  int num_hidden_layers = 32;
  int num_attention_heads = 16;
  int num_channels = 3;
  int image_size = 224;
  int patch_size = 14;
  int projection_dim = 1024;
  std::string hidden_act = "gelu";  // gelu (ViT-H, bigG) | quick_gelu
  double layer_norm_eps = 1e-5;
};

// `<dir>/config.json`, with one-line errors naming the field that is missing or unusable.
absl::StatusOr<ClipVisionConfig> LoadClipVisionConfig(const std::string& dir);

// Tensor names and shapes a checkpoint of `config` must hold (safetensors keys).
using ExpectedTensors = std::map<std::string, std::vector<int64_t>>;
ExpectedTensors ClipVisionTensors(const ClipVisionConfig& config);

// Every expected tensor is in `file`, floating point and of its shape; the error names the
// tensor and the file. Checked before any model is allocated.
absl::Status CheckTensors(const SafetensorsFile& file, const ExpectedTensors& expected);
// Copies every parameter of `module` from the tensor of the same name (as float32).
void CopyParameters(torch::nn::Module& module, const SafetensorsFile& file);

struct ClipVisionOutput {
  torch::Tensor image_embeds;  // [B, projection_dim]: visual_projection(post_layernorm(CLS))
  torch::Tensor penultimate;   // [B, patches + 1, hidden]: hidden_states[-2], the last layer's input
};

class ClipVisionEncoderImpl : public torch::nn::Module {
 public:
  explicit ClipVisionEncoderImpl(const ClipVisionConfig& config);
  // pixels: [B, 3, image_size, image_size], normalised (ClipPixels).
  ClipVisionOutput forward(const torch::Tensor& pixels);
  const ClipVisionConfig& config() const { return config_; }

 private:
  ClipVisionConfig config_;
  torch::Tensor class_embedding_, patch_weight_, position_weight_;
  torch::nn::LayerNorm pre_layrnorm_{nullptr}, post_layernorm_{nullptr};
  std::vector<std::shared_ptr<ClipLayer>> layers_;
  Linear visual_projection_{nullptr};
};
TORCH_MODULE(ClipVisionEncoder);

// The folder (config.json + model.safetensors) as a float32 model on the CPU; the folder
// is checked whole before the model is built.
absl::StatusOr<ClipVisionEncoder> LoadClipVisionEncoder(const std::string& dir);

// CLIPImageProcessor's pixels for one image: the shortest side resized to `size` (PIL's
// antialiased bicubic; an image already `size` wide and high is not resampled), a centred
// size x size crop, scaled to [0,1] and normalised with CLIP's mean and std. [1,3,size,size]
// float32 on the CPU.
torch::Tensor ClipPixels(const RgbImage& image, int size);

}  // namespace spriteforge::engine
