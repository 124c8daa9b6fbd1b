#include "worker/engine/bench/random_controls.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "worker/engine/base/controlnet_config.h"
#include "worker/engine/base/model_config.h"
#include "worker/engine/bench/random_lora.h"

namespace spriteforge::bench {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using engine::UNetConfig;

// How a tensor is filled: weights uniform in +-scale/sqrt(fan_in) (torch's default for
// Linear layers, which the engine's random models use), values uniform in +-scale
// (embeddings), norms' scales 1, biases 0.
enum class Fill { kWeight, kValue, kOnes, kZeros };

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  Fill fill = Fill::kWeight;
  float scale = 1.0f;
};
using Tensors = std::vector<Tensor>;

void AddLinear(Tensors& t, const std::string& name, int64_t in, int64_t out, bool bias = true) {
  t.push_back({name + ".weight", {out, in}});
  if (bias) t.push_back({name + ".bias", {out}, Fill::kZeros});
}

void AddConv(Tensors& t, const std::string& name, int64_t in, int64_t out, int64_t kernel, float scale = 1.0f) {
  t.push_back({name + ".weight", {out, in, kernel, kernel}, Fill::kWeight, scale});
  t.push_back({name + ".bias", {out}, Fill::kZeros});
}

void AddNorm(Tensors& t, const std::string& name, int64_t dim) {
  t.push_back({name + ".weight", {dim}, Fill::kOnes});
  t.push_back({name + ".bias", {dim}, Fill::kZeros});
}

// diffusers' ResnetBlock2D.
void AddResnet(Tensors& t, const std::string& p, int64_t in, int64_t out, int64_t temb) {
  AddNorm(t, p + ".norm1", in);
  AddConv(t, p + ".conv1", in, out, 3);
  AddLinear(t, p + ".time_emb_proj", temb, out);
  AddNorm(t, p + ".norm2", out);
  AddConv(t, p + ".conv2", out, out, 3);
  if (in != out) AddConv(t, p + ".conv_shortcut", in, out, 1);
}

// diffusers' Transformer2DModel with linear projections and `depth` BasicTransformerBlocks.
void AddTransformer(Tensors& t, const std::string& p, int64_t ch, int depth, int64_t context) {
  AddNorm(t, p + ".norm", ch);
  AddLinear(t, p + ".proj_in", ch, ch);
  for (int i = 0; i < depth; ++i) {
    const std::string b = absl::StrCat(p, ".transformer_blocks.", i);
    AddNorm(t, b + ".norm1", ch);
    for (const char* q : {".attn1.to_q", ".attn1.to_k", ".attn1.to_v"}) AddLinear(t, b + q, ch, ch, false);
    AddLinear(t, b + ".attn1.to_out.0", ch, ch);
    AddNorm(t, b + ".norm2", ch);
    AddLinear(t, b + ".attn2.to_q", ch, ch, false);
    AddLinear(t, b + ".attn2.to_k", context, ch, false);
    AddLinear(t, b + ".attn2.to_v", context, ch, false);
    AddLinear(t, b + ".attn2.to_out.0", ch, ch);
    AddNorm(t, b + ".norm3", ch);
    AddLinear(t, b + ".ff.net.0.proj", ch, 8 * ch);  // GEGLU: value and gate
    AddLinear(t, b + ".ff.net.2", 4 * ch, ch);
  }
  AddLinear(t, p + ".proj_out", ch, ch);
}

bool IsCrossAttention(const std::string& block_type) { return block_type.rfind("CrossAttn", 0) == 0; }

// Every tensor of diffusers' ControlNetModel for `c` (the engine's ControlNet names them alike).
Tensors ControlNetTensors(const engine::ControlNetConfig& c) {
  const UNetConfig& u = c.encoder;
  const auto& ch = u.block_out_channels;
  const int64_t temb = 4 * ch[0];
  Tensors t;
  AddConv(t, "conv_in", u.in_channels, ch[0], 3);
  AddLinear(t, "time_embedding.linear_1", ch[0], temb);
  AddLinear(t, "time_embedding.linear_2", temb, temb);
  AddLinear(t, "add_embedding.linear_1", u.projection_class_embeddings_input_dim, temb);
  AddLinear(t, "add_embedding.linear_2", temb, temb);
  const auto& widths = c.conditioning_embedding_out_channels;
  AddConv(t, "controlnet_cond_embedding.conv_in", c.conditioning_channels, widths.front(), 3);
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    AddConv(t, absl::StrCat("controlnet_cond_embedding.blocks.", 2 * i), widths[i], widths[i], 3);
    AddConv(t, absl::StrCat("controlnet_cond_embedding.blocks.", 2 * i + 1), widths[i], widths[i + 1], 3);
  }
  AddConv(t, "controlnet_cond_embedding.conv_out", widths.back(), ch[0], 3);
  int64_t in = ch[0];
  for (size_t level = 0; level < ch.size(); ++level) {
    const std::string block = absl::StrCat("down_blocks.", level);
    for (int j = 0; j < u.layers_per_block; ++j) {
      AddResnet(t, absl::StrCat(block, ".resnets.", j), in, ch[level], temb);
      in = ch[level];
      if (IsCrossAttention(u.down_block_types[level])) {
        AddTransformer(t, absl::StrCat(block, ".attentions.", j), ch[level], u.transformer_layers_per_block[level],
                       u.cross_attention_dim);
      }
    }
    if (level + 1 < ch.size()) AddConv(t, block + ".downsamplers.0.conv", ch[level], ch[level], 3);
  }
  for (int j = 0; j < 2; ++j) AddResnet(t, absl::StrCat("mid_block.resnets.", j), ch.back(), ch.back(), temb);
  AddTransformer(t, "mid_block.attentions.0", ch.back(), u.transformer_layers_per_block.back(), u.cross_attention_dim);
  // The 1x1 convolutions each residual leaves through: zero when training starts, small after.
  const std::vector<int> residuals = c.ResidualChannels();
  for (size_t i = 0; i < residuals.size(); ++i) {
    AddConv(t, absl::StrCat("controlnet_down_blocks.", i), residuals[i], residuals[i], 1, 0.05f);
  }
  AddConv(t, "controlnet_mid_block", ch.back(), ch.back(), 1, 0.05f);
  return t;
}

// diffusers' config.json of an SDXL ControlNet for `unet`. The small variant has no
// transformer blocks at all (its mid block keeps the norm and projections around none):
// the config with that gives diffusers/controlnet-canny-sdxl-1.0-small's 320 MB in fp16.
Json ControlNetConfigJson(const UNetConfig& unet, bool small) {
  std::vector<std::string> down = unet.down_block_types;
  std::vector<int> depth = unet.transformer_layers_per_block;
  if (small) {
    for (std::string& type : down) type = "DownBlock2D";
    for (int& d : depth) d = 0;
  }
  return {{"_class_name", "ControlNetModel"},
          {"act_fn", "silu"},
          {"addition_embed_type", "text_time"},
          {"addition_embed_type_num_heads", 64},
          {"addition_time_embed_dim", unet.addition_time_embed_dim},
          {"attention_head_dim", unet.attention_head_dim},
          {"block_out_channels", unet.block_out_channels},
          {"class_embed_type", nullptr},
          {"conditioning_channels", 3},
          {"conditioning_embedding_out_channels", {16, 32, 96, 256}},
          {"controlnet_conditioning_channel_order", "rgb"},
          {"cross_attention_dim", unet.cross_attention_dim},
          {"down_block_types", down},
          {"downsample_padding", 1},
          {"encoder_hid_dim", nullptr},
          {"encoder_hid_dim_type", nullptr},
          {"flip_sin_to_cos", unet.flip_sin_to_cos},
          {"freq_shift", unet.freq_shift},
          {"global_pool_conditions", false},
          {"in_channels", unet.in_channels},
          {"layers_per_block", unet.layers_per_block},
          {"mid_block_scale_factor", 1},
          {"mid_block_type", "UNetMidBlock2DCrossAttn"},
          {"norm_eps", unet.norm_eps},
          {"norm_num_groups", unet.norm_num_groups},
          {"num_attention_heads", nullptr},
          {"num_class_embeds", nullptr},
          {"only_cross_attention", false},
          {"projection_class_embeddings_input_dim", unet.projection_class_embeddings_input_dim},
          {"resnet_time_scale_shift", "default"},
          {"transformer_layers_per_block", depth},
          {"upcast_attention", nullptr},
          {"use_linear_projection", true}};
}

// transformers' CLIPVisionConfig fields the encoder reads.
struct VisionShape {
  int64_t hidden, intermediate, layers, heads, image, patch, projection;
};

Json VisionConfigJson(const VisionShape& v) {
  return {{"architectures", {"CLIPVisionModelWithProjection"}},
          {"model_type", "clip_vision_model"},
          {"hidden_act", "gelu"},
          {"hidden_size", v.hidden},
          {"image_size", v.image},
          {"intermediate_size", v.intermediate},
          {"layer_norm_eps", 1e-5},
          {"num_attention_heads", v.heads},
          {"num_channels", 3},
          {"num_hidden_layers", v.layers},
          {"patch_size", v.patch},
          {"projection_dim", v.projection},
          {"torch_dtype", "float16"}};
}

Tensors VisionTensors(const VisionShape& v) {
  const int64_t h = v.hidden, grid = v.image / v.patch;
  const std::string m = "vision_model.";
  // Embeddings small, as CLIP's initialiser (std 0.02) has them; the patch convolution a weight.
  Tensors t = {{m + "embeddings.class_embedding", {h}, Fill::kValue, 0.02f},
               {m + "embeddings.patch_embedding.weight", {h, 3, v.patch, v.patch}},
               {m + "embeddings.position_embedding.weight", {grid * grid + 1, h}, Fill::kValue, 0.02f}};
  AddNorm(t, m + "pre_layrnorm", h);
  for (int64_t i = 0; i < v.layers; ++i) {
    const std::string l = absl::StrCat(m, "encoder.layers.", i, ".");
    AddNorm(t, l + "layer_norm1", h);
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) AddLinear(t, l + "self_attn." + proj, h, h);
    AddNorm(t, l + "layer_norm2", h);
    AddLinear(t, l + "mlp.fc1", h, v.intermediate);
    AddLinear(t, l + "mlp.fc2", v.intermediate, h);
  }
  AddNorm(t, m + "post_layernorm", h);
  AddLinear(t, "visual_projection", h, v.projection, false);
  return t;
}

// h94's Resampler: width, attention width (heads of 64), tokens, depth, feed-forward width.
struct ResamplerShape {
  int64_t dim, inner, tokens, depth, ff;
};

// The widths of the UNet's cross-attention layers in h94's numbering (ip_adapter.1, .3, ...):
// down blocks, up blocks, then the mid block, as diffusers registers its attention processors.
std::vector<int64_t> CrossAttentionWidthsH94(const UNetConfig& u) {
  const auto& ch = u.block_out_channels;
  const int levels = static_cast<int>(ch.size());
  std::vector<int64_t> widths;
  for (int level = 0; level < levels; ++level) {
    if (!IsCrossAttention(u.down_block_types[level])) continue;
    widths.insert(widths.end(), static_cast<size_t>(u.layers_per_block) * u.transformer_layers_per_block[level], ch[level]);
  }
  for (int i = 0; i < levels; ++i) {
    const int level = levels - 1 - i;  // up block i works at level L-1-i, with the down path's depth there
    if (!IsCrossAttention(u.up_block_types[i])) continue;
    widths.insert(widths.end(), static_cast<size_t>(u.layers_per_block + 1) * u.transformer_layers_per_block[level], ch[level]);
  }
  widths.insert(widths.end(), u.transformer_layers_per_block.back(), ch.back());
  return widths;
}

Tensors IpAdapterPlusTensors(const UNetConfig& unet, const ResamplerShape& r, int64_t features) {
  const int64_t cross = unet.cross_attention_dim;
  // The learned queries: randn / sqrt(dim) in h94's initialiser.
  Tensors t = {{"image_proj.latents", {1, r.tokens, r.dim}, Fill::kValue, 1.0f / std::sqrt(static_cast<float>(r.dim))}};
  AddLinear(t, "image_proj.proj_in", features, r.dim);
  for (int64_t i = 0; i < r.depth; ++i) {
    const std::string p = absl::StrCat("image_proj.layers.", i, ".");
    AddNorm(t, p + "0.norm1", r.dim);
    AddNorm(t, p + "0.norm2", r.dim);
    AddLinear(t, p + "0.to_q", r.dim, r.inner, false);
    AddLinear(t, p + "0.to_kv", r.dim, 2 * r.inner, false);
    AddLinear(t, p + "0.to_out", r.inner, r.dim, false);
    AddNorm(t, p + "1.0", r.dim);
    AddLinear(t, p + "1.1", r.dim, r.ff, false);
    AddLinear(t, p + "1.3", r.ff, r.dim, false);
  }
  AddLinear(t, "image_proj.proj_out", r.dim, cross);
  AddNorm(t, "image_proj.norm_out", cross);
  const std::vector<int64_t> widths = CrossAttentionWidthsH94(unet);
  for (size_t k = 0; k < widths.size(); ++k) {
    const std::string p = absl::StrCat("ip_adapter.", 2 * k + 1, ".");
    AddLinear(t, p + "to_k_ip", cross, widths[k], false);
    AddLinear(t, p + "to_v_ip", cross, widths[k], false);
  }
  return t;
}

// Fast uniform fp16 values: splitmix64 draws index a table of 4096 evenly spaced values, so
// gigabytes of weights take seconds.
class Filler {
 public:
  explicit Filler(uint64_t seed) : state_(seed) {}

  void Fill(const Tensor& tensor, std::vector<uint16_t>& out) {
    if (tensor.fill == Fill::kOnes || tensor.fill == Fill::kZeros) {
      std::fill(out.begin(), out.end(), ToHalf(tensor.fill == Fill::kOnes ? 1.0f : 0.0f));
      return;
    }
    int64_t fan_in = 1;
    for (size_t i = 1; i < tensor.shape.size(); ++i) fan_in *= tensor.shape[i];
    const float bound = tensor.fill == Fill::kValue ? tensor.scale : tensor.scale / std::sqrt(static_cast<float>(fan_in));
    for (int k = 0; k < kLevels; ++k) table_[k] = ToHalf(bound * ((k + 0.5f) * 2.0f / kLevels - 1.0f));
    size_t i = 0;
    while (i < out.size()) {
      uint64_t bits = Next();
      for (int j = 0; j < 5 && i < out.size(); ++j, bits >>= 12) out[i++] = table_[bits & (kLevels - 1)];
    }
  }

 private:
  static constexpr int kLevels = 4096;
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t state_;
  uint16_t table_[kLevels];
};

uint64_t Elements(const Tensor& t) {
  uint64_t n = 1;
  for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
  return n;
}

// A safetensors file of `tensors` in fp16, in their order; returns its size.
absl::StatusOr<uint64_t> WriteSafetensors(const fs::path& path, const Tensors& tensors, Filler& filler) {
  Json header = Json::object();
  uint64_t offset = 0;
  for (const Tensor& t : tensors) {
    const uint64_t bytes = Elements(t) * 2;
    header[t.name] = {{"dtype", "F16"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  header["__metadata__"] = {{"format", "pt"}};
  std::string text = header.dump();
  while ((text.size() + 8) % 8) text.push_back(' ');
  std::ofstream f(path, std::ios::binary);
  if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", path.string()));
  const uint64_t n = text.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  std::vector<uint16_t> values;
  for (const Tensor& t : tensors) {
    values.resize(Elements(t));
    filler.Fill(t, values);
    f.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * 2));
  }
  if (!f.flush()) return absl::DataLossError(absl::StrCat("writing ", path.string(), " failed"));
  return 8 + n + offset;
}

absl::Status WriteJson(const fs::path& path, const Json& json) {
  std::ofstream f(path);
  f << json.dump(2) << "\n";
  if (!f.flush()) return absl::DataLossError(absl::StrCat("writing ", path.string(), " failed"));
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> WriteControlNet(const fs::path& folder, const UNetConfig& unet, bool small, Filler& filler) {
  fs::create_directories(folder);
  const Json config = ControlNetConfigJson(unet, small);
  RETURN_IF_ERROR(WriteJson(folder / "config.json", config));
  // Parsed back as the engine parses it, so the tensors follow the config the engine reads.
  ASSIGN_OR_RETURN(auto parsed, engine::ParseControlNetConfig(config.dump(), (folder / "config.json").string()));
  return WriteSafetensors(folder / "diffusion_pytorch_model.safetensors", ControlNetTensors(parsed), filler);
}

}  // namespace

absl::StatusOr<uint64_t> WriteRandomControls(const std::string& dir, const std::string& model, uint64_t seed) {
  const bool tiny = model == "builtin:tiny";
  if (!tiny && model != "builtin:sdxl-base") {
    return absl::InvalidArgumentError(absl::StrCat("random ControlNets and IP-Adapters are written for builtin:sdxl-base or "
                                                   "builtin:tiny, not '", model, "'"));
  }
  const fs::path root(dir);
  const fs::path done = root / "complete.json";
  if (auto text = ReadFile(done.string()); text.ok()) {
    const Json j = Json::parse(*text, nullptr, false);
    if (j.is_object() && j.value("model", "") == model && j.value("seed", uint64_t{0}) == seed) {
      return j.value("bytes", uint64_t{0});
    }
  }
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const UNetConfig unet = tiny ? engine::TinySdxlConfig().unet : engine::SdxlBaseConfig().unet;
  // ViT-H/14 and h94's Plus resampler for SDXL; the same shapes scaled down for the tiny model.
  const VisionShape vision = tiny ? VisionShape{32, 64, 2, 4, 32, 8, 24} : VisionShape{1280, 5120, 32, 16, 224, 14, 1024};
  const ResamplerShape resampler = tiny ? ResamplerShape{64, 64, 4, 2, 256} : ResamplerShape{1280, 1280, 16, 4, 5120};
  Filler filler(seed);
  uint64_t bytes = 0;
  for (const auto& [name, small] : {std::pair{kFullControlNet, false}, std::pair{kSmallControlNet, true}}) {
    ASSIGN_OR_RETURN(uint64_t n, WriteControlNet(root / kControlNetDir / name, unet, small, filler));
    bytes += n;
  }
  const fs::path adapters = root / kIpAdapterDir;
  fs::create_directories(adapters / kImageEncoder, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", (adapters / kImageEncoder).string(), ": ", ec.message()));
  RETURN_IF_ERROR(WriteJson(adapters / kImageEncoder / "config.json", VisionConfigJson(vision)));
  ASSIGN_OR_RETURN(uint64_t encoder, WriteSafetensors(adapters / kImageEncoder / "model.safetensors", VisionTensors(vision), filler));
  ASSIGN_OR_RETURN(uint64_t adapter, WriteSafetensors(adapters / (std::string(kIpAdapterPlus) + ".safetensors"),
                                                      IpAdapterPlusTensors(unet, resampler, vision.hidden), filler));
  bytes += encoder + adapter;
  RETURN_IF_ERROR(WriteJson(done, {{"model", model}, {"seed", seed}, {"bytes", bytes}}));
  return bytes;
}

}  // namespace spriteforge::bench
