#include "worker/engine/base/checkpoint_check.h"

#include <filesystem>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "worker/engine/base/safetensors.h"

namespace spriteforge::engine {
namespace {

namespace fs = std::filesystem;
using Shape = std::vector<int64_t>;

constexpr Component kComponents[] = {Component::kUNet, Component::kVae, Component::kTextEncoder,
                                     Component::kTextEncoder2};

// The single-file key prefix of each component.
const char* OriginalPrefix(Component c) {
  switch (c) {
    case Component::kTextEncoder: return "conditioner.embedders.0.transformer.";
    case Component::kTextEncoder2: return "conditioner.embedders.1.model.";
    case Component::kUNet: return "model.diffusion_model.";
    case Component::kVae: return "first_stage_model.";
  }
  return "";
}

std::string ShapeText(const Shape& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

// Tensors in the same place and shape in both layouts (only the prefix differs).
ExpectedTensor Same(Component c, const std::string& original_rest, const std::string& diffusers, Shape shape) {
  return {c, OriginalPrefix(c) + original_rest, shape, diffusers, shape};
}

ExpectedTensor Absent(Component c, const std::string& original_rest, const std::string& diffusers) {
  return {c, OriginalPrefix(c) + original_rest, {}, diffusers, {}, /*absent=*/true};
}

void AddUNet(const UNetConfig& u, std::vector<ExpectedTensor>& out) {
  const Component c = Component::kUNet;
  const int64_t c0 = u.block_out_channels.front(), time_dim = 4 * c0, per = u.layers_per_block;
  out.push_back(Same(c, "input_blocks.0.0.weight", "conv_in.weight", {c0, u.in_channels, 3, 3}));
  out.push_back(Same(c, "time_embed.0.weight", "time_embedding.linear_1.weight", {time_dim, c0}));
  out.push_back(Same(c, "label_emb.0.0.weight", "add_embedding.linear_1.weight",
                     {time_dim, u.projection_class_embeddings_input_dim}));
  for (size_t level = 0; level < u.block_out_channels.size(); ++level) {
    const int64_t ch = u.block_out_channels[level];
    const int64_t first = 1 + static_cast<int64_t>(level) * (per + 1);  // the level's first input block
    out.push_back(Same(c, absl::StrCat("input_blocks.", first + per - 1, ".0.out_layers.3.weight"),
                       absl::StrCat("down_blocks.", level, ".resnets.", per - 1, ".conv2.weight"), {ch, ch, 3, 3}));
    if (u.down_block_types[level].rfind("CrossAttn", 0) != 0) continue;
    const int blocks = u.transformer_layers_per_block[level];
    auto block = [&](int b, const char* rest) {
      return std::make_pair(absl::StrCat("input_blocks.", first, ".1.transformer_blocks.", b, ".", rest),
                            absl::StrCat("down_blocks.", level, ".attentions.0.transformer_blocks.", b, ".", rest));
    };
    auto [q_original, q_diffusers] = block(0, "attn1.to_q.weight");
    out.push_back(Same(c, q_original, q_diffusers, {ch, ch}));
    auto [k_original, k_diffusers] = block(blocks - 1, "attn2.to_k.weight");
    out.push_back(Same(c, k_original, k_diffusers, {ch, u.cross_attention_dim}));
    auto [extra_original, extra_diffusers] = block(blocks, "attn2.to_k.weight");
    out.push_back(Absent(c, extra_original, extra_diffusers));
  }
  out.push_back(Same(c, "out.2.weight", "conv_out.weight", {u.out_channels, c0, 3, 3}));
}

void AddVae(const VaeConfig& v, std::vector<ExpectedTensor>& out) {
  const Component c = Component::kVae;
  const int64_t first = v.block_out_channels.front(), last = v.block_out_channels.back();
  out.push_back(Same(c, "encoder.conv_in.weight", "encoder.conv_in.weight", {first, v.in_channels, 3, 3}));
  out.push_back(Same(c, "encoder.conv_out.weight", "encoder.conv_out.weight", {2 * v.latent_channels, last, 3, 3}));
  if (v.use_post_quant_conv) {
    out.push_back(Same(c, "post_quant_conv.weight", "post_quant_conv.weight", {v.latent_channels, v.latent_channels, 1, 1}));
  }
  out.push_back(Same(c, "decoder.conv_in.weight", "decoder.conv_in.weight", {last, v.latent_channels, 3, 3}));
  out.push_back(Same(c, "decoder.conv_out.weight", "decoder.conv_out.weight", {v.out_channels, first, 3, 3}));
}

void AddClipL(const ClipTextConfig& t, std::vector<ExpectedTensor>& out) {
  const Component c = Component::kTextEncoder;
  auto same = [&](const std::string& name, Shape shape) {
    out.push_back(Same(c, "text_model." + name, "text_model." + name, std::move(shape)));
  };
  const int64_t h = t.hidden_size, layers = t.num_hidden_layers;
  same("embeddings.token_embedding.weight", {t.vocab_size, h});
  same("embeddings.position_embedding.weight", {t.max_position_embeddings, h});
  same("encoder.layers.0.self_attn.q_proj.weight", {h, h});
  same(absl::StrCat("encoder.layers.", layers - 1, ".mlp.fc1.weight"), {t.intermediate_size, h});
  const std::string extra = absl::StrCat("text_model.encoder.layers.", layers, ".mlp.fc1.weight");
  out.push_back(Absent(c, extra, extra));
}

// OpenCLIP names in the single file: fused q/k/v, text_projection stored [in, out].
void AddBigG(const ClipTextConfig& t, std::vector<ExpectedTensor>& out) {
  const Component c = Component::kTextEncoder2;
  const std::string prefix = OriginalPrefix(c);
  const int64_t h = t.hidden_size, layers = t.num_hidden_layers;
  out.push_back(Same(c, "token_embedding.weight", "text_model.embeddings.token_embedding.weight", {t.vocab_size, h}));
  out.push_back(Same(c, "positional_embedding", "text_model.embeddings.position_embedding.weight",
                     {t.max_position_embeddings, h}));
  out.push_back({c, prefix + "transformer.resblocks.0.attn.in_proj_weight", {3 * h, h},
                 "text_model.encoder.layers.0.self_attn.q_proj.weight", {h, h}});
  out.push_back(Same(c, absl::StrCat("transformer.resblocks.", layers - 1, ".mlp.c_fc.weight"),
                     absl::StrCat("text_model.encoder.layers.", layers - 1, ".mlp.fc1.weight"), {t.intermediate_size, h}));
  out.push_back(Absent(c, absl::StrCat("transformer.resblocks.", layers, ".mlp.c_fc.weight"),
                       absl::StrCat("text_model.encoder.layers.", layers, ".mlp.fc1.weight")));
  out.push_back({c, prefix + "text_projection", {h, t.projection_dim}, "text_projection.weight", {t.projection_dim, h}});
}

absl::Status CheckTensor(const SafetensorsFile& file, const std::string& name, const Shape& shape, bool absent) {
  const TensorView* view = file.Find(name);
  if (absent) {
    if (!view) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        file.path(), ": tensor ", name, " is one layer more than the config has (is --config right?)"));
  }
  if (!view) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": missing tensor ", name,
                                                   " (not an SDXL checkpoint, or is --config right?)"));
  }
  if (view->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor ", name, " has shape ", ShapeText(view->shape),
                                                   ", the config expects ", ShapeText(shape), " (is --config right?)"));
  }
  const DType d = view->dtype;
  if (d != DType::kF16 && d != DType::kBF16 && d != DType::kF32 && d != DType::kF64) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor ", name, " is ", std::string(DTypeName(d)),
                                                   ", weights must be floating point"));
  }
  return absl::OkStatus();
}

// A whole SDXL checkpoint holds every component: a LoRA, a lone VAE or a UNet-only file does not.
absl::Status CheckComponentsPresent(const SafetensorsFile& file) {
  std::map<Component, size_t> counts;
  for (const TensorView& v : file.tensors()) {
    for (Component c : kComponents) {
      if (v.name.rfind(OriginalPrefix(c), 0) == 0) ++counts[c];
    }
  }
  for (Component c : kComponents) {
    if (counts[c] == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          file.path(), ": holds no ", ComponentFolder(c), " tensors (", OriginalPrefix(c), "*) among its ",
          file.tensors().size(), ": not a complete SDXL checkpoint (a LoRA or a single component?)"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSingleFile(const std::string& path, const SdxlConfig& config) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  RETURN_IF_ERROR(CheckComponentsPresent(*file));
  for (const ExpectedTensor& e : CharacteristicTensors(config)) {
    RETURN_IF_ERROR(CheckTensor(*file, e.original, e.original_shape, e.absent));
  }
  return absl::OkStatus();
}

absl::Status CheckFolder(const std::string& dir, const SdxlConfig& config) {
  bool any = false;
  for (Component c : kComponents) any = any || fs::is_directory(fs::path(dir) / ComponentFolder(c));
  if (!any) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": not a diffusers model folder (no unet/, vae/, text_encoder/ or text_encoder_2/ in it); "
             "a single-file checkpoint is one .safetensors file"));
  }
  std::map<Component, std::unique_ptr<SafetensorsFile>> files;
  for (Component c : kComponents) {
    ASSIGN_OR_RETURN(auto path, DiffusersComponentFile(dir, c));
    ASSIGN_OR_RETURN(files[c], SafetensorsFile::Open(path));
  }
  for (const ExpectedTensor& e : CharacteristicTensors(config)) {
    RETURN_IF_ERROR(CheckTensor(*files[e.component], e.diffusers, e.diffusers_shape, e.absent));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<ExpectedTensor> CharacteristicTensors(const SdxlConfig& config) {
  std::vector<ExpectedTensor> out;
  AddUNet(config.unet, out);
  AddVae(config.vae, out);
  AddClipL(config.text_encoder, out);
  AddBigG(config.text_encoder_2, out);
  return out;
}

absl::StatusOr<std::string> DiffusersComponentFile(const std::string& dir, Component c) {
  const fs::path folder = fs::path(dir) / ComponentFolder(c);
  for (const char* name : {"diffusion_pytorch_model.safetensors", "model.safetensors",
                           "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors"}) {
    if (fs::exists(folder / name)) return (folder / name).string();
  }
  return absl::NotFoundError(absl::StrCat(folder.string(), ": no *.safetensors weights found"));
}

absl::Status CheckCheckpoint(const std::string& model_path, const SdxlConfig& config) {
  std::error_code ec;
  if (fs::is_directory(model_path, ec)) return CheckFolder(model_path, config);
  if (!fs::exists(model_path, ec)) {
    return absl::NotFoundError(absl::StrCat(model_path, ": model file or folder not found"));
  }
  return CheckSingleFile(model_path, config);
}

}  // namespace spriteforge::engine
