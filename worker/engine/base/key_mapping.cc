#include "worker/engine/base/key_mapping.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace spriteforge::engine {
namespace {

bool Consume(std::string& s, const std::string& prefix) {
  if (s.rfind(prefix, 0) != 0) return false;
  s = s.substr(prefix.size());
  return true;
}

// Splits "12.rest" into 12 and "rest".
bool TakeIndex(std::string& s, int& index) {
  size_t dot = s.find('.');
  if (dot == std::string::npos || dot == 0) return false;
  for (size_t i = 0; i < dot; ++i) if (s[i] < '0' || s[i] > '9') return false;
  index = std::atoi(s.substr(0, dot).c_str());
  s = s.substr(dot + 1);
  return true;
}

// Renames that hold for every resnet: ldm's in_layers/out_layers vs diffusers' norm/conv.
std::string ResnetName(std::string rest) {
  static const std::pair<const char*, const char*> kRenames[] = {
      {"in_layers.0.", "norm1."},     {"in_layers.2.", "conv1."},  {"emb_layers.1.", "time_emb_proj."},
      {"out_layers.0.", "norm2."},    {"out_layers.3.", "conv2."}, {"skip_connection.", "conv_shortcut."},
      {"nin_shortcut.", "conv_shortcut."},
  };
  for (const auto& [from, to] : kRenames) {
    if (Consume(rest, from)) return std::string(to) + rest;
  }
  return rest;  // the VAE's resnets already use norm1/conv1/norm2/conv2
}

bool LevelHasAttention(const std::vector<std::string>& types, int level) {
  return level >= 0 && level < static_cast<int>(types.size()) && types[level].rfind("CrossAttn", 0) == 0;
}

std::vector<MappedKey> MapUNet(std::string k, const UNetConfig& c) {
  const int per = c.layers_per_block;
  auto unet = [](std::string name) { return std::vector<MappedKey>{{Component::kUNet, std::move(name)}}; };
  int index = 0, sub = 0;
  if (Consume(k, "time_embed.0.")) return unet("time_embedding.linear_1." + k);
  if (Consume(k, "time_embed.2.")) return unet("time_embedding.linear_2." + k);
  if (Consume(k, "label_emb.0.0.")) return unet("add_embedding.linear_1." + k);
  if (Consume(k, "label_emb.0.2.")) return unet("add_embedding.linear_2." + k);
  if (Consume(k, "out.0.")) return unet("conv_norm_out." + k);
  if (Consume(k, "out.2.")) return unet("conv_out." + k);
  if (Consume(k, "input_blocks.") && TakeIndex(k, index) && TakeIndex(k, sub)) {
    if (index == 0) return unet("conv_in." + k);
    const int level = (index - 1) / (per + 1), j = (index - 1) % (per + 1);
    const std::string block = absl::StrCat("down_blocks.", level, ".");
    if (j == per) {  // the level's downsampler: op -> conv
      if (Consume(k, "op.")) return unet(block + "downsamplers.0.conv." + k);
      return {};
    }
    if (sub == 0) return unet(absl::StrCat(block, "resnets.", j, ".", ResnetName(k)));
    return unet(absl::StrCat(block, "attentions.", j, ".", k));
  }
  if (Consume(k, "middle_block.") && TakeIndex(k, index)) {
    if (index == 1) return unet("mid_block.attentions.0." + k);
    return unet(absl::StrCat("mid_block.resnets.", index / 2, ".", ResnetName(k)));
  }
  if (Consume(k, "output_blocks.") && TakeIndex(k, index) && TakeIndex(k, sub)) {
    const int level = index / (per + 1), j = index % (per + 1);
    const std::string block = absl::StrCat("up_blocks.", level, ".");
    const bool attention = LevelHasAttention(c.up_block_types, level);
    if (sub == 0) return unet(absl::StrCat(block, "resnets.", j, ".", ResnetName(k)));
    if (sub == 1 && attention) return unet(absl::StrCat(block, "attentions.", j, ".", k));
    return unet(block + "upsamplers.0." + k);  // conv.weight / conv.bias
  }
  return {};
}

std::vector<MappedKey> MapVae(std::string k, const VaeConfig& c) {
  auto vae = [](std::string name, Transform t = Transform::kNone) {
    return std::vector<MappedKey>{{Component::kVae, std::move(name), t}};
  };
  std::string coder;
  if (Consume(k, "encoder.")) coder = "encoder.";
  else if (Consume(k, "decoder.")) coder = "decoder.";
  else return vae(k);  // quant_conv, post_quant_conv
  int level = 0, j = 0;
  if (Consume(k, "norm_out.")) return vae(coder + "conv_norm_out." + k);
  if (Consume(k, "mid.block_1.")) return vae(coder + "mid_block.resnets.0." + ResnetName(k));
  if (Consume(k, "mid.block_2.")) return vae(coder + "mid_block.resnets.1." + ResnetName(k));
  if (Consume(k, "mid.attn_1.")) {
    static const std::pair<const char*, const char*> kAttention[] = {
        {"norm.", "group_norm."}, {"q.", "to_q."}, {"k.", "to_k."}, {"v.", "to_v."}, {"proj_out.", "to_out.0."}};
    for (const auto& [from, to] : kAttention) {
      if (Consume(k, from)) {
        const bool squeeze = std::string(from) != "norm." && k == "weight";
        return vae(coder + "mid_block.attentions.0." + to + k, squeeze ? Transform::kSqueezeConv : Transform::kNone);
      }
    }
    return {};
  }
  const bool decoder = coder == "decoder.";
  if (Consume(k, decoder ? "up." : "down.") && TakeIndex(k, level)) {
    // The original counts decoder levels from the lowest resolution up; diffusers the other way.
    const std::string block = decoder ? absl::StrCat("up_blocks.", static_cast<int>(c.block_out_channels.size()) - 1 - level, ".")
                                      : absl::StrCat("down_blocks.", level, ".");
    if (Consume(k, "block.") && TakeIndex(k, j)) return vae(absl::StrCat(coder, block, "resnets.", j, ".", ResnetName(k)));
    if (Consume(k, "upsample.")) return vae(coder + block + "upsamplers.0." + k);
    if (Consume(k, "downsample.")) return vae(coder + block + "downsamplers.0." + k);
    return {};
  }
  return vae(coder + k);  // conv_in, conv_out
}

std::vector<MappedKey> MapOpenClip(std::string k) {
  auto te2 = [](std::string name, Transform t = Transform::kNone) {
    return std::vector<MappedKey>{{Component::kTextEncoder2, std::move(name), t}};
  };
  if (k == "positional_embedding") return te2("text_model.embeddings.position_embedding.weight");
  if (k == "text_projection") return te2("text_projection.weight", Transform::kTranspose);
  if (Consume(k, "token_embedding.")) return te2("text_model.embeddings.token_embedding." + k);
  if (Consume(k, "ln_final.")) return te2("text_model.final_layer_norm." + k);
  int layer = 0;
  if (Consume(k, "transformer.resblocks.") && TakeIndex(k, layer)) {
    const std::string base = absl::StrCat("text_model.encoder.layers.", layer, ".");
    if (k == "attn.in_proj_weight" || k == "attn.in_proj_bias") {
      const std::string suffix = absl::EndsWith(k, "weight") ? "weight" : "bias";
      return {{Component::kTextEncoder2, base + "self_attn.q_proj." + suffix, Transform::kSliceQ},
              {Component::kTextEncoder2, base + "self_attn.k_proj." + suffix, Transform::kSliceK},
              {Component::kTextEncoder2, base + "self_attn.v_proj." + suffix, Transform::kSliceV}};
    }
    static const std::pair<const char*, const char*> kRenames[] = {
        {"attn.out_proj.", "self_attn.out_proj."}, {"ln_1.", "layer_norm1."}, {"ln_2.", "layer_norm2."},
        {"mlp.c_fc.", "mlp.fc1."}, {"mlp.c_proj.", "mlp.fc2."}};
    for (const auto& [from, to] : kRenames) {
      if (Consume(k, from)) return te2(base + to + k);
    }
  }
  return {};  // logit_scale and anything else the pipeline does not use
}

}  // namespace

const char* ComponentFolder(Component c) {
  switch (c) {
    case Component::kTextEncoder: return "text_encoder";
    case Component::kTextEncoder2: return "text_encoder_2";
    case Component::kUNet: return "unet";
    case Component::kVae: return "vae";
  }
  return "";
}

std::vector<MappedKey> MapOriginalKey(const std::string& key, const SdxlConfig& config) {
  std::string k = key;
  if (Consume(k, "model.diffusion_model.")) return MapUNet(k, config.unet);
  if (Consume(k, "first_stage_model.")) return MapVae(k, config.vae);
  if (Consume(k, "conditioner.embedders.0.transformer.")) {
    if (absl::EndsWith(k, "position_ids")) return {};
    return {{Component::kTextEncoder, k}};
  }
  if (Consume(k, "conditioner.embedders.1.model.")) return MapOpenClip(k);
  return {};
}

}  // namespace spriteforge::engine
