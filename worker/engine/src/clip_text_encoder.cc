#include "worker/engine/src/clip_text_encoder.h"

#include "worker/engine/src/layers.h"

namespace spriteforge::engine {

ClipAttention::ClipAttention(int64_t dim, int64_t heads, bool causal) : heads(heads), causal(causal) {
  q_proj = register_module("q_proj", MakeLinear(dim, dim));
  k_proj = register_module("k_proj", MakeLinear(dim, dim));
  v_proj = register_module("v_proj", MakeLinear(dim, dim));
  out_proj = register_module("out_proj", MakeLinear(dim, dim));
}

torch::Tensor ClipAttention::forward(const torch::Tensor& x) {
  return out_proj(MultiHeadAttention(q_proj(x), k_proj(x), v_proj(x), heads, causal));
}

ClipMlp::ClipMlp(int64_t dim, int64_t hidden, bool quick_gelu) : quick_gelu(quick_gelu) {
  fc1 = register_module("fc1", MakeLinear(dim, hidden));
  fc2 = register_module("fc2", MakeLinear(hidden, dim));
}

torch::Tensor ClipMlp::forward(const torch::Tensor& x) {
  torch::Tensor h = fc1(x);
  h = quick_gelu ? h * torch::sigmoid(1.702 * h) : torch::gelu(h);  // gelu: the exact erf form
  return fc2(h);
}

ClipLayer::ClipLayer(const ClipTextConfig& c, bool causal) {
  self_attn = register_module("self_attn", std::make_shared<ClipAttention>(c.hidden_size, c.num_attention_heads, causal));
  layer_norm1 = register_module("layer_norm1", MakeLayerNorm(c.hidden_size, c.layer_norm_eps));
  mlp = register_module("mlp", std::make_shared<ClipMlp>(c.hidden_size, c.intermediate_size,
                                                          c.hidden_act == "quick_gelu"));
  layer_norm2 = register_module("layer_norm2", MakeLayerNorm(c.hidden_size, c.layer_norm_eps));
}

torch::Tensor ClipLayer::forward(torch::Tensor x) {
  x = x + self_attn->forward(layer_norm1(x));
  return x + mlp->forward(layer_norm2(x));
}

ClipTextEncoderImpl::ClipTextEncoderImpl(const ClipTextConfig& c, bool with_projection)
    : config_(c), with_projection_(with_projection) {
  auto text_model = register_module("text_model", std::make_shared<torch::nn::Module>());
  text_model_ = text_model.get();
  auto embeddings = text_model->register_module("embeddings", std::make_shared<torch::nn::Module>());
  token_embedding_ = embeddings->register_module("token_embedding", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  position_embedding_ = embeddings->register_module(
      "position_embedding", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  auto encoder = text_model->register_module("encoder", std::make_shared<torch::nn::Module>());
  auto layers = encoder->register_module("layers", std::make_shared<torch::nn::Module>());
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    layers_.push_back(layers->register_module(std::to_string(i), std::make_shared<ClipLayer>(c, /*causal=*/true)));
  }
  final_layer_norm_ = text_model->register_module("final_layer_norm", MakeLayerNorm(c.hidden_size, c.layer_norm_eps));
  if (with_projection) {
    text_projection_ = register_module("text_projection", MakeLinear(c.hidden_size, c.projection_dim, false));
  }
}

ClipOutput ClipTextEncoderImpl::forward(const torch::Tensor& ids) {
  const int64_t tokens = ids.size(1);
  torch::Tensor positions = torch::arange(tokens, torch::dtype(torch::kLong).device(ids.device()));
  torch::Tensor x = token_embedding_(ids) + position_embedding_(positions).unsqueeze(0);
  const size_t n = layers_.size();
  // The last layer only matters for the pooled output.
  const size_t run = with_projection_ ? n : n - 1;
  ClipOutput out;
  for (size_t i = 0; i < run; ++i) {
    x = static_cast<ClipLayer&>(*layers_[i]).forward(x);
    if (i + 2 == n) out.penultimate = x;
  }
  if (n == 1) out.penultimate = token_embedding_(ids) + position_embedding_(positions).unsqueeze(0);
  if (with_projection_) {
    torch::Tensor last = final_layer_norm_(x);
    torch::Tensor eos = (ids == config_.eos_token_id).to(torch::kInt).argmax(1);
    torch::Tensor pooled = last.index({torch::arange(ids.size(0), eos.options().dtype(torch::kLong)), eos});
    out.pooled = text_projection_(pooled);
  }
  return out;
}

}  // namespace spriteforge::engine
