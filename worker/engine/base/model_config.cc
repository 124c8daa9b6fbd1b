#include "worker/engine/base/model_config.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace spriteforge::engine {
namespace {

using Json = nlohmann::json;

// Reads optional fields into a struct, remembering the first type error with its field.
class Reader {
 public:
  Reader(const Json& j, std::string file) : j_(j), file_(std::move(file)) {}

  template <typename T>
  void Get(const char* key, T& out) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null() || !status_.ok()) return;
    try {
      out = it->get<T>();
    } catch (const Json::exception&) {
      status_ = absl::InvalidArgumentError(absl::StrCat(file_, ": field '", key, "' has the wrong type"));
    }
  }

  // Fields that are either one number for every level or a list with one per level.
  void GetPerLevel(const char* key, std::vector<int>& out, size_t levels) {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null() || !status_.ok()) return;
    if (it->is_number_integer()) {
      out.assign(levels, it->get<int>());
    } else {
      Get(key, out);
    }
    if (status_.ok() && out.size() != levels) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat(file_, ": field '", key, "' needs ", levels, " entries, has ", out.size()));
    }
  }

  absl::Status status() const { return status_; }

 private:
  const Json& j_;
  std::string file_;
  absl::Status status_;
};

absl::StatusOr<Json> ParseObject(const std::string& text, const std::string& file) {
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": not a JSON object"));
  }
  return j;
}

absl::Status Positive(const std::string& file, const char* key, int value) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(file, ": field '", key, "' must be positive"));
}

}  // namespace

SdxlConfig SdxlBaseConfig() {
  SdxlConfig c;
  c.text_encoder_2.hidden_size = 1280;
  c.text_encoder_2.intermediate_size = 5120;
  c.text_encoder_2.num_hidden_layers = 32;
  c.text_encoder_2.num_attention_heads = 20;
  c.text_encoder_2.projection_dim = 1280;
  c.text_encoder_2.hidden_act = "gelu";
  return c;
}

SdxlConfig TinySdxlConfig() {
  SdxlConfig c;
  c.text_encoder = ClipTextConfig{49408, 32, 64, 3, 4, 77, 32, 49407, "quick_gelu", 1e-5};
  c.text_encoder_2 = ClipTextConfig{49408, 32, 96, 3, 2, 77, 32, 49407, "gelu", 1e-5};
  c.unet.block_out_channels = {32, 64, 64};
  c.unet.attention_head_dim = {2, 4, 4};
  c.unet.transformer_layers_per_block = {1, 1, 2};
  c.unet.cross_attention_dim = 64;
  c.unet.addition_time_embed_dim = 8;
  c.unet.projection_class_embeddings_input_dim = 80;  // pooled 32 + 6 x 8 time features
  c.vae.block_out_channels = {32, 32, 64, 64};
  return c;
}

absl::StatusOr<ClipTextConfig> ParseClipTextConfig(const std::string& text, const std::string& file) {
  ASSIGN_OR_RETURN(auto j, ParseObject(text, file));
  ClipTextConfig c;
  Reader r(j, file);
  r.Get("vocab_size", c.vocab_size);
  r.Get("hidden_size", c.hidden_size);
  r.Get("intermediate_size", c.intermediate_size);
  r.Get("num_hidden_layers", c.num_hidden_layers);
  r.Get("num_attention_heads", c.num_attention_heads);
  r.Get("max_position_embeddings", c.max_position_embeddings);
  r.Get("projection_dim", c.projection_dim);
  r.Get("eos_token_id", c.eos_token_id);
  r.Get("hidden_act", c.hidden_act);
  r.Get("layer_norm_eps", c.layer_norm_eps);
  RETURN_IF_ERROR(r.status());
  if (c.hidden_act != "gelu" && c.hidden_act != "quick_gelu") {
    return absl::InvalidArgumentError(absl::StrCat(file, ": unsupported hidden_act '", c.hidden_act, "'"));
  }
  if (c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": hidden_size must divide into num_attention_heads"));
  }
  return c;
}

absl::StatusOr<UNetConfig> ParseUNetConfig(const std::string& text, const std::string& file) {
  ASSIGN_OR_RETURN(auto j, ParseObject(text, file));
  UNetConfig c;
  Reader r(j, file);
  r.Get("in_channels", c.in_channels);
  r.Get("out_channels", c.out_channels);
  r.Get("block_out_channels", c.block_out_channels);
  r.Get("down_block_types", c.down_block_types);
  r.Get("up_block_types", c.up_block_types);
  r.Get("layers_per_block", c.layers_per_block);
  const size_t levels = c.block_out_channels.size();
  r.GetPerLevel("attention_head_dim", c.attention_head_dim, levels);
  r.GetPerLevel("transformer_layers_per_block", c.transformer_layers_per_block, levels);
  r.Get("cross_attention_dim", c.cross_attention_dim);
  r.Get("use_linear_projection", c.use_linear_projection);
  r.Get("addition_time_embed_dim", c.addition_time_embed_dim);
  r.Get("projection_class_embeddings_input_dim", c.projection_class_embeddings_input_dim);
  r.Get("norm_num_groups", c.norm_num_groups);
  r.Get("norm_eps", c.norm_eps);
  r.Get("flip_sin_to_cos", c.flip_sin_to_cos);
  r.Get("freq_shift", c.freq_shift);
  RETURN_IF_ERROR(r.status());
  if (c.down_block_types.size() != levels || c.up_block_types.size() != levels ||
      c.attention_head_dim.size() != levels || c.transformer_layers_per_block.size() != levels) {
    return absl::InvalidArgumentError(absl::StrCat(
        file, ": block types, attention_head_dim and transformer_layers_per_block need one entry per block_out_channels"));
  }
  RETURN_IF_ERROR(Positive(file, "layers_per_block", c.layers_per_block));
  return c;
}

absl::StatusOr<VaeConfig> ParseVaeConfig(const std::string& text, const std::string& file) {
  ASSIGN_OR_RETURN(auto j, ParseObject(text, file));
  VaeConfig c;
  Reader r(j, file);
  r.Get("in_channels", c.in_channels);
  r.Get("out_channels", c.out_channels);
  r.Get("latent_channels", c.latent_channels);
  r.Get("block_out_channels", c.block_out_channels);
  r.Get("layers_per_block", c.layers_per_block);
  r.Get("norm_num_groups", c.norm_num_groups);
  r.Get("scaling_factor", c.scaling_factor);
  r.Get("use_quant_conv", c.use_quant_conv);
  r.Get("use_post_quant_conv", c.use_post_quant_conv);
  r.Get("mid_block_add_attention", c.mid_block_add_attention);
  RETURN_IF_ERROR(r.status());
  if (c.block_out_channels.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": block_out_channels is empty"));
  }
  return c;
}

absl::StatusOr<SchedulerConfig> ParseSchedulerConfig(const std::string& text, const std::string& file) {
  ASSIGN_OR_RETURN(auto j, ParseObject(text, file));
  SchedulerConfig c;
  Reader r(j, file);
  r.Get("beta_start", c.beta_start);
  r.Get("beta_end", c.beta_end);
  r.Get("beta_schedule", c.beta_schedule);
  r.Get("num_train_timesteps", c.num_train_timesteps);
  r.Get("steps_offset", c.steps_offset);
  std::string prediction = "epsilon";
  r.Get("prediction_type", prediction);
  RETURN_IF_ERROR(r.status());
  if (prediction != "epsilon") {
    return absl::InvalidArgumentError(absl::StrCat(file, ": prediction_type '", prediction,
                                                   "' is not supported (epsilon only)"));
  }
  return c;
}

absl::StatusOr<SdxlConfig> LoadSdxlConfig(const std::string& dir, SdxlConfig c) {
  if (!std::filesystem::is_directory(dir)) {
    return absl::NotFoundError(absl::StrCat(dir, ": config folder not found"));
  }
  auto load = [&](const std::string& rel, auto parse, auto& out) -> absl::Status {
    const std::string path = dir + "/" + rel;
    if (!std::filesystem::exists(path)) return absl::OkStatus();
    ASSIGN_OR_RETURN(auto text, ReadFile(path));
    ASSIGN_OR_RETURN(auto parsed, parse(text, path));
    out = parsed;
    return absl::OkStatus();
  };
  for (absl::Status s : {load("text_encoder/config.json", ParseClipTextConfig, c.text_encoder),
                         load("text_encoder_2/config.json", ParseClipTextConfig, c.text_encoder_2),
                         load("unet/config.json", ParseUNetConfig, c.unet),
                         load("vae/config.json", ParseVaeConfig, c.vae),
                         load("scheduler/scheduler_config.json", ParseSchedulerConfig, c.scheduler)}) {
    RETURN_IF_ERROR(s);
  }
  return c;
}

}  // namespace spriteforge::engine
