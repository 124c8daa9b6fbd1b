// SDXL's UNet2DConditionModel with text_time conditioning, configured by UNetConfig and
// named like the diffusers checkpoint (conv_in, time_embedding, add_embedding,
// down_blocks, mid_block, up_blocks, conv_norm_out, conv_out).
#pragma once

#include <torch/torch.h>

#include "worker/engine/base/model_config.h"
#include "worker/engine/src/layers.h"
#include "worker/engine/src/unet_encoder.h"

namespace spriteforge::engine {

struct AttentionBlock;
struct CrossContext;

// What a UNet call takes beyond the text: conditioning from other models, each part
// optional (an empty or undefined field changes nothing).
struct UNetConditioning {
  // ControlNet residuals (already times their scale and summed over ControlNets): one per
  // skip connection in the order the down path makes them (conv_in's output, then every
  // resnet/attention and downsampler output), added to the skips before the up path reads
  // them; and one added to the mid block's output.
  std::vector<torch::Tensor> down_residuals;
  torch::Tensor mid_residual;
  // IP-Adapter: every cross-attention block's keys and values of the image tokens, flat in
  // the layout of CrossAttentionKV (IpAdapter::BatchKV), and their weight, a [1] tensor in
  // the model dtype (a tensor, so a captured CUDA graph reads it as an input). Each
  // cross-attention adds ip_scale * attention to the image tokens to its text attention.
  torch::Tensor ip_kv;
  torch::Tensor ip_scale;
  // Deep cache (BatchRequest::deep_cache): a full pass stores the last up level's input in
  // *keep_deep; with reuse_deep set, only conv_in, the first down level and the last up
  // level run, from that input (no ControlNet residuals then).
  torch::Tensor* keep_deep = nullptr;
  torch::Tensor reuse_deep;
};

class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetConfig& config);

  // sample [B,4,h,w], timestep [B] (float), context [B,77,C], text_embeds [B,P] (pooled),
  // time_ids [B,6]. Returns the predicted noise, shaped like sample.
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                        const torch::Tensor& context, const torch::Tensor& text_embeds,
                        const torch::Tensor& time_ids, const UNetConditioning& conditioning = {});

  // The keys and values of every cross-attention block for `context` [B,77,C], as one flat
  // tensor: they depend on the prompt only, so a generation computes them once and each
  // step passes them to ForwardWithKV instead of projecting the context again.
  torch::Tensor CrossAttentionKV(const torch::Tensor& context);
  torch::Tensor ForwardWithKV(const torch::Tensor& sample, const torch::Tensor& timestep,
                              const torch::Tensor& kv, const torch::Tensor& text_embeds,
                              const torch::Tensor& time_ids, const UNetConditioning& conditioning = {});

  // Self-attention's q/k/v projections as one GEMM per block (AttentionBlock::FuseProjections).
  void FuseSelfAttentionProjections();

  void set_tiling(bool on) { *tiling_ = on; }

 private:
  torch::Tensor Forward(const torch::Tensor& sample, const torch::Tensor& timestep, const CrossContext& context,
                        const torch::Tensor& text_embeds, const torch::Tensor& time_ids,
                        const UNetConditioning& conditioning);
  std::vector<AttentionBlock*> self_attention_, cross_attention_;  // owned by the module tree
  UNetConfig config_;
  TilingFlag tiling_ = std::make_shared<bool>(false);
  Conv2d conv_in_{nullptr}, conv_out_{nullptr};
  ConditioningEmbedding embedding_;
  UNetDownPath down_;
  std::vector<std::shared_ptr<UNetLevel>> up_;
  torch::nn::GroupNorm conv_norm_out_{nullptr};
};
TORCH_MODULE(UNet);

}  // namespace spriteforge::engine
