#include "worker/engine/src/unet.h"

#include "worker/engine/src/fused_ops.h"
#include "worker/engine/src/unet_blocks.h"

namespace spriteforge::engine {

// One resolution level: resnets, optional transformers after each, optional resampler.
struct UNetImpl::Level {
  std::vector<std::shared_ptr<ResnetBlock>> resnets;
  std::vector<std::shared_ptr<SpatialTransformer>> attentions;
  std::shared_ptr<Downsample> downsampler;
  std::shared_ptr<Upsample> upsampler;
};

namespace {

bool HasCrossAttention(const std::string& type) { return type.rfind("CrossAttn", 0) == 0; }

// ControlNet residuals join the skips and the mid block's output, each in the layout the
// UNet made it.
void AddControlResiduals(std::vector<torch::Tensor>& skips, torch::Tensor& mid, const UNetConditioning& c) {
  if (!c.down_residuals.empty()) {
    TORCH_CHECK(c.down_residuals.size() == skips.size(), "ControlNet residuals: ", c.down_residuals.size(),
                " for ", skips.size(), " skip connections");
    for (size_t i = 0; i < skips.size(); ++i) skips[i] = AddResidual(skips[i], c.down_residuals[i]);
  }
  if (c.mid_residual.defined()) mid = AddResidual(mid, c.mid_residual);
}

}  // namespace

UNetImpl::UNetImpl(const UNetConfig& c) : config_(c) {
  const auto& ch = c.block_out_channels;
  const int64_t levels = static_cast<int64_t>(ch.size());
  const int64_t temb = ch[0] * 4;
  const int64_t groups = c.norm_num_groups;
  const double eps = c.norm_eps;
  conv_in_ = register_module("conv_in", Conv2d(c.in_channels, ch[0], 3, 1, -1, tiling_));
  auto time_embedding = AddContainer(*this, "time_embedding");
  time_linear_1_ = time_embedding->register_module("linear_1", MakeLinear(ch[0], temb));
  time_linear_2_ = time_embedding->register_module("linear_2", MakeLinear(temb, temb));
  auto add_embedding = AddContainer(*this, "add_embedding");
  add_linear_1_ = add_embedding->register_module("linear_1", MakeLinear(c.projection_class_embeddings_input_dim, temb));
  add_linear_2_ = add_embedding->register_module("linear_2", MakeLinear(temb, temb));

  auto make_transformer = [&](int64_t channels, int64_t level) {
    return std::make_shared<SpatialTransformer>(channels, c.attention_head_dim[level],
                                                c.transformer_layers_per_block[level],
                                                c.cross_attention_dim, groups, c.use_linear_projection);
  };

  auto down_blocks = AddContainer(*this, "down_blocks");
  int64_t channels = ch[0];
  for (int64_t i = 0; i < levels; ++i) {
    auto level = std::make_shared<Level>();
    auto block = AddContainer(*down_blocks, std::to_string(i));
    auto resnets = AddContainer(*block, "resnets");
    const bool cross = HasCrossAttention(c.down_block_types[i]);
    auto attentions = cross ? AddContainer(*block, "attentions") : nullptr;
    for (int j = 0; j < c.layers_per_block; ++j) {
      level->resnets.push_back(resnets->register_module(
          std::to_string(j), std::make_shared<ResnetBlock>(channels, ch[i], temb, groups, eps, tiling_)));
      channels = ch[i];
      if (cross) {
        level->attentions.push_back(attentions->register_module(std::to_string(j), make_transformer(ch[i], i)));
      }
    }
    if (i + 1 < levels) {
      level->downsampler = AddContainer(*block, "downsamplers")
                               ->register_module("0", std::make_shared<Downsample>(ch[i], 1, tiling_));
    }
    down_.push_back(level);
  }

  auto mid = AddContainer(*this, "mid_block");
  mid_ = std::make_shared<Level>();
  auto mid_resnets = AddContainer(*mid, "resnets");
  for (int j = 0; j < 2; ++j) {
    mid_->resnets.push_back(mid_resnets->register_module(
        std::to_string(j), std::make_shared<ResnetBlock>(ch.back(), ch.back(), temb, groups, eps, tiling_)));
  }
  mid_->attentions.push_back(AddContainer(*mid, "attentions")->register_module("0", make_transformer(ch.back(), levels - 1)));

  auto up_blocks = AddContainer(*this, "up_blocks");
  int64_t prev = ch.back();
  for (int64_t i = 0; i < levels; ++i) {
    const int64_t level_index = levels - 1 - i;
    const int64_t out = ch[level_index];
    const int64_t skip_in = ch[std::max<int64_t>(level_index - 1, 0)];
    auto level = std::make_shared<Level>();
    auto block = AddContainer(*up_blocks, std::to_string(i));
    auto resnets = AddContainer(*block, "resnets");
    const bool cross = HasCrossAttention(c.up_block_types[i]);
    auto attentions = cross ? AddContainer(*block, "attentions") : nullptr;
    for (int j = 0; j <= c.layers_per_block; ++j) {
      const int64_t skip = j == c.layers_per_block ? skip_in : out;
      const int64_t in = j == 0 ? prev : out;
      level->resnets.push_back(resnets->register_module(
          std::to_string(j), std::make_shared<ResnetBlock>(in + skip, out, temb, groups, eps, tiling_)));
      if (cross) {
        level->attentions.push_back(attentions->register_module(std::to_string(j), make_transformer(out, level_index)));
      }
    }
    if (i + 1 < levels) {
      level->upsampler = AddContainer(*block, "upsamplers")->register_module("0", std::make_shared<Upsample>(out, tiling_));
    }
    prev = out;
    up_.push_back(level);
  }
  conv_norm_out_ = register_module("conv_norm_out", MakeGroupNorm(groups, ch[0], eps));
  conv_out_ = register_module("conv_out", Conv2d(ch[0], c.out_channels, 3, 1, -1, tiling_));
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* block = dynamic_cast<TransformerBlock*>(module.get())) {
      self_attention_.push_back(block->attn1.get());
      block->attn2->cross_index = static_cast<int64_t>(cross_attention_.size());
      cross_attention_.push_back(block->attn2.get());
    }
  }
}

torch::Tensor UNetImpl::CrossAttentionKV(const torch::Tensor& context) {
  std::vector<torch::Tensor> parts;
  for (AttentionBlock* block : cross_attention_) {
    parts.push_back(block->to_k(context).flatten());
    parts.push_back(block->to_v(context).flatten());
  }
  return torch::cat(parts);
}

torch::Tensor UNetImpl::ForwardWithKV(const torch::Tensor& sample, const torch::Tensor& timestep,
                                      const torch::Tensor& kv, const torch::Tensor& text_embeds,
                                      const torch::Tensor& time_ids, const UNetConditioning& conditioning) {
  const std::vector<torch::Tensor> views = SplitKV(kv, sample.size(0));
  std::vector<torch::Tensor> image_views;
  if (conditioning.ip_kv.defined()) image_views = SplitKV(conditioning.ip_kv, sample.size(0));
  CrossContext context{{}, &views, conditioning.ip_kv.defined() ? &image_views : nullptr, conditioning.ip_scale};
  return Forward(sample, timestep, context, text_embeds, time_ids, conditioning);
}

std::vector<torch::Tensor> UNetImpl::SplitKV(const torch::Tensor& kv, int64_t batch) const {
  // Every block's keys and values are [B, M, C_block]; M follows from the total size.
  int64_t widths = 0;
  for (AttentionBlock* block : cross_attention_) widths += block->to_k->out_features() + block->to_v->out_features();
  TORCH_CHECK(widths > 0 && kv.numel() % (batch * widths) == 0, "cross-attention keys and values do not fit the batch");
  const int64_t tokens = kv.numel() / (batch * widths);
  std::vector<torch::Tensor> views;
  int64_t offset = 0;
  for (AttentionBlock* block : cross_attention_) {
    for (const Linear& projection : {block->to_k, block->to_v}) {
      const int64_t n = batch * tokens * projection->out_features();
      views.push_back(kv.narrow(0, offset, n).view({batch, tokens, projection->out_features()}));
      offset += n;
    }
  }
  return views;
}

void UNetImpl::FuseSelfAttentionProjections() {
  for (AttentionBlock* block : self_attention_) block->FuseProjections();
}

torch::Tensor UNetImpl::forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                const torch::Tensor& context, const torch::Tensor& text_embeds,
                                const torch::Tensor& time_ids, const UNetConditioning& conditioning) {
  std::vector<torch::Tensor> image_views;
  if (conditioning.ip_kv.defined()) image_views = SplitKV(conditioning.ip_kv, sample.size(0));
  CrossContext cross{context, nullptr, conditioning.ip_kv.defined() ? &image_views : nullptr, conditioning.ip_scale};
  return Forward(sample, timestep, cross, text_embeds, time_ids, conditioning);
}

torch::Tensor UNetImpl::Forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                const CrossContext& context, const torch::Tensor& text_embeds,
                                const torch::Tensor& time_ids, const UNetConditioning& conditioning) {
  const auto dtype = sample.scalar_type();
  const int64_t batch = sample.size(0);
  torch::Tensor t = TimestepFeatures(timestep.expand({batch}), config_.block_out_channels[0],
                                     config_.flip_sin_to_cos, config_.freq_shift).to(dtype);
  torch::Tensor emb = time_linear_2_(torch::silu(time_linear_1_(t)));
  torch::Tensor time_features = TimestepFeatures(time_ids.flatten(), config_.addition_time_embed_dim,
                                                 config_.flip_sin_to_cos, config_.freq_shift)
                                    .reshape({batch, -1});
  torch::Tensor add = torch::cat({text_embeds, time_features.to(text_embeds.scalar_type())}, -1).to(dtype);
  emb = emb + add_linear_2_(torch::silu(add_linear_1_(add)));

  torch::Tensor x = conv_in_(sample);
  std::vector<torch::Tensor> skips = {x};
  for (auto& level : down_) {
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
  x = mid_->resnets[0]->forward(x, emb);
  x = mid_->attentions[0]->forward(x, context);
  x = mid_->resnets[1]->forward(x, emb);
  AddControlResiduals(skips, x, conditioning);
  for (auto& level : up_) {
    for (size_t j = 0; j < level->resnets.size(); ++j) {
      x = torch::cat({x, skips.back()}, 1);
      skips.pop_back();
      x = level->resnets[j]->forward(x, emb);
      if (!level->attentions.empty()) x = level->attentions[j]->forward(x, context);
    }
    if (level->upsampler) {
      x = level->upsampler->forward(x, std::vector<int64_t>{skips.back().size(2), skips.back().size(3)});
    }
  }
  return conv_out_(GroupNormAct(x, conv_norm_out_, /*silu=*/true));
}

}  // namespace spriteforge::engine
