#include "worker/engine/src/unet_blocks.h"

#include "worker/engine/src/fused_ops.h"

namespace spriteforge::engine {

std::shared_ptr<torch::nn::Module> AddContainer(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

ResnetBlock::ResnetBlock(int64_t in, int64_t out, int64_t temb_channels, int64_t groups,
                         double eps, const TilingFlag& tiling) {
  norm1 = register_module("norm1", MakeGroupNorm(groups, in, eps));
  conv1 = register_module("conv1", Conv2d(in, out, 3, 1, -1, tiling));
  if (temb_channels > 0) time_emb_proj = register_module("time_emb_proj", MakeLinear(temb_channels, out));
  norm2 = register_module("norm2", MakeGroupNorm(groups, out, eps));
  conv2 = register_module("conv2", Conv2d(out, out, 3, 1, -1, tiling));
  if (in != out) conv_shortcut = register_module("conv_shortcut", Conv2d(in, out, 1, 1, 0));
}

torch::Tensor AddResidual(const torch::Tensor& x, const torch::Tensor& y) {
  // The sum must keep x's layout: a pixel-major sum would turn every later convolution and
  // norm into channels-last (measured slower on CUDA) or make them copy first.
  torch::Tensor out = torch::empty_like(x, x.suggest_memory_format());
  return torch::add_out(out, x, y);
}

torch::Tensor ResnetBlock::forward(const torch::Tensor& x, const torch::Tensor& temb) {
  torch::Tensor h = conv1->Apply(GroupNormAct(x, norm1, /*silu=*/true), /*with_bias=*/false);
  // conv1's bias and the timestep embedding are per-channel shifts: both fold into the
  // second norm instead of costing a pass over h each.
  torch::Tensor shift = time_emb_proj ? time_emb_proj(torch::silu(temb)) + conv1->bias
                                      : conv1->bias.unsqueeze(0).expand({x.size(0), -1}).contiguous();
  h = conv2->Apply(GroupNormAct(h, norm2, /*silu=*/true, shift), /*with_bias=*/false);
  // conv2's (and the shortcut's) bias join the residual sum.
  if (!conv_shortcut) return AddChannelBias(x, h, conv2->bias);
  return AddChannelBias(conv_shortcut->Apply(x, /*with_bias=*/false), h, conv2->bias + conv_shortcut->bias);
}

AttentionBlock::AttentionBlock(int64_t dim, int64_t context_dim, int64_t heads, bool qkv_bias)
    : heads(heads) {
  to_q = register_module("to_q", MakeLinear(dim, dim, qkv_bias));
  to_k = register_module("to_k", MakeLinear(context_dim, dim, qkv_bias));
  to_v = register_module("to_v", MakeLinear(context_dim, dim, qkv_bias));
  to_out = AddContainer(*this, "to_out")->register_module("0", MakeLinear(dim, dim));
}

torch::Tensor AttentionBlock::forward(const Rows& x, const torch::Tensor& context) {
  if (context.defined()) return Cross(x, CrossContext{context, nullptr});
  if (to_qkv_) {
    std::vector<torch::Tensor> qkv = to_qkv_->Apply(x).split(to_q->out_features(), -1);
    return to_out(MultiHeadAttention(qkv[0], qkv[1], qkv[2], heads, /*causal=*/false));
  }
  return to_out(MultiHeadAttention(to_q->Apply(x), to_k->Apply(x), to_v->Apply(x), heads, /*causal=*/false));
}

torch::Tensor AttentionBlock::Cross(const Rows& x, const CrossContext& ctx) {
  const torch::Tensor q = to_q->Apply(x);
  torch::Tensor h;
  if (ctx.kv) {
    const auto& kv = *ctx.kv;
    h = MultiHeadAttention(q, kv.at(2 * cross_index), kv.at(2 * cross_index + 1), heads, false);
  } else {
    h = MultiHeadAttention(q, to_k(ctx.context), to_v(ctx.context), heads, /*causal=*/false);
  }
  // IP-Adapter's decoupled cross-attention: the same queries and heads over the image
  // tokens, weighted and added before the output projection.
  if (ctx.ip_kv) {
    const auto& ip = *ctx.ip_kv;
    h = h + ctx.ip_scale * MultiHeadAttention(q, ip.at(2 * cross_index), ip.at(2 * cross_index + 1), heads, false);
  }
  return to_out(h);
}

bool AttentionBlock::FuseProjections() {
  if (to_qkv_) return true;
  auto fused = LinearImpl::Stack({to_q.get(), to_k.get(), to_v.get()});
  if (!fused) return false;
  to_qkv_ = Linear(fused);
  return true;
}

TransformerBlock::TransformerBlock(int64_t dim, int64_t heads, int64_t context_dim) {
  norm1 = register_module("norm1", MakeLayerNorm(dim, 1e-5));
  attn1 = register_module("attn1", std::make_shared<AttentionBlock>(dim, dim, heads, false));
  norm2 = register_module("norm2", MakeLayerNorm(dim, 1e-5));
  attn2 = register_module("attn2", std::make_shared<AttentionBlock>(dim, context_dim, heads, false));
  norm3 = register_module("norm3", MakeLayerNorm(dim, 1e-5));
  auto net = AddContainer(*AddContainer(*this, "ff"), "net");
  ff_in = AddContainer(*net, "0")->register_module("proj", MakeLinear(dim, dim * 8));
  ff_out = net->register_module("2", MakeLinear(dim * 4, dim));
}

TransformerBlock::Output TransformerBlock::forward(const torch::Tensor& x, const torch::Tensor& pending,
                                                   const CrossContext& context) {
  // Each residual sum is made by the kernel of the LayerNorm that reads it; with fp8
  // Linears, the norms and GEGLU hand their rows over already quantized.
  const bool self_fp8 = attn1->to_q->is_fp8() && attn1->to_k->is_fp8() && attn1->to_v->is_fp8();
  auto [x1, h1] = AddLayerNorm(x, pending, norm1, self_fp8);
  auto [x2, h2] = AddLayerNorm(x1, attn1->forward(h1, {}), norm2, attn2->to_q->is_fp8());
  auto [x3, h3] = AddLayerNorm(x2, attn2->Cross(h2, context), norm3, ff_in->is_fp8());
  return {x3, ff_out->Apply(Geglu(ff_in->Apply(h3), ff_out->is_fp8()))};
}

SpatialTransformer::SpatialTransformer(int64_t channels, int64_t heads, int64_t layers,
                                       int64_t context_dim, int64_t groups, bool linear_projection) {
  TORCH_CHECK(linear_projection, "only use_linear_projection UNets are supported (SDXL)");
  norm = register_module("norm", MakeGroupNorm(groups, channels, 1e-6));
  proj_in = register_module("proj_in", MakeLinear(channels, channels));
  auto container = AddContainer(*this, "transformer_blocks");
  for (int64_t i = 0; i < layers; ++i) {
    blocks.push_back(container->register_module(
        std::to_string(i), std::make_shared<TransformerBlock>(channels, heads, context_dim)));
  }
  proj_out = register_module("proj_out", MakeLinear(channels, channels));
}

torch::Tensor SpatialTransformer::forward(const torch::Tensor& x, const CrossContext& context) {
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  torch::Tensor t = GroupNormAct(x, norm, /*silu=*/false).permute({0, 2, 3, 1}).reshape({b, h * w, c});
  t = proj_in(t);
  torch::Tensor pending;
  for (auto& block : blocks) {
    TransformerBlock::Output out = block->forward(t, pending, context);
    t = std::move(out.stream);
    pending = std::move(out.pending);
  }
  // A level may have no transformer blocks (some small ControlNets): then nothing is pending.
  t = proj_out(pending.defined() ? t + pending : t);
  return AddResidual(x, t.view({b, h, w, c}).permute({0, 3, 1, 2}));
}

Downsample::Downsample(int64_t channels, int64_t padding, const TilingFlag& tiling)
    : padding(padding) {
  conv = register_module("conv", Conv2d(channels, channels, 3, 2, padding, tiling));
}

torch::Tensor Downsample::forward(const torch::Tensor& x) {
  if (padding == 0) {
    return conv(torch::nn::functional::pad(x, torch::nn::functional::PadFuncOptions({0, 1, 0, 1})));
  }
  return conv(x);
}

Upsample::Upsample(int64_t channels, const TilingFlag& tiling) {
  conv = register_module("conv", Conv2d(channels, channels, 3, 1, -1, tiling));
}

torch::Tensor Upsample::forward(const torch::Tensor& x, c10::optional<std::vector<int64_t>> size) {
  if (!size || *size == std::vector<int64_t>{2 * x.size(2), 2 * x.size(3)}) return conv(UpsampleNearest2x(x));
  return conv(torch::nn::functional::interpolate(
      x, torch::nn::functional::InterpolateFuncOptions().mode(torch::kNearest).size(*size)));
}

}  // namespace spriteforge::engine
