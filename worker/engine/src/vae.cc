#include "worker/engine/src/vae.h"

#include "worker/engine/src/fused_ops.h"
#include "worker/engine/src/unet_blocks.h"

namespace spriteforge::engine {
namespace {

constexpr double kEps = 1e-6;

// The VAE's mid-block attention: one head over all pixels, with its own GroupNorm.
struct VaeAttention : torch::nn::Module {
  VaeAttention(int64_t channels, int64_t groups) {
    group_norm = register_module("group_norm", MakeGroupNorm(groups, channels, kEps));
    attention = std::make_shared<AttentionBlock>(channels, channels, 1, true);
    to_q = register_module("to_q", attention->to_q);
    to_k = register_module("to_k", attention->to_k);
    to_v = register_module("to_v", attention->to_v);
    register_module("to_out", attention->named_children()["to_out"]);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    torch::Tensor t = GroupNormAct(x, group_norm, /*silu=*/false).view({b, c, h * w}).transpose(1, 2);
    t = attention->forward(Rows{t, {}}, {});
    return AddResidual(x, t.transpose(1, 2).reshape({b, c, h, w}));
  }
  torch::nn::GroupNorm group_norm{nullptr};
  std::shared_ptr<AttentionBlock> attention;
  Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
};

}  // namespace

// Encoder or decoder: conv_in, levels of resnets with resamplers, mid block, output conv.
struct VaeImpl::Coder : torch::nn::Module {
  Coder(const VaeConfig& c, bool decoder, const TilingFlag& tiling) : decoder(decoder) {
    const auto& ch = c.block_out_channels;
    const int64_t levels = static_cast<int64_t>(ch.size());
    const int64_t groups = c.norm_num_groups;
    const int64_t in = decoder ? c.latent_channels : c.in_channels;
    const int64_t first = decoder ? ch.back() : ch[0];
    conv_in = register_module("conv_in", Conv2d(in, first, 3, 1, -1, tiling));
    auto mid = AddContainer(*this, "mid_block");
    auto mid_resnets = AddContainer(*mid, "resnets");
    for (int j = 0; j < 2; ++j) {
      mid_resnet.push_back(mid_resnets->register_module(
          std::to_string(j), std::make_shared<ResnetBlock>(ch.back(), ch.back(), 0, groups, kEps, tiling)));
    }
    if (c.mid_block_add_attention) {
      mid_attention = AddContainer(*mid, "attentions")->register_module("0", std::make_shared<VaeAttention>(ch.back(), groups));
    }
    auto blocks = AddContainer(*this, decoder ? "up_blocks" : "down_blocks");
    int64_t channels = first;
    for (int64_t i = 0; i < levels; ++i) {
      const int64_t out = decoder ? ch[levels - 1 - i] : ch[i];
      auto block = AddContainer(*blocks, std::to_string(i));
      auto resnets = AddContainer(*block, "resnets");
      std::vector<std::shared_ptr<ResnetBlock>> level;
      const int count = decoder ? c.layers_per_block + 1 : c.layers_per_block;
      for (int j = 0; j < count; ++j) {
        level.push_back(resnets->register_module(
            std::to_string(j), std::make_shared<ResnetBlock>(channels, out, 0, groups, kEps, tiling)));
        channels = out;
      }
      level_resnets.push_back(level);
      if (i + 1 < levels && decoder) {
        upsamplers.push_back(AddContainer(*block, "upsamplers")->register_module("0", std::make_shared<Upsample>(out, tiling)));
      } else if (i + 1 < levels) {
        downsamplers.push_back(AddContainer(*block, "downsamplers")->register_module("0", std::make_shared<Downsample>(out, 0, tiling)));
      }
    }
    conv_norm_out = register_module("conv_norm_out", MakeGroupNorm(groups, channels, kEps));
    conv_out = register_module("conv_out", Conv2d(channels, decoder ? c.out_channels : 2 * c.latent_channels, 3, 1, -1, tiling));
  }

  torch::Tensor Mid(torch::Tensor x) {
    x = mid_resnet[0]->forward(x, {});
    if (mid_attention) x = mid_attention->forward(x);
    return mid_resnet[1]->forward(x, {});
  }

  torch::Tensor forward(torch::Tensor x) {
    x = conv_in(x);
    if (decoder) x = Mid(x);
    for (size_t i = 0; i < level_resnets.size(); ++i) {
      for (auto& r : level_resnets[i]) x = r->forward(x, {});
      if (decoder && i < upsamplers.size()) x = upsamplers[i]->forward(x);
      if (!decoder && i < downsamplers.size()) x = downsamplers[i]->forward(x);
    }
    if (!decoder) x = Mid(x);
    return conv_out(GroupNormAct(x, conv_norm_out, /*silu=*/true));
  }

  bool decoder;
  Conv2d conv_in{nullptr}, conv_out{nullptr};
  std::vector<std::shared_ptr<ResnetBlock>> mid_resnet;
  std::shared_ptr<VaeAttention> mid_attention;
  std::vector<std::vector<std::shared_ptr<ResnetBlock>>> level_resnets;
  std::vector<std::shared_ptr<Upsample>> upsamplers;
  std::vector<std::shared_ptr<Downsample>> downsamplers;
  torch::nn::GroupNorm conv_norm_out{nullptr};
};

VaeImpl::VaeImpl(const VaeConfig& c) : config_(c) {
  encoder_ = register_module("encoder", std::make_shared<Coder>(c, false, tiling_));
  decoder_ = register_module("decoder", std::make_shared<Coder>(c, true, tiling_));
  if (c.use_quant_conv) {
    quant_conv_ = register_module("quant_conv", Conv2d(2 * c.latent_channels, 2 * c.latent_channels, 1, 1, 0));
  }
  if (c.use_post_quant_conv) {
    post_quant_conv_ = register_module("post_quant_conv", Conv2d(c.latent_channels, c.latent_channels, 1, 1, 0));
  }
}

torch::Tensor VaeImpl::decode(const torch::Tensor& z) {
  return decoder_->forward(post_quant_conv_ ? post_quant_conv_(z) : z);
}

torch::Tensor VaeImpl::encode(const torch::Tensor& image) { return encode_distribution(image).first; }

std::pair<torch::Tensor, torch::Tensor> VaeImpl::encode_distribution(const torch::Tensor& image) {
  torch::Tensor moments = encoder_->forward(image);
  if (quant_conv_) moments = quant_conv_(moments);
  auto halves = moments.chunk(2, 1);
  return {halves[0], halves[1]};
}

}  // namespace spriteforge::engine
