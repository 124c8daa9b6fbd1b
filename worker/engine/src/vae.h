// SDXL's AutoencoderKL, named like the diffusers checkpoint: encoder, quant_conv,
// post_quant_conv, decoder (conv_in, mid_block, up_blocks, conv_norm_out, conv_out).
#pragma once

#include <torch/torch.h>

#include "worker/engine/base/model_config.h"
#include "worker/engine/src/layers.h"

namespace spriteforge::engine {

class VaeImpl : public torch::nn::Module {
 public:
  explicit VaeImpl(const VaeConfig& config);

  // z: latents already divided by the scaling factor, [B,4,h,w] -> image in about [-1,1].
  torch::Tensor decode(const torch::Tensor& z);
  // image [B,3,H,W] in [-1,1] -> mean of the latent distribution (not yet scaled).
  torch::Tensor encode(const torch::Tensor& image);
  // The same with the distribution's log-variance (unclamped): {mean, logvar}.
  std::pair<torch::Tensor, torch::Tensor> encode_distribution(const torch::Tensor& image);

  const VaeConfig& config() const { return config_; }
  void set_tiling(bool on) { *tiling_ = on; }

 private:
  struct Coder;
  VaeConfig config_;
  TilingFlag tiling_ = std::make_shared<bool>(false);
  std::shared_ptr<Coder> encoder_, decoder_;
  Conv2d quant_conv_{nullptr}, post_quant_conv_{nullptr};
};
TORCH_MODULE(Vae);

}  // namespace spriteforge::engine
