#include "worker/engine/base/controlnet_config.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "worker/engine/base/safetensors.h"

namespace spriteforge::engine {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using Shape = std::vector<int64_t>;

absl::Status Refuse(const std::string& file, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", what));
}

// A string field that must be one of `allowed` (the first is its default).
absl::Status ExpectOneOf(const Json& j, const std::string& file, const char* key,
                         const std::vector<std::string>& allowed, std::string* value = nullptr) {
  std::string v = allowed.front();
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) {
    if (!it->is_string()) return Refuse(file, absl::StrCat("field '", key, "' has the wrong type"));
    v = it->get<std::string>();
  }
  if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
    return Refuse(file, absl::StrCat("field '", key, "' is '", v, "', this engine supports ",
                                     absl::StrJoin(allowed, " or ")));
  }
  if (value) *value = v;
  return absl::OkStatus();
}

absl::Status ExpectNull(const Json& j, const std::string& file, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  return Refuse(file, absl::StrCat("field '", key, "' is ", it->dump(), ", this engine supports null only"));
}

// The encoder's fields are the UNet's: they parse as a UNet config, with the up path (which
// a ControlNet does not have) mirrored from the down path so the per-level checks hold.
absl::StatusOr<UNetConfig> ParseEncoder(Json j, const std::string& file) {
  if (!j.contains("up_block_types") && j.contains("down_block_types") && j["down_block_types"].is_array()) {
    Json up = Json::array();
    for (auto it = j["down_block_types"].rbegin(); it != j["down_block_types"].rend(); ++it) {
      up.push_back(it->is_string() && absl::StartsWith(it->get<std::string>(), "CrossAttn") ? "CrossAttnUpBlock2D" : "UpBlock2D");
    }
    j["up_block_types"] = up;
  }
  // diffusers' attention_head_dim is the number of heads; num_attention_heads, where set, wins.
  if (j.contains("num_attention_heads") && !j["num_attention_heads"].is_null()) {
    j["attention_head_dim"] = j["num_attention_heads"];
  }
  return ParseUNetConfig(j.dump(), file);
}

absl::Status CheckShape(const SafetensorsFile& file, const std::string& name, const Shape& shape) {
  const TensorView* view = file.Find(name);
  if (!view) {
    return Refuse(file.path(), absl::StrCat("missing tensor ", name, " (not a ControlNet, or config.json does not describe it)"));
  }
  if (view->shape != shape) {
    return Refuse(file.path(), absl::StrCat("tensor ", name, " has shape [", absl::StrJoin(view->shape, ", "),
                                            "], config.json expects [", absl::StrJoin(shape, ", "), "]"));
  }
  if (view->dtype != DType::kF16 && view->dtype != DType::kBF16 && view->dtype != DType::kF32) {
    return Refuse(file.path(), absl::StrCat("tensor ", name, " is ", std::string(DTypeName(view->dtype)),
                                            ", weights must be F16, BF16 or F32"));
  }
  return absl::OkStatus();
}

absl::Status CheckAbsent(const SafetensorsFile& file, const std::string& name) {
  if (!file.Find(name)) return absl::OkStatus();
  return Refuse(file.path(), absl::StrCat("tensor ", name, " is one layer more than config.json has"));
}

}  // namespace

std::vector<int> ControlNetConfig::ResidualChannels() const {
  const auto& ch = encoder.block_out_channels;
  std::vector<int> out = {ch.front()};
  for (size_t level = 0; level < ch.size(); ++level) {
    for (int j = 0; j < encoder.layers_per_block; ++j) out.push_back(ch[level]);
    if (level + 1 < ch.size()) out.push_back(ch[level]);
  }
  return out;
}

absl::StatusOr<ControlNetConfig> ParseControlNetConfig(const std::string& text, const std::string& file) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Refuse(file, "not a JSON object");
  const std::string class_name = j.value("_class_name", std::string());
  if (!class_name.empty() && class_name != "ControlNetModel") {
    return Refuse(file, absl::StrCat("field '_class_name' is '", class_name, "', not a ControlNet (ControlNetModel)"));
  }
  if (class_name.empty() && !j.contains("conditioning_embedding_out_channels")) {
    return Refuse(file, "not a ControlNet config (no _class_name, no conditioning_embedding_out_channels)");
  }
  ControlNetConfig c;
  ASSIGN_OR_RETURN(c.encoder, ParseEncoder(j, file));
  try {
    if (j.contains("conditioning_embedding_out_channels")) {
      c.conditioning_embedding_out_channels = j["conditioning_embedding_out_channels"].get<std::vector<int>>();
    }
    if (j.contains("conditioning_channels")) c.conditioning_channels = j["conditioning_channels"].get<int>();
    if (j.contains("global_pool_conditions")) c.global_pool_conditions = j["global_pool_conditions"].get<bool>();
  } catch (const Json::exception&) {
    return Refuse(file, "field 'conditioning_embedding_out_channels', 'conditioning_channels' or 'global_pool_conditions' has the wrong type");
  }
  if (c.conditioning_embedding_out_channels.empty()) return Refuse(file, "field 'conditioning_embedding_out_channels' is empty");
  for (int v : c.conditioning_embedding_out_channels) {
    if (v <= 0) return Refuse(file, "field 'conditioning_embedding_out_channels' must be positive");
  }
  if (c.conditioning_channels != 3) {
    return Refuse(file, absl::StrCat("field 'conditioning_channels' is ", c.conditioning_channels,
                                     ", control images are RGB (3)"));
  }
  std::string order;
  RETURN_IF_ERROR(ExpectOneOf(j, file, "controlnet_conditioning_channel_order", {"rgb", "bgr"}, &order));
  c.bgr = order == "bgr";
  // SDXL's pooled-text and time-id embedding; null (SD 1.5 ControlNets) is not.
  if (j.value("addition_embed_type", Json()) != Json("text_time")) {
    return Refuse(file, absl::StrCat("field 'addition_embed_type' is ", j.value("addition_embed_type", Json()).dump(),
                                     ", SDXL ControlNets use \"text_time\" (a ControlNet for SD 1.5?)"));
  }
  RETURN_IF_ERROR(ExpectOneOf(j, file, "mid_block_type", {"UNetMidBlock2DCrossAttn"}));
  RETURN_IF_ERROR(ExpectOneOf(j, file, "resnet_time_scale_shift", {"default"}));
  RETURN_IF_ERROR(ExpectNull(j, file, "class_embed_type"));
  RETURN_IF_ERROR(ExpectNull(j, file, "encoder_hid_dim_type"));
  if (!c.encoder.use_linear_projection) return Refuse(file, "field 'use_linear_projection' is false, SDXL ControlNets use true");
  return c;
}

absl::StatusOr<ControlNetFiles> FindControlNetFiles(const std::string& model_path) {
  std::error_code ec;
  const fs::path path(model_path);
  if (fs::is_directory(path, ec)) {
    if (!fs::exists(path / "config.json")) {
      return absl::NotFoundError(absl::StrCat(model_path, ": no config.json in the ControlNet folder"));
    }
    for (const char* name : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"}) {
      if (fs::exists(path / name)) return ControlNetFiles{(path / "config.json").string(), (path / name).string()};
    }
    return absl::NotFoundError(absl::StrCat(model_path, ": no diffusion_pytorch_model.safetensors in the ControlNet folder"));
  }
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat(model_path, ": ControlNet file or folder not found"));
  if (path.extension() != ".safetensors") {
    return absl::InvalidArgumentError(absl::StrCat(model_path, ": a ControlNet is a .safetensors file or a diffusers folder"));
  }
  const fs::path config = path.parent_path() / "config.json";
  if (!fs::exists(config)) {
    return absl::NotFoundError(absl::StrCat(model_path, ": no config.json beside the ControlNet file"));
  }
  return ControlNetFiles{config.string(), model_path};
}

absl::Status CheckControlNetFitsUNet(const ControlNetConfig& config, const UNetConfig& unet, const std::string& file) {
  const UNetConfig& e = config.encoder;
  auto differs = [&](const char* field, const std::string& mine, const std::string& theirs) {
    return Refuse(file, absl::StrCat("field '", field, "' is ", mine, ", the model's UNet has ", theirs,
                                     " (a ControlNet for another base model?)"));
  };
  if (e.block_out_channels != unet.block_out_channels) {
    return differs("block_out_channels", absl::StrCat("[", absl::StrJoin(e.block_out_channels, ", "), "]"),
                   absl::StrCat("[", absl::StrJoin(unet.block_out_channels, ", "), "]"));
  }
  if (e.layers_per_block != unet.layers_per_block) {
    return differs("layers_per_block", absl::StrCat(e.layers_per_block), absl::StrCat(unet.layers_per_block));
  }
  if (e.in_channels != unet.in_channels) return differs("in_channels", absl::StrCat(e.in_channels), absl::StrCat(unet.in_channels));
  if (e.cross_attention_dim != unet.cross_attention_dim) {
    return differs("cross_attention_dim", absl::StrCat(e.cross_attention_dim), absl::StrCat(unet.cross_attention_dim));
  }
  if (e.projection_class_embeddings_input_dim != unet.projection_class_embeddings_input_dim) {
    return differs("projection_class_embeddings_input_dim", absl::StrCat(e.projection_class_embeddings_input_dim),
                   absl::StrCat(unet.projection_class_embeddings_input_dim));
  }
  return absl::OkStatus();
}

absl::Status CheckControlNetWeights(const SafetensorsFile& file, const ControlNetConfig& config) {
  const UNetConfig& u = config.encoder;
  const auto& emb = config.conditioning_embedding_out_channels;
  const int64_t c0 = u.block_out_channels.front(), time_dim = 4 * c0;
  RETURN_IF_ERROR(CheckShape(file, "controlnet_cond_embedding.conv_in.weight", {emb.front(), config.conditioning_channels, 3, 3}));
  for (size_t i = 0; i + 1 < emb.size(); ++i) {
    RETURN_IF_ERROR(CheckShape(file, absl::StrCat("controlnet_cond_embedding.blocks.", 2 * i, ".weight"), {emb[i], emb[i], 3, 3}));
    RETURN_IF_ERROR(CheckShape(file, absl::StrCat("controlnet_cond_embedding.blocks.", 2 * i + 1, ".weight"), {emb[i + 1], emb[i], 3, 3}));
  }
  RETURN_IF_ERROR(CheckAbsent(file, absl::StrCat("controlnet_cond_embedding.blocks.", 2 * (emb.size() - 1), ".weight")));
  RETURN_IF_ERROR(CheckShape(file, "controlnet_cond_embedding.conv_out.weight", {c0, emb.back(), 3, 3}));
  RETURN_IF_ERROR(CheckShape(file, "conv_in.weight", {c0, u.in_channels, 3, 3}));
  RETURN_IF_ERROR(CheckShape(file, "time_embedding.linear_1.weight", {time_dim, c0}));
  RETURN_IF_ERROR(CheckShape(file, "add_embedding.linear_1.weight", {time_dim, u.projection_class_embeddings_input_dim}));
  const int per = u.layers_per_block;
  for (size_t level = 0; level < u.block_out_channels.size(); ++level) {
    const int64_t ch = u.block_out_channels[level];
    const std::string block = absl::StrCat("down_blocks.", level, ".");
    RETURN_IF_ERROR(CheckShape(file, absl::StrCat(block, "resnets.", per - 1, ".conv2.weight"), {ch, ch, 3, 3}));
    if (!absl::StartsWith(u.down_block_types[level], "CrossAttn")) {
      RETURN_IF_ERROR(CheckAbsent(file, block + "attentions.0.proj_in.weight"));
      continue;
    }
    const int layers = u.transformer_layers_per_block[level];
    const std::string attention = block + "attentions.0.transformer_blocks.";
    if (layers > 0) {
      RETURN_IF_ERROR(CheckShape(file, absl::StrCat(attention, "0.attn1.to_q.weight"), {ch, ch}));
      RETURN_IF_ERROR(CheckShape(file, absl::StrCat(attention, layers - 1, ".attn2.to_k.weight"), {ch, u.cross_attention_dim}));
    }
    RETURN_IF_ERROR(CheckAbsent(file, absl::StrCat(attention, layers, ".attn2.to_k.weight")));
  }
  const int64_t last = u.block_out_channels.back();
  const int mid_layers = u.transformer_layers_per_block.back();
  if (mid_layers > 0) {
    RETURN_IF_ERROR(CheckShape(file, absl::StrCat("mid_block.attentions.0.transformer_blocks.", mid_layers - 1, ".attn2.to_k.weight"),
                               {last, u.cross_attention_dim}));
  }
  RETURN_IF_ERROR(CheckAbsent(file, absl::StrCat("mid_block.attentions.0.transformer_blocks.", mid_layers, ".attn2.to_k.weight")));
  const std::vector<int> residuals = config.ResidualChannels();
  for (size_t i = 0; i < residuals.size(); ++i) {
    RETURN_IF_ERROR(CheckShape(file, absl::StrCat("controlnet_down_blocks.", i, ".weight"), {residuals[i], residuals[i], 1, 1}));
  }
  RETURN_IF_ERROR(CheckAbsent(file, absl::StrCat("controlnet_down_blocks.", residuals.size(), ".weight")));
  return CheckShape(file, "controlnet_mid_block.weight", {last, last, 1, 1});
}

absl::StatusOr<ControlNetConfig> CheckControlNet(const std::string& model_path, const UNetConfig& unet) {
  ASSIGN_OR_RETURN(auto files, FindControlNetFiles(model_path));
  ASSIGN_OR_RETURN(auto text, ReadFile(files.config));
  ASSIGN_OR_RETURN(auto config, ParseControlNetConfig(text, files.config));
  RETURN_IF_ERROR(CheckControlNetFitsUNet(config, unet, files.config));
  ASSIGN_OR_RETURN(auto weights, SafetensorsFile::Open(files.weights));
  RETURN_IF_ERROR(CheckControlNetWeights(*weights, config));
  return config;
}

}  // namespace spriteforge::engine
