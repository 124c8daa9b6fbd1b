// The part of SDXL's UNet that ControlNets copy: the timestep and text_time embedding, and
// the down path with the mid block. UNetImpl and ControlNetImpl both own one of each,
// registered under the checkpoint's names (time_embedding, add_embedding, down_blocks,
// mid_block), so both load by lookup and run the same code.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "worker/engine/base/model_config.h"
#include "worker/engine/src/unet_blocks.h"

namespace spriteforge::engine {

// One resolution level: resnets, optional transformers after each, optional resampler.
struct UNetLevel {
  std::vector<std::shared_ptr<ResnetBlock>> resnets;
  std::vector<std::shared_ptr<SpatialTransformer>> attentions;
  std::shared_ptr<Downsample> downsampler;
  std::shared_ptr<Upsample> upsampler;
};

// Whether a block type (down_block_types, up_block_types) has transformers.
inline bool HasCrossAttention(const std::string& type) { return type.rfind("CrossAttn", 0) == 0; }

// Width of the timestep embedding every resnet reads.
inline int64_t TimeEmbeddingChannels(const UNetConfig& c) { return c.block_out_channels[0] * 4; }

// The spatial transformer of `level` at `channels`.
std::shared_ptr<SpatialTransformer> MakeTransformer(const UNetConfig& c, int64_t channels, int64_t level);

// time_embedding (the timestep) plus add_embedding (SDXL's text_time: pooled text embeds and
// the six size/crop ids): the embedding the resnets read.
struct ConditioningEmbedding {
  ConditioningEmbedding() = default;
  // Registers time_embedding.linear_{1,2} and add_embedding.linear_{1,2} on `parent`.
  ConditioningEmbedding(torch::nn::Module& parent, const UNetConfig& c);
  // timestep [B] or [1], text_embeds [B,P], time_ids [B,6]; the result is in `dtype`.
  torch::Tensor operator()(const torch::Tensor& timestep, const torch::Tensor& text_embeds,
                           const torch::Tensor& time_ids, int64_t batch, torch::ScalarType dtype);

  int64_t time_channels = 0, addition_time_embed_dim = 0;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  Linear time_linear_1{nullptr}, time_linear_2{nullptr};
  Linear add_linear_1{nullptr}, add_linear_2{nullptr};
};

// down_blocks.* and mid_block.*.
struct UNetDownPath {
  UNetDownPath() = default;
  // Registers down_blocks and mid_block on `parent`.
  UNetDownPath(torch::nn::Module& parent, const UNetConfig& c, const TilingFlag& tiling);
  // x: conv_in's output. Appends every skip connection to `skips` in the order the up path
  // reads them backwards (x itself, then each resnet/attention and downsampler output) and
  // returns the mid block's output.
  torch::Tensor operator()(torch::Tensor x, const torch::Tensor& emb, const CrossContext& context,
                           std::vector<torch::Tensor>& skips);
  // Only the skips the UNet's last up level reads: x, then the first level's resnet/attention
  // outputs (deep cache's shallow pass).
  void FirstLevel(torch::Tensor x, const torch::Tensor& emb, const CrossContext& context,
                  std::vector<torch::Tensor>& skips);

  std::vector<std::shared_ptr<UNetLevel>> down;
  std::shared_ptr<UNetLevel> mid;
};

// The attention blocks of `model`'s transformers in module order; numbers the
// cross-attention blocks (cross_index) in that order, the layout of the flat keys and values.
void CollectAttentionBlocks(torch::nn::Module& model, std::vector<AttentionBlock*>& self_attention,
                            std::vector<AttentionBlock*>& cross_attention);

// Every cross-attention block's keys and values of `context` as one flat tensor (empty where
// there are no such blocks).
torch::Tensor ProjectCrossAttentionKV(const std::vector<AttentionBlock*>& cross_attention,
                                      const torch::Tensor& context);

// That flat tensor as views per block ([B, M, C_block] each; M follows from the total size):
// keys of block i at 2i, values at 2i + 1. `what` names the model in the error.
std::vector<torch::Tensor> SplitCrossAttentionKV(const std::vector<AttentionBlock*>& cross_attention,
                                                 const torch::Tensor& kv, int64_t batch, const char* what);

}  // namespace spriteforge::engine
