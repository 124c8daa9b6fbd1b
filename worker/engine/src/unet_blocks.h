// The UNet's building blocks, named like diffusers' UNet2DConditionModel keys: resnets,
// spatial transformers with self- and cross-attention, down- and upsamplers. The VAE
// reuses the resnet and samplers.
#pragma once

#include <torch/torch.h>

#include "worker/engine/src/layers.h"

namespace spriteforge::engine {

// x + y in x's memory layout, whatever y's strides are.
torch::Tensor AddResidual(const torch::Tensor& x, const torch::Tensor& y);

// GroupNorm-SiLU-conv twice, with the timestep embedding added in between (when
// temb_channels > 0) and a 1x1 conv_shortcut when the channel count changes.
struct ResnetBlock : torch::nn::Module {
  ResnetBlock(int64_t in, int64_t out, int64_t temb_channels, int64_t groups, double eps,
              const TilingFlag& tiling);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& temb);

  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
  Linear time_emb_proj{nullptr};
};

// What cross-attention reads: the text context [B, M, C], or the keys and values every
// cross-attention block projected from it beforehand (UNetImpl::CrossAttentionKV): the
// context does not change between denoising steps, so neither do they.
struct CrossContext {
  torch::Tensor context;
  const std::vector<torch::Tensor>* kv = nullptr;  // [2i], [2i + 1]: keys, values of block i
  // IP-Adapter: the image tokens' keys and values, laid out as kv, and their weight.
  const std::vector<torch::Tensor>* ip_kv = nullptr;
  torch::Tensor ip_scale;
};

// diffusers' Attention: to_q, to_k, to_v (no bias), to_out.0 (with bias).
struct AttentionBlock : torch::nn::Module {
  AttentionBlock(int64_t dim, int64_t context_dim, int64_t heads, bool qkv_bias);
  // Self-attention over x when context is undefined.
  torch::Tensor forward(const Rows& x, const torch::Tensor& context);
  // Cross-attention, with this block's precomputed keys and values where ctx has them.
  torch::Tensor Cross(const Rows& x, const CrossContext& ctx);
  // Self-attention's three projections as one GEMM from now on (fewer, larger GEMMs pay
  // on GPUs): the weights are concatenated once and to_q/to_k/to_v keep views of them.
  // Needs the same input and bias setting for all three; false, changing nothing, otherwise.
  bool FuseProjections();

  int64_t heads;
  int64_t cross_index = -1;  // position among the UNet's cross-attention blocks
  Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, to_out{nullptr};

 private:
  Linear to_qkv_{nullptr};  // not registered: its weight is to_q/to_k/to_v's storage
};

// Self-attention, cross-attention to the text context, GEGLU feed-forward; pre-norm.
struct TransformerBlock : torch::nn::Module {
  TransformerBlock(int64_t dim, int64_t heads, int64_t context_dim);
  // The residual stream arrives with the previous block's last branch output not yet added
  // (`pending`, undefined for the first block) and leaves the same way: the sum is made by
  // the fused kernel of the next LayerNorm (src/fused_ops.h).
  struct Output {
    torch::Tensor stream, pending;
  };
  Output forward(const torch::Tensor& x, const torch::Tensor& pending, const CrossContext& context);

  std::shared_ptr<AttentionBlock> attn1, attn2;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  Linear ff_in{nullptr}, ff_out{nullptr};  // ff.net.0.proj, ff.net.2
};

// GroupNorm, linear projection in, transformer blocks, projection out, residual.
struct SpatialTransformer : torch::nn::Module {
  SpatialTransformer(int64_t channels, int64_t heads, int64_t layers, int64_t context_dim,
                     int64_t groups, bool linear_projection);
  torch::Tensor forward(const torch::Tensor& x, const CrossContext& context);

  torch::nn::GroupNorm norm{nullptr};
  Linear proj_in{nullptr}, proj_out{nullptr};
  std::vector<std::shared_ptr<TransformerBlock>> blocks;
};

struct Downsample : torch::nn::Module {
  // padding 1 (UNet) or 0 with an explicit (0,1,0,1) pad (VAE encoder).
  Downsample(int64_t channels, int64_t padding, const TilingFlag& tiling);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t padding;
  Conv2d conv{nullptr};
};

struct Upsample : torch::nn::Module {
  Upsample(int64_t channels, const TilingFlag& tiling);
  // Nearest-neighbour to `size` (default: twice the input), then a 3x3 conv. The UNet passes
  // the size of the matching skip connection, so odd latent sizes line up.
  torch::Tensor forward(const torch::Tensor& x, c10::optional<std::vector<int64_t>> size = c10::nullopt);
  Conv2d conv{nullptr};
};

// Registers an empty container module under `name` (for key paths like "resnets.0").
std::shared_ptr<torch::nn::Module> AddContainer(torch::nn::Module& parent, const std::string& name);

}  // namespace spriteforge::engine
