#include "worker/engine/src/ip_adapter.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/engine/src/unet_blocks.h"

namespace spriteforge::engine {
namespace {

namespace fs = std::filesystem;

// The resampler's attention heads are 64 wide (h94's Resampler, diffusers' conversion).
constexpr int64_t kResamplerHeadDim = 64;

// One of the UNet's cross-attention layers: its module path and width.
struct CrossLayer {
  std::string name;
  int64_t width;
  int64_t context;  // cross_attention_dim
};

// The UNet's attn2 layers in its own order (the order UNetImpl keeps them in).
std::vector<CrossLayer> CrossLayers(UNetImpl& unet) {
  std::vector<CrossLayer> layers;
  for (const auto& item : unet.named_modules()) {
    if (auto* block = dynamic_cast<TransformerBlock*>(item.value().get())) {
      layers.push_back({item.key() + ".attn2", block->attn2->to_k->out_features(), block->attn2->to_k->in_features()});
    }
  }
  return layers;
}

// diffusers registers up_blocks before mid_block, so its attention processors, and with
// them h94's numbering, run down blocks, up blocks, mid block. Position k of the result is
// the UNet's index of the layer h94 numbers 2k + 1.
std::vector<size_t> H94Order(const std::vector<CrossLayer>& layers) {
  auto group = [&](size_t i) {
    const std::string& name = layers[i].name;
    return absl::StartsWith(name, "down_blocks") ? 0 : absl::StartsWith(name, "up_blocks") ? 1 : 2;
  };
  std::vector<size_t> order(layers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return group(a) < group(b); });
  return order;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

absl::StatusOr<std::vector<int64_t>> ShapeOf(const SafetensorsFile& file, const std::string& name) {
  const TensorView* view = file.Find(name);
  if (!view) return absl::InvalidArgumentError(absl::StrCat(file.path(), ": no tensor '", name, "'"));
  return view->shape;
}

// The perceiver resampler's attention: latents attend to the image features and themselves.
struct PerceiverAttention : torch::nn::Module {
  PerceiverAttention(int64_t dim, int64_t inner) : heads(inner / kResamplerHeadDim) {
    norm1 = register_module("norm1", MakeLayerNorm(dim, 1e-5));
    norm2 = register_module("norm2", MakeLayerNorm(dim, 1e-5));
    to_q = register_module("to_q", MakeLinear(dim, inner, false));
    to_kv = register_module("to_kv", MakeLinear(dim, 2 * inner, false));
    to_out = register_module("to_out", MakeLinear(inner, dim, false));
  }
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& latents) {
    const torch::Tensor l = norm2(latents);
    std::vector<torch::Tensor> kv = to_kv(torch::cat({norm1(features), l}, 1)).chunk(2, -1);
    return to_out(MultiHeadAttention(to_q(l), kv[0].contiguous(), kv[1].contiguous(), heads, /*causal=*/false));
  }
  int64_t heads;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Linear to_q{nullptr}, to_kv{nullptr}, to_out{nullptr};
};

// layers.N: "0" the attention, "1" the feed-forward (LayerNorm, Linear, GELU, Linear).
struct ResamplerLayer : torch::nn::Module {
  ResamplerLayer(int64_t dim, int64_t inner, int64_t ff) {
    attn = register_module("0", std::make_shared<PerceiverAttention>(dim, inner));
    auto net = register_module("1", std::make_shared<torch::nn::Module>());
    ff_norm = net->register_module("0", MakeLayerNorm(dim, 1e-5));
    ff_in = net->register_module("1", MakeLinear(dim, ff, false));
    ff_out = net->register_module("3", MakeLinear(ff, dim, false));
  }
  torch::Tensor forward(const torch::Tensor& features, torch::Tensor latents) {
    latents = attn->forward(features, latents) + latents;
    return ff_out(torch::gelu(ff_in(ff_norm(latents)))) + latents;
  }
  std::shared_ptr<PerceiverAttention> attn;
  torch::nn::LayerNorm ff_norm{nullptr};
  Linear ff_in{nullptr}, ff_out{nullptr};
};

// The adapter's dimensions, read from the file's shapes.
struct AdapterShape {
  bool plus = false;
  int64_t features = 0;  // encoder output it reads: projection_dim (plain), hidden_size (Plus)
  int64_t tokens = 0;    // image tokens per reference image
  int64_t cross = 0;     // token width: the UNet's cross_attention_dim
  int64_t dim = 0, inner = 0, ff = 0, layers = 0;  // Plus: resampler width, attention width, feed-forward, depth
};

absl::StatusOr<AdapterShape> ReadShape(const SafetensorsFile& file, int64_t cross) {
  AdapterShape s;
  s.cross = cross;
  if (file.Find("image_proj.proj.weight")) {
    ASSIGN_OR_RETURN(auto proj, ShapeOf(file, "image_proj.proj.weight"));
    if (proj.size() != 2 || proj[0] % cross != 0) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor 'image_proj.proj.weight' is ", ShapeText(proj),
                                                     ", expected [tokens x ", cross, " (the model's cross_attention_dim), features]"));
    }
    s.tokens = proj[0] / cross;
    s.features = proj[1];
    return s;
  }
  if (!file.Find("image_proj.latents")) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": neither 'image_proj.proj.weight' (IP-Adapter) nor "
                                                   "'image_proj.latents' (IP-Adapter Plus): not an SDXL IP-Adapter in h94's layout"));
  }
  s.plus = true;
  ASSIGN_OR_RETURN(auto latents, ShapeOf(file, "image_proj.latents"));
  ASSIGN_OR_RETURN(auto proj_in, ShapeOf(file, "image_proj.proj_in.weight"));
  ASSIGN_OR_RETURN(auto to_q, ShapeOf(file, "image_proj.layers.0.0.to_q.weight"));
  ASSIGN_OR_RETURN(auto ff, ShapeOf(file, "image_proj.layers.0.1.1.weight"));
  if (latents.size() != 3 || latents[0] != 1 || proj_in.size() != 2 || to_q.size() != 2 || ff.size() != 2 ||
      to_q[0] % kResamplerHeadDim != 0) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": image_proj.latents ", ShapeText(latents), ", proj_in ",
                                                   ShapeText(proj_in), ", layers.0.0.to_q ", ShapeText(to_q),
                                                   ": not a perceiver resampler with 64-wide heads"));
  }
  s.tokens = latents[1];
  s.dim = latents[2];
  s.features = proj_in[1];
  s.inner = to_q[0];
  s.ff = ff[0];
  while (file.Find(absl::StrCat("image_proj.layers.", s.layers, ".0.to_q.weight"))) ++s.layers;
  return s;
}

ExpectedTensors AdapterTensors(const AdapterShape& s, const std::vector<int64_t>& widths_h94) {
  ExpectedTensors t;
  const int64_t c = s.cross;
  if (!s.plus) {
    t["image_proj.proj.weight"] = {s.tokens * c, s.features};
    t["image_proj.proj.bias"] = {s.tokens * c};
    t["image_proj.norm.weight"] = {c};
    t["image_proj.norm.bias"] = {c};
  } else {
    t["image_proj.latents"] = {1, s.tokens, s.dim};
    t["image_proj.proj_in.weight"] = {s.dim, s.features};
    t["image_proj.proj_in.bias"] = {s.dim};
    t["image_proj.proj_out.weight"] = {c, s.dim};
    t["image_proj.proj_out.bias"] = {c};
    t["image_proj.norm_out.weight"] = {c};
    t["image_proj.norm_out.bias"] = {c};
    for (int64_t i = 0; i < s.layers; ++i) {
      const std::string p = absl::StrCat("image_proj.layers.", i, ".");
      for (const char* norm : {"0.norm1", "0.norm2", "1.0"}) {
        t[p + norm + ".weight"] = {s.dim};
        t[p + norm + ".bias"] = {s.dim};
      }
      t[p + "0.to_q.weight"] = {s.inner, s.dim};
      t[p + "0.to_kv.weight"] = {2 * s.inner, s.dim};
      t[p + "0.to_out.weight"] = {s.dim, s.inner};
      t[p + "1.1.weight"] = {s.ff, s.dim};
      t[p + "1.3.weight"] = {s.dim, s.ff};
    }
  }
  for (size_t k = 0; k < widths_h94.size(); ++k) {
    const std::string p = absl::StrCat("ip_adapter.", 2 * k + 1, ".");
    t[p + "to_k_ip.weight"] = {widths_h94[k], c};
    t[p + "to_v_ip.weight"] = {widths_h94[k], c};
  }
  return t;
}

// Same files, same sizes and times on disk: the same adapter.
std::string FileKey(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto time = fs::last_write_time(path, ec).time_since_epoch().count();
  return absl::StrCat(path, ":", ec ? 0 : size, ":", ec ? 0 : time);
}

}  // namespace

// image_proj.*: plain (proj, norm) or Plus (latents, proj_in, layers, proj_out, norm_out).
struct IpAdapter::Projection : torch::nn::Module {
  explicit Projection(const AdapterShape& s) : shape(s) {
    auto root = register_module("image_proj", std::make_shared<torch::nn::Module>());
    if (!s.plus) {
      proj = root->register_module("proj", MakeLinear(s.features, s.tokens * s.cross));
      norm = root->register_module("norm", MakeLayerNorm(s.cross, 1e-5));
      return;
    }
    latents = root->register_parameter("latents", torch::randn({1, s.tokens, s.dim}));
    proj = root->register_module("proj_in", MakeLinear(s.features, s.dim));
    auto layers = root->register_module("layers", std::make_shared<torch::nn::Module>());
    for (int64_t i = 0; i < s.layers; ++i) {
      blocks.push_back(layers->register_module(std::to_string(i), std::make_shared<ResamplerLayer>(s.dim, s.inner, s.ff)));
    }
    proj_out = root->register_module("proj_out", MakeLinear(s.dim, s.cross));
    norm = root->register_module("norm_out", MakeLayerNorm(s.cross, 1e-5));
  }

  // plain: image_embeds [B, features] -> [B, tokens, cross]; Plus: hidden states [B, N, features].
  torch::Tensor forward(const torch::Tensor& features) {
    const int64_t batch = features.size(0);
    if (!shape.plus) return norm(proj(features).reshape({batch, shape.tokens, shape.cross}));
    const torch::Tensor x = proj(features);
    torch::Tensor l = latents.expand({batch, -1, -1});
    for (auto& block : blocks) l = block->forward(x, l);
    return norm(proj_out(l));
  }

  AdapterShape shape;
  Linear proj{nullptr}, proj_out{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::Tensor latents;
  std::vector<std::shared_ptr<ResamplerLayer>> blocks;
};

IpAdapter::~IpAdapter() = default;

absl::StatusOr<std::unique_ptr<IpAdapter>> IpAdapter::Load(const IpAdapterSpec& spec, UNetImpl& unet,
                                                           const torch::Device& device, torch::ScalarType dtype) {
  ASSIGN_OR_RETURN(ClipVisionConfig encoder_config, LoadClipVisionConfig(spec.encoder_dir));
  const std::string encoder_file = (fs::path(spec.encoder_dir) / "model.safetensors").string();
  ASSIGN_OR_RETURN(auto encoder_weights, SafetensorsFile::Open(encoder_file));
  RETURN_IF_ERROR(CheckTensors(*encoder_weights, ClipVisionTensors(encoder_config)));

  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(spec.adapter_path));
  const std::vector<CrossLayer> layers = CrossLayers(unet);
  if (layers.empty()) return absl::FailedPreconditionError("IP-Adapter: the model has no cross-attention layers");
  const int64_t cross = layers[0].context;
  ASSIGN_OR_RETURN(AdapterShape shape, ReadShape(*file, cross));
  const int64_t wanted = shape.plus ? encoder_config.hidden_size : encoder_config.projection_dim;
  if (shape.features != wanted) {
    return absl::InvalidArgumentError(absl::StrCat(
        spec.adapter_path, ": tensor '", shape.plus ? "image_proj.proj_in.weight" : "image_proj.proj.weight", "' reads ",
        shape.features, " features but the image encoder's '", shape.plus ? "hidden_size" : "projection_dim", "' is ",
        wanted, " (", spec.encoder_dir, "/config.json): the adapter was made for another encoder"));
  }
  size_t ip_layers = 0;
  for (const TensorView& t : file->tensors()) ip_layers += absl::EndsWith(t.name, ".to_k_ip.weight");
  if (ip_layers != layers.size()) {
    return absl::InvalidArgumentError(absl::StrCat(spec.adapter_path, ": ", ip_layers, " ip_adapter.N.to_k_ip layers, the model has ",
                                                   layers.size(), " cross-attention layers: the adapter was made for another model"));
  }
  const std::vector<size_t> order = H94Order(layers);
  std::vector<int64_t> widths;
  for (size_t index : order) widths.push_back(layers[index].width);
  const ExpectedTensors expected = AdapterTensors(shape, widths);
  RETURN_IF_ERROR(CheckTensors(*file, expected));
  for (const TensorView& t : file->tensors()) {
    if (!expected.count(t.name)) {
      return absl::InvalidArgumentError(absl::StrCat(spec.adapter_path, ": unexpected tensor '", t.name,
                                                     "' (not part of an IP-Adapter in h94's layout)"));
    }
  }

  torch::NoGradGuard no_grad;
  std::unique_ptr<IpAdapter> adapter(new IpAdapter());
  adapter->plus_ = shape.plus;
  adapter->device_ = device;
  adapter->dtype_ = dtype;
  adapter->encoder_ = ClipVisionEncoder(encoder_config);
  CopyParameters(*adapter->encoder_, *encoder_weights);
  adapter->projection_ = std::make_shared<Projection>(shape);
  auto ip = adapter->projection_->register_module("ip_adapter", std::make_shared<torch::nn::Module>());
  adapter->to_k_.resize(layers.size(), nullptr);
  adapter->to_v_.resize(layers.size(), nullptr);
  for (size_t k = 0; k < order.size(); ++k) {
    auto layer = ip->register_module(std::to_string(2 * k + 1), std::make_shared<torch::nn::Module>());
    adapter->to_k_[order[k]] = layer->register_module("to_k_ip", MakeLinear(cross, widths[k], false));
    adapter->to_v_[order[k]] = layer->register_module("to_v_ip", MakeLinear(cross, widths[k], false));
  }
  CopyParameters(*adapter->projection_, *file);
  for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(adapter->encoder_.get()),
                               static_cast<torch::nn::Module*>(adapter->projection_.get())}) {
    m->eval();
    m->to(device, dtype);
  }
  spdlog::info("IP-Adapter{} {} with image encoder {} ({} layers, {} tokens per image)", shape.plus ? " Plus" : "",
               spec.adapter_path, spec.encoder_dir, encoder_config.num_hidden_layers, shape.tokens);
  return adapter;
}

torch::Tensor IpAdapter::Tokens(const ClipVisionOutput& encoded) {
  return projection_->forward(plus_ ? encoded.penultimate : encoded.image_embeds);
}

torch::Tensor IpAdapter::UnconditionalTokens() {
  // plain: zeros in place of image_embeds; Plus: the encoding of an all-zero (normalised) image.
  const int size = encoder_->config().image_size;
  if (!plus_) {
    return projection_->forward(torch::zeros({1, encoder_->config().projection_dim}, torch::dtype(dtype_).device(device_)));
  }
  return Tokens(encoder_->forward(torch::zeros({1, 3, size, size}, torch::dtype(dtype_).device(device_))));
}

torch::Tensor IpAdapter::ImageKV(const torch::Tensor& tokens) {
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < to_k_.size(); ++i) {
    parts.push_back(to_k_[i](tokens).flatten());
    parts.push_back(to_v_[i](tokens).flatten());
  }
  return torch::cat(parts);
}

torch::Tensor IpAdapter::BatchKV(const std::vector<ImageRequest>& images, bool guided) {
  torch::NoGradGuard no_grad;
  const int size = encoder_->config().image_size;
  std::vector<torch::Tensor> pixels;
  for (const ImageRequest& image : images) {
    for (const RgbImage& reference : image.reference_images) pixels.push_back(ClipPixels(reference, size));
  }
  const int64_t n = static_cast<int64_t>(images.size());
  const int64_t per_image = static_cast<int64_t>(pixels.size()) / n;
  // Every reference image through the encoder and projection once, in one batch.
  torch::Tensor tokens = Tokens(encoder_->forward(torch::cat(pixels).to(device_, dtype_)));
  tokens = tokens.reshape({n, per_image * tokens.size(1), tokens.size(2)});
  if (guided) {
    torch::Tensor uncond = UnconditionalTokens().repeat({n, per_image, 1});
    tokens = torch::cat({uncond, tokens}, 0);
  }
  return ImageKV(tokens.contiguous());
}

absl::StatusOr<IpAdapter*> IpAdapterCache::Get(const IpAdapterSpec& spec, UNetImpl& unet, const torch::Device& device,
                                               torch::ScalarType dtype) {
  const std::string key = FileKey(spec.adapter_path) + "|" + FileKey((fs::path(spec.encoder_dir) / "model.safetensors").string()) +
                          "|" + FileKey((fs::path(spec.encoder_dir) / "config.json").string());
  if (adapter_ && key == key_) return adapter_.get();
  adapter_.reset();  // the old one's memory first
  ASSIGN_OR_RETURN(adapter_, IpAdapter::Load(spec, unet, device, dtype));
  key_ = key;
  return adapter_.get();
}

}  // namespace spriteforge::engine
