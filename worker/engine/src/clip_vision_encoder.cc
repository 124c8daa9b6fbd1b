#include "worker/engine/src/clip_vision_encoder.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace spriteforge::engine {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// CLIP's normalisation, as every CLIP image processor has it.
constexpr double kClipMean[3] = {0.48145466, 0.4578275, 0.40821073};
constexpr double kClipStd[3] = {0.26862954, 0.26130258, 0.27577711};

std::string ShapeText(const std::vector<int64_t>& shape) { return "[" + absl::StrJoin(shape, ", ") + "]"; }

// Fields absent from the file keep transformers' CLIPVisionConfig defaults.
absl::Status ReadField(const Json& j, const char* key, int& out, const std::string& file) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (1 << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": field '", key, "' must be a positive integer"));
  }
  out = it->get<int>();
  return absl::OkStatus();
}

// PIL's bicubic kernel (a = -0.5), the filter of CLIPImageProcessor's resample=3.
double Bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

// One axis of PIL's resampling: `in` values per line at stride `step`, `lines` lines, to
// `out` values; antialiased (the kernel widens by the scale when shrinking); each result
// rounded to 8 bits as PIL stores it between the two passes.
std::vector<uint8_t> ResampleAxis(const std::vector<uint8_t>& src, int in, int out, int lines, bool horizontal,
                                  int width_in) {
  const double scale = static_cast<double>(in) / out;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 2.0 * filter_scale;
  std::vector<uint8_t> dst(static_cast<size_t>(out) * lines * 3);
  for (int o = 0; o < out; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in);
    std::vector<double> weights;
    double total = 0;
    for (int i = lo; i < hi; ++i) {
      weights.push_back(Bicubic((i - center + 0.5) / filter_scale));
      total += weights.back();
    }
    for (double& w : weights) w /= total;
    for (int line = 0; line < lines; ++line) {
      for (int c = 0; c < 3; ++c) {
        double sum = 0;
        for (int i = lo; i < hi; ++i) {
          const size_t at = horizontal ? (static_cast<size_t>(line) * width_in + i) * 3 + c
                                       : (static_cast<size_t>(i) * width_in + line) * 3 + c;
          sum += weights[i - lo] * src[at];
        }
        const size_t to = horizontal ? (static_cast<size_t>(line) * out + o) * 3 + c
                                     : (static_cast<size_t>(o) * width_in + line) * 3 + c;
        dst[to] = static_cast<uint8_t>(std::clamp(std::floor(sum + 0.5), 0.0, 255.0));
      }
    }
  }
  return dst;
}

// PIL's Image.resize(..., BICUBIC) on 8-bit RGB: horizontal pass, then vertical; an axis
// that keeps its size is not resampled.
RgbImage ResizeBicubic(const RgbImage& image, int width, int height) {
  RgbImage out = image;
  if (width != out.width) {
    out.rgb = ResampleAxis(out.rgb, out.width, width, out.height, /*horizontal=*/true, out.width);
    out.width = width;
  }
  if (height != out.height) {
    out.rgb = ResampleAxis(out.rgb, out.height, height, out.width, /*horizontal=*/false, out.width);
    out.height = height;
  }
  return out;
}

}  // namespace

absl::StatusOr<ClipVisionConfig> LoadClipVisionConfig(const std::string& dir) {
  const std::string file = (fs::path(dir) / "config.json").string();
  ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError(absl::StrCat(file, ": not a JSON object"));
  // A whole CLIPConfig keeps the vision part under vision_config (projection_dim at the top).
  ClipVisionConfig c;
  c.hidden_size = 768, c.intermediate_size = 3072, c.num_hidden_layers = 12, c.num_attention_heads = 12;
  c.image_size = 224, c.patch_size = 32, c.projection_dim = 512, c.hidden_act = "quick_gelu";
  RETURN_IF_ERROR(ReadField(j, "projection_dim", c.projection_dim, file));
  const Json& v = j.contains("vision_config") && j["vision_config"].is_object() ? j["vision_config"] : j;
  const std::pair<const char*, int*> fields[] = {
      {"hidden_size", &c.hidden_size},   {"intermediate_size", &c.intermediate_size},
      {"num_hidden_layers", &c.num_hidden_layers}, {"num_attention_heads", &c.num_attention_heads},
      {"num_channels", &c.num_channels}, {"image_size", &c.image_size},
      {"patch_size", &c.patch_size},     {"projection_dim", &c.projection_dim}};
  for (const auto& [key, field] : fields) RETURN_IF_ERROR(ReadField(v, key, *field, file));
  if (auto it = v.find("hidden_act"); it != v.end()) {
    if (!it->is_string() || (*it != "gelu" && *it != "quick_gelu")) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": field 'hidden_act' is ", it->dump(),
                                                     " (supported: gelu, quick_gelu)"));
    }
    c.hidden_act = it->get<std::string>();
  }
  if (auto it = v.find("layer_norm_eps"); it != v.end()) {
    if (!it->is_number() || !(it->get<double>() > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": field 'layer_norm_eps' must be a positive number"));
    }
    c.layer_norm_eps = it->get<double>();
  }
  if (c.hidden_size % c.num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": field 'hidden_size' (", c.hidden_size,
                                                   ") is not a multiple of 'num_attention_heads' (", c.num_attention_heads, ")"));
  }
  if (c.patch_size > c.image_size) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": field 'patch_size' (", c.patch_size,
                                                   ") is larger than 'image_size' (", c.image_size, ")"));
  }
  if (c.num_channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": field 'num_channels' is ", c.num_channels, " (RGB needs 3)"));
  }
  return c;
}

ExpectedTensors ClipVisionTensors(const ClipVisionConfig& c) {
  const int64_t h = c.hidden_size, grid = c.image_size / c.patch_size;
  const std::string m = "vision_model.";
  ExpectedTensors t = {
      {m + "embeddings.class_embedding", {h}},
      {m + "embeddings.patch_embedding.weight", {h, c.num_channels, c.patch_size, c.patch_size}},
      {m + "embeddings.position_embedding.weight", {grid * grid + 1, h}},
      {"visual_projection.weight", {c.projection_dim, h}},
  };
  for (const char* norm : {"pre_layrnorm", "post_layernorm"}) {
    t[m + norm + ".weight"] = {h};
    t[m + norm + ".bias"] = {h};
  }
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string l = absl::StrCat(m, "encoder.layers.", i, ".");
    for (const char* norm : {"layer_norm1", "layer_norm2"}) {
      t[l + norm + ".weight"] = {h};
      t[l + norm + ".bias"] = {h};
    }
    for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      t[l + "self_attn." + proj + ".weight"] = {h, h};
      t[l + "self_attn." + proj + ".bias"] = {h};
    }
    t[l + "mlp.fc1.weight"] = {c.intermediate_size, h};
    t[l + "mlp.fc1.bias"] = {c.intermediate_size};
    t[l + "mlp.fc2.weight"] = {h, c.intermediate_size};
    t[l + "mlp.fc2.bias"] = {h};
  }
  return t;
}

absl::Status CheckTensors(const SafetensorsFile& file, const ExpectedTensors& expected) {
  for (const auto& [name, shape] : expected) {
    const TensorView* view = file.Find(name);
    if (!view) return absl::InvalidArgumentError(absl::StrCat(file.path(), ": no tensor '", name, "'"));
    if (view->dtype != DType::kF16 && view->dtype != DType::kBF16 && view->dtype != DType::kF32) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor '", name, "' is ", std::string(DTypeName(view->dtype)),
                                                     " (expected F16, BF16 or F32)"));
    }
    if (view->shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor '", name, "' is ", ShapeText(view->shape),
                                                     ", expected ", ShapeText(shape)));
    }
  }
  return absl::OkStatus();
}

void CopyParameters(torch::nn::Module& module, const SafetensorsFile& file) {
  torch::NoGradGuard no_grad;
  for (auto& param : module.named_parameters(/*recurse=*/true)) {
    const TensorView* view = file.Find(param.key());
    TORCH_CHECK(view, file.path(), ": no tensor '", param.key(), "'");
    const torch::ScalarType type = view->dtype == DType::kF16    ? torch::kHalf
                                   : view->dtype == DType::kBF16 ? torch::kBFloat16
                                                                 : torch::kFloat;
    torch::Tensor value = torch::from_blob(const_cast<void*>(view->data), view->shape, torch::dtype(type));
    param.value().copy_(value.to(torch::kFloat).view(param.value().sizes()));
  }
}

ClipVisionEncoderImpl::ClipVisionEncoderImpl(const ClipVisionConfig& c) : config_(c) {
  const int64_t h = c.hidden_size, grid = c.image_size / c.patch_size;
  auto vision_model = register_module("vision_model", std::make_shared<torch::nn::Module>());
  auto embeddings = vision_model->register_module("embeddings", std::make_shared<torch::nn::Module>());
  class_embedding_ = embeddings->register_parameter("class_embedding", torch::randn({h}));
  patch_weight_ = embeddings->register_module("patch_embedding", std::make_shared<torch::nn::Module>())
                      ->register_parameter("weight", torch::randn({h, c.num_channels, c.patch_size, c.patch_size}));
  position_weight_ = embeddings->register_module("position_embedding", std::make_shared<torch::nn::Module>())
                         ->register_parameter("weight", torch::randn({grid * grid + 1, h}));
  pre_layrnorm_ = vision_model->register_module("pre_layrnorm", MakeLayerNorm(h, c.layer_norm_eps));
  ClipTextConfig layer{};
  layer.hidden_size = c.hidden_size;
  layer.intermediate_size = c.intermediate_size;
  layer.num_attention_heads = c.num_attention_heads;
  layer.hidden_act = c.hidden_act;
  layer.layer_norm_eps = c.layer_norm_eps;
  auto layers = vision_model->register_module("encoder", std::make_shared<torch::nn::Module>())
                    ->register_module("layers", std::make_shared<torch::nn::Module>());
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    layers_.push_back(layers->register_module(std::to_string(i), std::make_shared<ClipLayer>(layer, /*causal=*/false)));
  }
  post_layernorm_ = vision_model->register_module("post_layernorm", MakeLayerNorm(h, c.layer_norm_eps));
  visual_projection_ = register_module("visual_projection", MakeLinear(h, c.projection_dim, /*bias=*/false));
}

ClipVisionOutput ClipVisionEncoderImpl::forward(const torch::Tensor& pixels) {
  const int64_t batch = pixels.size(0);
  torch::Tensor patches = torch::conv2d(pixels, patch_weight_, {}, config_.patch_size)  // [B, H, g, g]
                              .flatten(2).transpose(1, 2);
  torch::Tensor cls = class_embedding_.view({1, 1, -1}).expand({batch, 1, -1});
  torch::Tensor x = pre_layrnorm_(torch::cat({cls, patches}, 1) + position_weight_.unsqueeze(0));
  ClipVisionOutput out;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (i + 1 == layers_.size()) out.penultimate = x;
    x = layers_[i]->forward(x);
  }
  out.image_embeds = visual_projection_(post_layernorm_(x.select(1, 0)));
  return out;
}

absl::StatusOr<ClipVisionEncoder> LoadClipVisionEncoder(const std::string& dir) {
  ASSIGN_OR_RETURN(ClipVisionConfig config, LoadClipVisionConfig(dir));
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open((fs::path(dir) / "model.safetensors").string()));
  RETURN_IF_ERROR(CheckTensors(*file, ClipVisionTensors(config)));
  torch::NoGradGuard no_grad;
  ClipVisionEncoder encoder(config);
  CopyParameters(*encoder, *file);
  encoder->eval();
  return encoder;
}

torch::Tensor ClipPixels(const RgbImage& image, int size) {
  // transformers' shortest_edge resize: the short side becomes `size`, the long side
  // int(size * long / short); then the centred crop, its offsets rounded down.
  const bool wide = image.width >= image.height;
  const int short_side = wide ? image.height : image.width, long_side = wide ? image.width : image.height;
  const int long_to = static_cast<int>(static_cast<int64_t>(size) * long_side / short_side);
  const RgbImage resized = ResizeBicubic(image, wide ? long_to : size, wide ? size : long_to);
  const int top = (resized.height - size) / 2, left = (resized.width - size) / 2;
  torch::Tensor out = torch::empty({1, 3, size, size}, torch::kFloat);
  float* p = out.data_ptr<float>();
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        const uint8_t v = resized.rgb[(static_cast<size_t>(top + y) * resized.width + left + x) * 3 + c];
        *p++ = static_cast<float>((v / 255.0 - kClipMean[c]) / kClipStd[c]);
      }
    }
  }
  return out;
}

}  // namespace spriteforge::engine
