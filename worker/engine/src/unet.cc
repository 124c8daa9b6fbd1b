#include "worker/engine/src/unet.h"

#include "worker/engine/src/fused_ops.h"
#include "worker/engine/src/unet_blocks.h"

namespace spriteforge::engine {

namespace {

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
  const int64_t temb = TimeEmbeddingChannels(c);
  const int64_t groups = c.norm_num_groups;
  const double eps = c.norm_eps;
  conv_in_ = register_module("conv_in", Conv2d(c.in_channels, ch[0], 3, 1, -1, tiling_));
  embedding_ = ConditioningEmbedding(*this, c);
  down_ = UNetDownPath(*this, c, tiling_);

  auto up_blocks = AddContainer(*this, "up_blocks");
  int64_t prev = ch.back();
  for (int64_t i = 0; i < levels; ++i) {
    const int64_t level_index = levels - 1 - i;
    const int64_t out = ch[level_index];
    const int64_t skip_in = ch[std::max<int64_t>(level_index - 1, 0)];
    auto level = std::make_shared<UNetLevel>();
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
        level->attentions.push_back(attentions->register_module(std::to_string(j), MakeTransformer(c, out, level_index)));
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
  CollectAttentionBlocks(*this, self_attention_, cross_attention_);
}

torch::Tensor UNetImpl::CrossAttentionKV(const torch::Tensor& context) {
  return ProjectCrossAttentionKV(cross_attention_, context);
}

torch::Tensor UNetImpl::ForwardWithKV(const torch::Tensor& sample, const torch::Tensor& timestep,
                                      const torch::Tensor& kv, const torch::Tensor& text_embeds,
                                      const torch::Tensor& time_ids, const UNetConditioning& conditioning) {
  const std::vector<torch::Tensor> views = SplitCrossAttentionKV(cross_attention_, kv, sample.size(0), "");
  std::vector<torch::Tensor> image_views;
  if (conditioning.ip_kv.defined()) image_views = SplitCrossAttentionKV(cross_attention_, conditioning.ip_kv, sample.size(0), "");
  CrossContext context{{}, &views, conditioning.ip_kv.defined() ? &image_views : nullptr, conditioning.ip_scale};
  return Forward(sample, timestep, context, text_embeds, time_ids, conditioning);
}

void UNetImpl::FuseSelfAttentionProjections() {
  for (AttentionBlock* block : self_attention_) block->FuseProjections();
}

torch::Tensor UNetImpl::forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                const torch::Tensor& context, const torch::Tensor& text_embeds,
                                const torch::Tensor& time_ids, const UNetConditioning& conditioning) {
  std::vector<torch::Tensor> image_views;
  if (conditioning.ip_kv.defined()) image_views = SplitCrossAttentionKV(cross_attention_, conditioning.ip_kv, sample.size(0), "");
  CrossContext cross{context, nullptr, conditioning.ip_kv.defined() ? &image_views : nullptr, conditioning.ip_scale};
  return Forward(sample, timestep, cross, text_embeds, time_ids, conditioning);
}

torch::Tensor UNetImpl::Forward(const torch::Tensor& sample, const torch::Tensor& timestep,
                                const CrossContext& context, const torch::Tensor& text_embeds,
                                const torch::Tensor& time_ids, const UNetConditioning& conditioning) {
  const auto dtype = sample.scalar_type();
  const int64_t batch = sample.size(0);
  const torch::Tensor emb = embedding_(timestep, text_embeds, time_ids, batch, dtype);
  std::vector<torch::Tensor> skips;
  torch::Tensor x;
  size_t first_up = 0;
  if (conditioning.reuse_deep.defined()) {
    down_.FirstLevel(conv_in_(sample), emb, context, skips);
    x = conditioning.reuse_deep;
    first_up = up_.size() - 1;
  } else {
    x = down_(conv_in_(sample), emb, context, skips);
    AddControlResiduals(skips, x, conditioning);
  }
  for (size_t i = first_up; i < up_.size(); ++i) {
    auto& level = up_[i];
    if (i + 1 == up_.size() && conditioning.keep_deep) *conditioning.keep_deep = x;
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
