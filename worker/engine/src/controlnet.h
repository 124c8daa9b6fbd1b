// SDXL ControlNets (diffusers' ControlNetModel): a copy of the UNet's down path and mid
// block that also reads a control image and hands back one residual per UNet skip
// connection plus one for the mid block (UNetConditioning in src/unet.h). Built from the
// UNet's own embedding and down path (src/unet_encoder.h) and named like the checkpoint's keys (conv_in, time_embedding,
// add_embedding, controlnet_cond_embedding.*, down_blocks.*, mid_block.*,
// controlnet_down_blocks.N, controlnet_mid_block), so loading is a lookup.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "worker/engine/base/controlnet_config.h"
#include "worker/engine/src/layers.h"
#include "worker/engine/src/unet_encoder.h"

namespace spriteforge::engine {

struct AttentionBlock;
struct CrossContext;

class ControlNetImpl : public torch::nn::Module {
 public:
  explicit ControlNetImpl(const ControlNetConfig& config);

  struct Residuals {
    std::vector<torch::Tensor> down;  // one per UNet skip connection, in the UNet's order
    torch::Tensor mid;
  };

  // sample, timestep, context, text_embeds and time_ids exactly as the UNet gets them;
  // cond [B,3,H,W]: the control images as RGB in [0,1] at the image size. Residuals come
  // back times `scale`; in guess mode the down ones times scale * 10^(-1 + i/n) for the i-th
  // of n (0.1 rising towards 1: the deep ones count most) and the mid one times `scale`.
  Residuals forward(const torch::Tensor& sample, const torch::Tensor& timestep, const torch::Tensor& context,
                    const torch::Tensor& text_embeds, const torch::Tensor& time_ids, const torch::Tensor& cond,
                    double scale, bool guess_mode = false);
  // The same with what does not change between steps computed once per generation: the
  // context's cross-attention keys and values (as UNetImpl::CrossAttentionKV / ForwardWithKV
  // do) and the control images' embedding (controlnet_cond_embedding, at the image size:
  // the costliest part of a small ControlNet's step).
  torch::Tensor CrossAttentionKV(const torch::Tensor& context);
  torch::Tensor EmbedCondition(const torch::Tensor& cond);  // cond as forward's, in the sample's dtype
  Residuals ForwardWithKV(const torch::Tensor& sample, const torch::Tensor& timestep, const torch::Tensor& kv,
                          const torch::Tensor& text_embeds, const torch::Tensor& time_ids,
                          const torch::Tensor& cond_embedding, double scale, bool guess_mode = false);

  void FuseSelfAttentionProjections();
  void set_tiling(bool on) { *tiling_ = on; }
  const ControlNetConfig& config() const { return config_; }

 private:
  Residuals Forward(const torch::Tensor& sample, const torch::Tensor& timestep, const CrossContext& context,
                    const torch::Tensor& text_embeds, const torch::Tensor& time_ids,
                    const torch::Tensor& cond_embedding, double scale, bool guess_mode);

  ControlNetConfig config_;
  TilingFlag tiling_ = std::make_shared<bool>(false);
  std::vector<AttentionBlock*> self_attention_, cross_attention_;  // owned by the module tree
  Conv2d conv_in_{nullptr};
  ConditioningEmbedding embedding_;
  Conv2d cond_in_{nullptr}, cond_out_{nullptr};
  std::vector<Conv2d> cond_blocks_;
  UNetDownPath down_;
  std::vector<Conv2d> zero_convs_;  // controlnet_down_blocks
  Conv2d mid_zero_conv_{nullptr};   // controlnet_mid_block
};
TORCH_MODULE(ControlNet);

// Where and how loaded ControlNets run: as the UNet does (device, dtype, channels-last,
// fp8 Linears, fused self-attention projections).
struct ControlNetRunOptions {
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;
  bool channels_last = false;
  bool fp8_linear = false;
  bool fuse_projections = false;
};

// Checks (config and header first, before allocating), builds and loads `model_path` for a
// UNet of `unet`'s architecture, converted to the run dtype on the run device. `bytes`: its
// weights' device bytes.
absl::StatusOr<ControlNet> LoadControlNet(const std::string& model_path, const UNetConfig& unet,
                                          const ControlNetRunOptions& options, uint64_t* bytes = nullptr);

// Loaded ControlNets by path: a batch asks for its set; those the previous batch used stay
// loaded (reloaded when the file changed on disk), the others are freed first.
class ControlNetCache {
 public:
  ControlNetCache(UNetConfig unet, ControlNetRunOptions options) : unet_(std::move(unet)), options_(options) {}

  absl::StatusOr<std::vector<ControlNet>> Use(const std::vector<std::string>& paths);
  // Device bytes of the loaded ControlNets; safe to read from any thread.
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    ControlNet net{nullptr};
    uint64_t bytes = 0;
    int64_t size = 0, mtime = 0;
  };
  void Recount();

  UNetConfig unet_;
  ControlNetRunOptions options_;
  std::map<std::string, Entry> loaded_;
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace spriteforge::engine
