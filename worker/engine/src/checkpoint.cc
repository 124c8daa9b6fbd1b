#include "worker/engine/src/checkpoint.h"

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/engine/base/checkpoint_check.h"
#include "worker/engine/base/key_mapping.h"
#include "worker/engine/base/safetensors.h"

namespace spriteforge::engine {
namespace {

namespace fs = std::filesystem;

torch::ScalarType TorchType(DType d) {
  switch (d) {
    case DType::kF16: return torch::kHalf;
    case DType::kBF16: return torch::kBFloat16;
    case DType::kF32: return torch::kFloat;
    case DType::kF64: return torch::kDouble;
    case DType::kI8: return torch::kChar;
    case DType::kU8: return torch::kByte;
    case DType::kI16: return torch::kShort;
    case DType::kI32: return torch::kInt;
    case DType::kI64: return torch::kLong;
    case DType::kBool: return torch::kBool;
  }
  return torch::kFloat;
}

// A view of mapped file memory as a tensor; read only, never written.
torch::Tensor FromView(const TensorView& v) {
  return torch::from_blob(const_cast<void*>(v.data), v.shape, torch::TensorOptions().dtype(TorchType(v.dtype)));
}

torch::Tensor Apply(Transform transform, const torch::Tensor& t) {
  switch (transform) {
    case Transform::kNone: return t;
    case Transform::kSliceQ: return t.chunk(3, 0)[0];
    case Transform::kSliceK: return t.chunk(3, 0)[1];
    case Transform::kSliceV: return t.chunk(3, 0)[2];
    case Transform::kTranspose: return t.t();
    case Transform::kSqueezeConv: return t.dim() == 4 ? t.flatten(1) : t;
  }
  return t;
}

struct Source {
  const TensorView* view;
  Transform transform;
  std::string file;
};

torch::nn::Module& ModuleOf(SdxlModels& m, Component c) {
  switch (c) {
    case Component::kTextEncoder: return *m.text_encoder;
    case Component::kTextEncoder2: return *m.text_encoder_2;
    case Component::kUNet: return *m.unet;
    case Component::kVae: return *m.vae;
  }
  return *m.unet;
}

absl::Status CopyInto(torch::nn::Module& module, const std::map<std::string, Source>& sources,
                      const std::string& where, std::set<std::string>* used) {
  torch::NoGradGuard no_grad;
  for (auto& param : module.named_parameters(true)) {
    auto it = sources.find(param.key());
    if (it == sources.end()) {
      return absl::NotFoundError(absl::StrCat(where, ": missing tensor for '", param.key(), "'"));
    }
    const Source& src = it->second;
    torch::Tensor value = Apply(src.transform, FromView(*src.view));
    if (!value.is_floating_point()) {
      return absl::InvalidArgumentError(absl::StrCat(src.file, ": tensor '", src.view->name, "' is not floating point"));
    }
    if (value.sizes() != param.value().sizes()) {
      std::ostringstream shapes;
      shapes << "shape " << value.sizes() << " does not match the model's " << param.value().sizes();
      return absl::InvalidArgumentError(absl::StrCat(src.file, ": tensor '", src.view->name, "' (",
                                                     param.key(), "): ", shapes.str()));
    }
    param.value().copy_(value);
    if (used) used->insert(src.view->name);
  }
  return absl::OkStatus();
}

}  // namespace

SdxlModels BuildSdxl(const SdxlConfig& config) {
  SdxlModels m;
  m.config = config;
  m.text_encoder = ClipTextEncoder(config.text_encoder, /*with_projection=*/false);
  m.text_encoder_2 = ClipTextEncoder(config.text_encoder_2, /*with_projection=*/true);
  m.unet = UNet(config.unet);
  m.vae = Vae(config.vae);
  for (torch::nn::Module* module : {static_cast<torch::nn::Module*>(m.text_encoder.get()),
                                    static_cast<torch::nn::Module*>(m.text_encoder_2.get()),
                                    static_cast<torch::nn::Module*>(m.unet.get()),
                                    static_cast<torch::nn::Module*>(m.vae.get())}) {
    module->eval();
  }
  return m;
}

absl::StatusOr<SdxlConfig> ResolveConfig(const std::string& model_path, const std::string& config_dir) {
  SdxlConfig config = SdxlBaseConfig();
  if (fs::is_directory(model_path)) {
    ASSIGN_OR_RETURN(auto own, LoadSdxlConfig(model_path, config));
    config = own;
  } else if (!fs::exists(model_path)) {
    return absl::NotFoundError(absl::StrCat(model_path, ": model file or folder not found"));
  }
  if (!config_dir.empty()) return LoadSdxlConfig(config_dir, config);
  return config;
}

absl::Status LoadWeights(const std::string& model_path, SdxlModels& models) {
  const Component components[] = {Component::kTextEncoder, Component::kTextEncoder2,
                                  Component::kUNet, Component::kVae};
  if (fs::is_directory(model_path)) {
    for (Component c : components) {
      ASSIGN_OR_RETURN(auto path, DiffusersComponentFile(model_path, c));
      ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
      std::map<std::string, Source> sources;
      for (const TensorView& v : file->tensors()) sources[v.name] = {&v, Transform::kNone, path};
      std::set<std::string> used;
      RETURN_IF_ERROR(CopyInto(ModuleOf(models, c), sources, path, &used));
      if (used.size() < sources.size()) {
        spdlog::info("{}: ignored {} tensors the pipeline does not use", path, sources.size() - used.size());
      }
    }
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(model_path));
  std::map<Component, std::map<std::string, Source>> sources;
  size_t unused = 0;
  for (const TensorView& v : file->tensors()) {
    std::vector<MappedKey> mapped = MapOriginalKey(v.name, models.config);
    if (mapped.empty()) ++unused;
    for (const MappedKey& m : mapped) sources[m.component][m.name] = {&v, m.transform, model_path};
  }
  for (Component c : components) {
    const std::string where = absl::StrCat(model_path, " (", ComponentFolder(c), ")");
    RETURN_IF_ERROR(CopyInto(ModuleOf(models, c), sources[c], where, nullptr));
  }
  if (unused > 0) spdlog::info("{}: ignored {} tensors the pipeline does not use", model_path, unused);
  return absl::OkStatus();
}

}  // namespace spriteforge::engine
