#include "worker/engine/src/unet_encoder.h"

#include <string>

namespace spriteforge::engine {

std::shared_ptr<SpatialTransformer> MakeTransformer(const UNetConfig& c, int64_t channels, int64_t level) {
  return std::make_shared<SpatialTransformer>(channels, c.attention_head_dim[level], c.transformer_layers_per_block[level],
                                              c.cross_attention_dim, c.norm_num_groups, c.use_linear_projection);
}

ConditioningEmbedding::ConditioningEmbedding(torch::nn::Module& parent, const UNetConfig& c)
    : time_channels(c.block_out_channels[0]),
      addition_time_embed_dim(c.addition_time_embed_dim),
      flip_sin_to_cos(c.flip_sin_to_cos),
      freq_shift(c.freq_shift) {
  const int64_t temb = TimeEmbeddingChannels(c);
  auto time_embedding = AddContainer(parent, "time_embedding");
  time_linear_1 = time_embedding->register_module("linear_1", MakeLinear(time_channels, temb));
  time_linear_2 = time_embedding->register_module("linear_2", MakeLinear(temb, temb));
  auto add_embedding = AddContainer(parent, "add_embedding");
  add_linear_1 = add_embedding->register_module("linear_1", MakeLinear(c.projection_class_embeddings_input_dim, temb));
  add_linear_2 = add_embedding->register_module("linear_2", MakeLinear(temb, temb));
}

torch::Tensor ConditioningEmbedding::operator()(const torch::Tensor& timestep, const torch::Tensor& text_embeds,
                                                const torch::Tensor& time_ids, int64_t batch,
                                                torch::ScalarType dtype) {
  torch::Tensor t = TimestepFeatures(timestep.expand({batch}), time_channels, flip_sin_to_cos, freq_shift).to(dtype);
  torch::Tensor emb = time_linear_2(torch::silu(time_linear_1(t)));
  torch::Tensor time_features =
      TimestepFeatures(time_ids.flatten(), addition_time_embed_dim, flip_sin_to_cos, freq_shift).reshape({batch, -1});
  torch::Tensor add = torch::cat({text_embeds, time_features.to(text_embeds.scalar_type())}, -1).to(dtype);
  return emb + add_linear_2(torch::silu(add_linear_1(add)));
}

UNetDownPath::UNetDownPath(torch::nn::Module& parent, const UNetConfig& c, const TilingFlag& tiling) {
  const auto& ch = c.block_out_channels;
  const int64_t levels = static_cast<int64_t>(ch.size());
  const int64_t temb = TimeEmbeddingChannels(c);
  const int64_t groups = c.norm_num_groups;
  const double eps = c.norm_eps;
  auto down_blocks = AddContainer(parent, "down_blocks");
  int64_t channels = ch[0];
  for (int64_t i = 0; i < levels; ++i) {
    auto level = std::make_shared<UNetLevel>();
    auto block = AddContainer(*down_blocks, std::to_string(i));
    auto resnets = AddContainer(*block, "resnets");
    const bool cross = HasCrossAttention(c.down_block_types[i]);
    auto attentions = cross ? AddContainer(*block, "attentions") : nullptr;
    for (int j = 0; j < c.layers_per_block; ++j) {
      level->resnets.push_back(resnets->register_module(
          std::to_string(j), std::make_shared<ResnetBlock>(channels, ch[i], temb, groups, eps, tiling)));
      channels = ch[i];
      if (cross) level->attentions.push_back(attentions->register_module(std::to_string(j), MakeTransformer(c, ch[i], i)));
    }
    if (i + 1 < levels) {
      level->downsampler = AddContainer(*block, "downsamplers")->register_module("0", std::make_shared<Downsample>(ch[i], 1, tiling));
    }
    down.push_back(level);
  }

  auto mid_block = AddContainer(parent, "mid_block");
  mid = std::make_shared<UNetLevel>();
  auto mid_resnets = AddContainer(*mid_block, "resnets");
  for (int j = 0; j < 2; ++j) {
    mid->resnets.push_back(mid_resnets->register_module(
        std::to_string(j), std::make_shared<ResnetBlock>(ch.back(), ch.back(), temb, groups, eps, tiling)));
  }
  mid->attentions.push_back(AddContainer(*mid_block, "attentions")->register_module("0", MakeTransformer(c, ch.back(), levels - 1)));
}

torch::Tensor UNetDownPath::operator()(torch::Tensor x, const torch::Tensor& emb, const CrossContext& context,
                                       std::vector<torch::Tensor>& skips) {
  skips.push_back(x);
  for (const auto& level : down) {
    for (size_t j = 0; j < level->resnets.size(); ++j) {
      x = level->resnets[j]->forward(x, emb);
      if (!level->attentions.empty()) x = level->attentions[j]->forward(x, context);
      skips.push_back(x);
    }
    if (level->downsampler) {
      x = level->downsampler->forward(x);
      skips.push_back(x);
    }
  }
  x = mid->resnets[0]->forward(x, emb);
  x = mid->attentions[0]->forward(x, context);
  return mid->resnets[1]->forward(x, emb);
}

void UNetDownPath::FirstLevel(torch::Tensor x, const torch::Tensor& emb, const CrossContext& context,
                              std::vector<torch::Tensor>& skips) {
  skips.push_back(x);
  const UNetLevel& level = *down.front();
  for (size_t j = 0; j < level.resnets.size(); ++j) {
    x = level.resnets[j]->forward(x, emb);
    if (!level.attentions.empty()) x = level.attentions[j]->forward(x, context);
    skips.push_back(x);
  }
}

void CollectAttentionBlocks(torch::nn::Module& model, std::vector<AttentionBlock*>& self_attention,
                            std::vector<AttentionBlock*>& cross_attention) {
  for (const auto& module : model.modules(/*include_self=*/false)) {
    if (auto* block = dynamic_cast<TransformerBlock*>(module.get())) {
      self_attention.push_back(block->attn1.get());
      block->attn2->cross_index = static_cast<int64_t>(cross_attention.size());
      cross_attention.push_back(block->attn2.get());
    }
  }
}

torch::Tensor ProjectCrossAttentionKV(const std::vector<AttentionBlock*>& cross_attention, const torch::Tensor& context) {
  std::vector<torch::Tensor> parts;
  for (AttentionBlock* block : cross_attention) {
    parts.push_back(block->to_k(context).flatten());
    parts.push_back(block->to_v(context).flatten());
  }
  // Small ControlNets (transformer_layers_per_block all 0) have no cross-attention to feed.
  if (parts.empty()) return torch::empty({0}, context.options());
  return torch::cat(parts);
}

std::vector<torch::Tensor> SplitCrossAttentionKV(const std::vector<AttentionBlock*>& cross_attention,
                                                 const torch::Tensor& kv, int64_t batch, const char* what) {
  int64_t widths = 0;
  for (AttentionBlock* block : cross_attention) widths += block->to_k->out_features() + block->to_v->out_features();
  TORCH_CHECK(widths > 0 && kv.numel() % (batch * widths) == 0, what, "cross-attention keys and values do not fit the batch");
  const int64_t tokens = kv.numel() / (batch * widths);
  std::vector<torch::Tensor> views;
  int64_t offset = 0;
  for (AttentionBlock* block : cross_attention) {
    for (const Linear& projection : {block->to_k, block->to_v}) {
      const int64_t n = batch * tokens * projection->out_features();
      views.push_back(kv.narrow(0, offset, n).view({batch, tokens, projection->out_features()}));
      offset += n;
    }
  }
  return views;
}

}  // namespace spriteforge::engine
