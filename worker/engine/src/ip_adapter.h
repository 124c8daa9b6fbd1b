// IP-Adapter for SDXL in h94's file layout: an image projection (plain: image_proj.proj +
// image_proj.norm; Plus: a perceiver resampler, image_proj.latents/proj_in/layers/proj_out/
// norm_out) that turns the CLIP vision encoder's output into image tokens, and per UNet
// cross-attention layer the keys and values of those tokens (ip_adapter.N.to_k_ip/to_v_ip,
// N = 1, 3, 5, ... over diffusers' attention layers: down blocks, up blocks, mid block).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "spriteforge/engine/engine.h"
#include "worker/engine/src/clip_vision_encoder.h"
#include "worker/engine/src/unet.h"

namespace spriteforge::engine {

class IpAdapter {
 public:
  // Reads the encoder folder and the adapter file, checks them against each other and
  // against `unet` (every error names the file and the tensor or config field), then builds
  // both on `device` in `dtype`.
  static absl::StatusOr<std::unique_ptr<IpAdapter>> Load(const IpAdapterSpec& spec, UNetImpl& unet,
                                                         const torch::Device& device, torch::ScalarType dtype);
  ~IpAdapter();

  // The image keys and values a batch's cross-attention reads, in the flat layout of
  // UNetImpl::CrossAttentionKV: per image its reference images' tokens side by side; with
  // `guided`, the unconditional rows first (as the text context has them). Every image
  // must have the same number of reference images (ValidateRequest).
  torch::Tensor BatchKV(const std::vector<ImageRequest>& images, bool guided);

  // The parts, for tests: the encoder, and the image tokens [B, T, cross_attention_dim] of
  // its output (image_embeds for plain adapters, the penultimate hidden states for Plus).
  bool plus() const { return plus_; }
  ClipVisionEncoderImpl& encoder() { return *encoder_; }
  torch::Tensor Tokens(const ClipVisionOutput& encoded);

 private:
  struct Projection;
  IpAdapter() = default;
  torch::Tensor ImageKV(const torch::Tensor& tokens);
  torch::Tensor UnconditionalTokens();

  bool plus_ = false;
  torch::Device device_ = torch::kCPU;
  torch::ScalarType dtype_ = torch::kFloat;
  ClipVisionEncoder encoder_{nullptr};
  std::shared_ptr<Projection> projection_;
  // to_k_ip / to_v_ip in the UNet's cross-attention order (UNetImpl's attn2 blocks).
  std::vector<Linear> to_k_, to_v_;
};

// The IP-Adapter of the last batch that asked for one, kept while the request names the
// same files, unchanged on disk.
class IpAdapterCache {
 public:
  absl::StatusOr<IpAdapter*> Get(const IpAdapterSpec& spec, UNetImpl& unet, const torch::Device& device,
                                 torch::ScalarType dtype);

 private:
  std::string key_;
  std::unique_ptr<IpAdapter> adapter_;
};

}  // namespace spriteforge::engine
