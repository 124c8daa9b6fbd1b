#include "worker/engine/src/lora.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/engine/base/lora_keys.h"
#include "worker/engine/base/safetensors.h"
#include "worker/engine/src/device.h"

namespace spriteforge::engine {
namespace {

namespace fs = std::filesystem;

constexpr size_t kCacheFiles = 8;

torch::nn::Module& ModuleOf(SdxlModels& m, Component c) {
  switch (c) {
    case Component::kTextEncoder: return *m.text_encoder;
    case Component::kTextEncoder2: return *m.text_encoder_2;
    default: return *m.unet;
  }
}

constexpr Component kLoraComponents[] = {Component::kTextEncoder, Component::kTextEncoder2, Component::kUNet};

// A stored tensor as float32 on the CPU, owning its memory (the file is unmapped later).
absl::StatusOr<torch::Tensor> FloatCopy(const TensorView& v, const std::string& file) {
  torch::ScalarType type;
  switch (v.dtype) {
    case DType::kF16: type = torch::kHalf; break;
    case DType::kBF16: type = torch::kBFloat16; break;
    case DType::kF32: type = torch::kFloat; break;
    case DType::kF64: type = torch::kDouble; break;
    default: return absl::InvalidArgumentError(absl::StrCat(file, ": tensor '", v.name, "' is not floating point"));
  }
  return torch::from_blob(const_cast<void*>(v.data), v.shape, torch::TensorOptions().dtype(type)).to(torch::kFloat, false, true);
}

std::string Shape(const torch::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

// kohya stores some factors as 1x1 convolutions: [r, in, 1, 1] is the Linear's [r, in].
torch::Tensor AsMatrix(const torch::Tensor& t) {
  if (t.dim() == 4 && t.size(2) == 1 && t.size(3) == 1) return t.flatten(1);
  return t;
}

}  // namespace

LoraTargets::LoraTargets(SdxlModels& models) : models_(models) {
  for (Component c : kLoraComponents) {
    for (const auto& item : ModuleOf(models, c).named_modules("", /*include_self=*/false)) {
      if (auto* linear = dynamic_cast<LinearImpl*>(item.value().get())) {
        linears_[{static_cast<int>(c), item.key()}] = linear;
      } else if (dynamic_cast<Conv2dImpl*>(item.value().get())) {
        convs_.push_back({static_cast<int>(c), item.key()});
      }
    }
  }
}

absl::StatusOr<std::shared_ptr<const LoraFile>> LoraTargets::Load(const std::string& path) const {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  LoraModuleIndex index;
  for (const auto& [key, linear] : linears_) index.Add(static_cast<Component>(key.first), key.second, true);
  for (const auto& key : convs_) index.Add(static_cast<Component>(key.first), key.second, false);
  std::vector<std::string> names;
  for (const TensorView& v : file->tensors()) names.push_back(v.name);
  ASSIGN_OR_RETURN(auto layers, ResolveLoraKeys(names, index, models_.config, path));

  auto out = std::make_shared<LoraFile>();
  out->path = path;
  for (const LoraLayerKeys& keys : layers) {
    LinearImpl* target = linears_.at({static_cast<int>(keys.component), keys.module});
    ASSIGN_OR_RETURN(auto down, FloatCopy(*file->Find(keys.down), path));
    ASSIGN_OR_RETURN(auto up, FloatCopy(*file->Find(keys.up), path));
    torch::Tensor d = AsMatrix(down), u = AsMatrix(up);
    const int64_t rank = d.dim() == 2 ? d.size(0) : -1;
    if (d.dim() != 2 || u.dim() != 2 || u.size(1) != rank || d.size(1) != target->in_features() ||
        u.size(0) != target->out_features()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": layer '", keys.module, "': factors ", Shape(u), " @ ", Shape(d),
                                                     " do not make the layer's [", target->out_features(), ", ",
                                                     target->in_features(), "] weight"));
    }
    double scale = 1.0;
    if (!keys.alpha.empty()) {
      ASSIGN_OR_RETURN(auto alpha, FloatCopy(*file->Find(keys.alpha), path));
      if (alpha.numel() != 1) return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", keys.alpha, "' is not a scalar"));
      scale = alpha.item<float>() / static_cast<double>(rank);
    }
    out->bytes += file->Find(keys.down)->nbytes + file->Find(keys.up)->nbytes;
    out->layers.push_back({target, d, u, scale});
  }
  return std::shared_ptr<const LoraFile>(std::move(out));
}

LoraMerger::LoraMerger(SdxlModels& models, torch::Device device) : targets_(models), device_(device) {}

void LoraMerger::Recount() {
  uint64_t bytes = 0;
  for (const auto& [path, cached] : cache_) bytes += cached.file->bytes;
  for (const auto& [linear, saved] : saved_) {
    for (const torch::Tensor* t : {&saved.weight, &saved.fp8_data, &saved.fp8_scale}) {
      if (t->defined()) bytes += t->numel() * t->element_size();
    }
  }
  cached_bytes_.store(bytes, std::memory_order_relaxed);
}

absl::StatusOr<std::shared_ptr<const LoraFile>> LoraMerger::File(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path, ": LoRA file not found"));
  const int64_t mtime = fs::last_write_time(path, ec).time_since_epoch().count();
  recent_.remove(path);
  recent_.push_front(path);
  auto it = cache_.find(path);
  if (it != cache_.end() && it->second.size == static_cast<int64_t>(size) && it->second.mtime == mtime) return it->second.file;
  auto loaded = targets_.Load(path);
  if (!loaded.ok()) {
    recent_.remove(path);
    return loaded.status();
  }
  cache_[path] = {*loaded, static_cast<int64_t>(size), mtime};
  while (recent_.size() > kCacheFiles) {
    cache_.erase(recent_.back());
    recent_.pop_back();
  }
  Recount();
  spdlog::info("LoRA {}: {} layers, {:.1f} MB", path, (*loaded)->layers.size(), (*loaded)->bytes / 1e6);
  return *loaded;
}

void LoraMerger::Restore() {
  for (auto& [linear, saved] : saved_) linear->Restore(saved);
  saved_.clear();
  active_.clear();
  active_files_.clear();
  Recount();
}

absl::Status LoraMerger::Activate(const std::vector<LoraSpec>& set) {
  std::vector<std::shared_ptr<const LoraFile>> files;
  for (const LoraSpec& spec : set) {
    if (!std::isfinite(spec.strength)) return absl::InvalidArgumentError(absl::StrCat("LoRA ", spec.path, ": strength is not a number"));
    ASSIGN_OR_RETURN(auto file, File(spec.path));
    files.push_back(file);
  }
  bool same = set.size() == active_.size() && files == active_files_;
  for (size_t i = 0; same && i < set.size(); ++i) same = set[i].path == active_[i].path && set[i].strength == active_[i].strength;
  if (same) return absl::OkStatus();

  torch::NoGradGuard no_grad;
  Restore();
  // Each layer's updates from every file, in the set's order, summed before the weight is
  // rounded once; one layer at a time, so temporaries stay one layer's size.
  std::map<LinearImpl*, std::vector<std::pair<const LoraFile::Layer*, double>>> updates;
  for (size_t i = 0; i < set.size(); ++i) {
    if (set[i].strength == 0) continue;
    for (const LoraFile::Layer& layer : files[i]->layers) updates[layer.target].push_back({&layer, set[i].strength});
  }
  uint64_t saved_bytes = 0;
  for (const auto& [linear, parts] : updates) saved_bytes += linear->StoredBytes();
  const torch::Device keep = SavedOriginalsPlace(device_, saved_bytes, QueryMemory(device_));
  for (const auto& [linear, parts] : updates) {
    torch::Tensor delta;
    for (const auto& [layer, strength] : parts) {
      // Pageable copies: pinning a new file's factors costs more than one merge's uploads.
      torch::Tensor update = torch::mm(layer->up.to(device_), layer->down.to(device_)) *
                             (strength * layer->scale);
      delta = delta.defined() ? delta + update : update;
    }
    saved_.emplace(linear, linear->Save(keep));
    linear->AssignWeight(linear->FloatWeight() + delta);
  }
  Synchronize(device_);  // the merge's time is the time until the first step can run
  active_ = set;
  active_files_ = files;
  Recount();
  if (!set.empty()) {
    spdlog::info("LoRA set of {} file(s) merged into {} layers (originals kept on {})", set.size(), updates.size(),
                 keep.is_cpu() ? "the host" : "the device");
  }
  return absl::OkStatus();
}

torch::Device SavedOriginalsPlace(const torch::Device& device, uint64_t bytes, const MemoryStats& memory) {
  if (device.is_cpu()) return device;
  // Device-to-device copies both ways cost about nothing; half the device stays free for
  // the batches the worker's budget was planned with.
  const bool room = memory.free_bytes > bytes && memory.free_bytes - bytes >= memory.total_bytes / 2;
  return room ? device : torch::Device(torch::kCPU);
}

}  // namespace spriteforge::engine
