#include "common/thread_pool.h"
#include "worker/batch_runner.h"

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/generation_info.h"
#include "common/sampling.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "spdlog/spdlog.h"
#include "spriteforge/engine/latent_preview.h"
#include "worker/blob_cache.h"
#include "worker/engine/adapter/engine_request.h"
#include "worker/memory_report.h"
#include "worker/sprite.h"

namespace spriteforge::worker {
namespace {

v1::FailureReason ReasonOf(const absl::Status& status) {
  switch (engine::ClassifyFailure(status)) {
    case engine::FailureKind::kOutOfMemory: return v1::FAILURE_OUT_OF_MEMORY;
    case engine::FailureKind::kCancelled: return v1::FAILURE_CANCELLED;
    case engine::FailureKind::kInvalidArgument: return v1::FAILURE_INVALID_REQUEST;
    default: return v1::FAILURE_INTERNAL;
  }
}

BatchOutcome Failure(const v1::Assignment& a, v1::FailureReason reason, const std::string& message) {
  BatchOutcome out;
  out.failure.set_batch_id(a.batch_id());
  out.failure.set_reason(reason);
  out.failure.set_message(message);
  return out;
}

// Paths on this machine (its cache of uploaded files, its --lora-dir) mean nothing to the
// coordinator and tell every reader of the job about this machine: a failure message names
// each file as the job did instead, e.g. "uploaded file 3f2a...".
using LocalNames = std::vector<std::pair<std::string, std::string>>;  // path -> its name
std::string WithoutLocalPaths(std::string message, const LocalNames& names) {
  for (const auto& [path, name] : names) {
    if (path.empty()) continue;
    for (size_t at = message.find(path); at != std::string::npos; at = message.find(path, at + name.size())) {
      message.replace(at, path.size(), name);
    }
  }
  return message;
}

std::string LoraName(const v1::LoraRef& lora) {
  return lora.sha256().empty() ? absl::StrCat("LoRA '", lora.name(), "'") : absl::StrCat("uploaded file ", lora.sha256());
}

Rendered RenderFailure(const v1::Assignment& a, v1::FailureReason reason, const std::string& message) {
  Rendered r;
  r.failure = Failure(a, reason, message);
  return r;
}

// A batch's input failed: the job's problem (INVALID_REQUEST, not retried) unless the
// file could not be fetched, which another attempt may fix.
v1::FailureReason InputFailure(const absl::Status& status) {
  return status.code() == absl::StatusCode::kInvalidArgument || status.code() == absl::StatusCode::kNotFound
             ? v1::FAILURE_INVALID_REQUEST
             : v1::FAILURE_INTERNAL;
}

// The engine hands out latents every `gcd` steps: every step some item of the batch
// (possibly of several jobs) wants a preview at. 0: no item wants previews.
int PreviewInterval(const v1::Assignment& a) {
  int every = 0;
  for (const v1::AssignedItem& item : a.items()) {
    if (item.preview_every() > 0) every = std::gcd(every, item.preview_every());
  }
  return every;
}

// The previews of the items whose preview_every divides this step: their latents through
// the linear latent-to-RGB map, as small PNGs (no text chunks: they are never stored).
v1::BatchPreview PreviewsOf(const v1::Assignment& a, const engine::StepLatents& latents) {
  v1::BatchPreview out;
  out.set_batch_id(a.batch_id());
  out.set_step(latents.step);
  out.set_total_steps(latents.total_steps);
  for (int i = 0; i < a.items_size() && i < latents.images; ++i) {
    const v1::AssignedItem& item = a.items(i);
    if (item.preview_every() <= 0 || latents.step % item.preview_every() != 0) continue;
    auto rgb = engine::LatentsToRgb(latents, i);
    if (!rgb.ok()) {
      spdlog::warn("batch {}: no preview: {}", a.batch_id(), std::string(rgb.status().message()));
      return {};
    }
    auto png = EncodePng(RasterImage{rgb->width, rgb->height, 3, std::move(rgb->rgb)});
    if (!png.ok()) {
      spdlog::warn("batch {}: no preview: {}", a.batch_id(), std::string(png.status().message()));
      return {};
    }
    v1::PreviewImage* image = out.add_images();
    image->set_job_id(item.job_id());
    image->set_index(item.index());
    image->set_width(rgb->width);
    image->set_height(rgb->height);
    image->set_png(std::move(*png));
  }
  return out;
}

// One image's part of the result: the render's PNG and, when asked, its sprite.
struct PackagedImage {
  absl::Status status;
  std::string png;
  std::string sprite_png;
  std::string postprocess_error;
};

}  // namespace

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

BatchRunner::BatchRunner(engine::Engine* engine, std::string model_name, ImageEncoder encoder, InputFiles files)
    : engine_(engine), model_name_(std::move(model_name)), encoder_(std::move(encoder)), files_(std::move(files)) {
  if (!encoder_) encoder_ = [](const RasterImage& image, const PngText& text) { return EncodePng(image, text); };
}

Rendered BatchRunner::Render(const v1::Assignment& a, const std::function<void(int, int)>& on_step,
                             const std::atomic<bool>& cancel, const PreviewSink& on_preview) {
  if (a.items().empty()) return RenderFailure(a, v1::FAILURE_INVALID_REQUEST, "empty batch");
  if (a.model() != model_name_) {
    return RenderFailure(a, v1::FAILURE_MODEL_UNAVAILABLE,
                         absl::StrCat("this worker serves ", model_name_, ", not ", a.model()));
  }
  // The items must share one batch key (the planner's rule): the settings came once, and
  // img2img is all or none.
  const std::string key = BatchKeyOf(a.model(), a.sampling(), a.items(0).params());
  for (const v1::AssignedItem& item : a.items()) {
    if (BatchKeyOf(a.model(), a.sampling(), item.params()) != key) {
      return RenderFailure(a, v1::FAILURE_INVALID_REQUEST, "batch mixes incompatible parameters");
    }
  }
  if (files_.blobs) files_.blobs->BeginBatch();  // the last batch's files may be evicted now, not this one's
  std::vector<std::string> lora_paths;
  LocalNames local_names;
  for (const v1::LoraRef& lora : a.sampling().loras()) {
    auto path = LoraPath(lora);
    if (!path.ok()) return RenderFailure(a, InputFailure(path.status()), std::string(path.status().message()));
    lora_paths.push_back(*path);
    local_names.emplace_back(*path, LoraName(lora));
  }
  auto conditioning = ConditioningPaths(a.sampling());
  if (!conditioning.ok()) return RenderFailure(a, InputFailure(conditioning.status()), std::string(conditioning.status().message()));
  auto request = engine::ToEngineRequest(a.sampling(), lora_paths, *conditioning);
  if (!request.ok()) return RenderFailure(a, v1::FAILURE_INVALID_REQUEST, std::string(request.status().message()));
  const engine::BlobPath blob_path = [this](const std::string& sha256) -> absl::StatusOr<std::string> {
    if (!files_.blobs) return absl::FailedPreconditionError("this worker has no cache for uploaded files");
    return files_.blobs->Path(sha256);
  };
  std::map<std::string, engine::RgbImage> init_images;  // by sha256: decoded once per batch
  for (const v1::AssignedItem& item : a.items()) {
    const v1::ImageParams& p = item.params();
    std::optional<engine::RgbImage> init;
    if (!p.init_image_sha256().empty()) {
      auto it = init_images.find(p.init_image_sha256());
      if (it == init_images.end()) {
        auto decoded = InitImage(p.init_image_sha256());
        if (!decoded.ok()) return RenderFailure(a, InputFailure(decoded.status()), std::string(decoded.status().message()));
        it = init_images.emplace(p.init_image_sha256(), std::move(*decoded)).first;
      }
      init = it->second;
    }
    request->images.push_back(engine::ToEngineImage(p, std::move(init)));
    auto controls = engine::ControlImagesOf(p, a.sampling().width(), a.sampling().height(), blob_path);
    if (!controls.ok()) return RenderFailure(a, InputFailure(controls.status()), std::string(controls.status().message()));
    auto references = engine::ReferenceImagesOf(p, blob_path);
    if (!references.ok()) {
      return RenderFailure(a, InputFailure(references.status()), std::string(references.status().message()));
    }
    request->images.back().control_images = std::move(*controls);
    request->images.back().reference_images = std::move(*references);
  }
  engine::PreviewFn preview;
  if (on_preview) {
    request->preview_every = PreviewInterval(a);
    preview = [&](const engine::StepLatents& latents) {
      v1::BatchPreview message = PreviewsOf(a, latents);
      if (message.images_size() > 0) on_preview(std::move(message));
    };
  }
  Rendered out;
  out.start_unix_ms = UnixMs();
  auto generated = engine_->Generate(
      *request,
      [&](int step, int total) {
        if (on_step) on_step(step, total);
        return !cancel.load();
      },
      preview);
  out.end_unix_ms = UnixMs();
  if (!generated.ok()) {
    return RenderFailure(a, ReasonOf(generated.status()),
                         WithoutLocalPaths(std::string(generated.status().message()), local_names));
  }
  if (generated->images.size() != static_cast<size_t>(a.items_size())) {
    return RenderFailure(a, v1::FAILURE_INTERNAL, "the engine returned a different number of images");
  }
  out.ok = true;
  out.batch = std::move(*generated);
  return out;
}

absl::StatusOr<std::string> BatchRunner::LoraPath(const v1::LoraRef& lora) const {
  if (!lora.sha256().empty()) {
    if (!files_.blobs) return absl::FailedPreconditionError("this worker has no cache for uploaded files");
    return files_.blobs->Path(lora.sha256());
  }
  if (!IsSafeName(lora.name())) return absl::InvalidArgumentError(absl::StrCat("LoRA name '", lora.name(), "' is not a plain file name"));
  if (files_.lora_dir.empty()) {
    return absl::NotFoundError(absl::StrCat("LoRA '", lora.name(), "' is given by name, but this worker has no --lora-dir"));
  }
  const std::string path = (std::filesystem::path(files_.lora_dir) / (lora.name() + ".safetensors")).string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    spdlog::warn("LoRA '{}' is not in --lora-dir: no {}", lora.name(), path);  // the path stays on this machine
    return absl::NotFoundError(absl::StrCat("LoRA '", lora.name(), "' is not in this worker's --lora-dir"));
  }
  return path;
}

absl::StatusOr<std::string> BatchRunner::NamedPath(const std::string& dir, const char* flag, const std::string& what,
                                                   const std::string& name, const char* suffix) const {
  if (!IsSafeName(name)) return absl::InvalidArgumentError(absl::StrCat(what, " name '", name, "' is not a plain file name"));
  if (dir.empty()) {
    return absl::NotFoundError(absl::StrCat(what, " '", name, "' is given by name, but this worker has no ", flag));
  }
  std::error_code ec;
  const std::filesystem::path folder = std::filesystem::path(dir) / name;
  if (std::filesystem::is_directory(folder, ec)) return folder.string();
  const std::filesystem::path file = std::filesystem::path(dir) / (name + suffix);
  if (*suffix && std::filesystem::is_regular_file(file, ec)) return file.string();
  spdlog::warn("{} '{}' is not in {} {}", what, name, flag, dir);  // the path stays on this machine
  return absl::NotFoundError(absl::StrCat(what, " '", name, "' is not in this worker's ", flag));
}

absl::StatusOr<std::string> BatchRunner::UploadedModelFolder(
    const std::vector<std::pair<std::string, std::string>>& files) const {
  if (!files_.blobs) return absl::FailedPreconditionError("this worker has no cache for uploaded files");
  std::string key;
  for (const auto& [name, sha256] : files) absl::StrAppend(&key, key.empty() ? "" : "-", sha256.substr(0, 16));
  const std::filesystem::path folder = std::filesystem::path(files_.model_dir) / key;
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec) return absl::ResourceExhaustedError(absl::StrCat("cannot create a folder for uploaded models: ", ec.message()));
  for (const auto& [name, sha256] : files) {
    ASSIGN_OR_RETURN(auto path, files_.blobs->Path(sha256));
    const std::filesystem::path link = folder / name;
    std::filesystem::remove(link, ec);
    std::filesystem::create_symlink(std::filesystem::absolute(path), link, ec);
    if (ec) return absl::ResourceExhaustedError(absl::StrCat("cannot link uploaded file ", sha256, ": ", ec.message()));
  }
  return folder.string();
}

absl::StatusOr<engine::ConditioningFiles> BatchRunner::ConditioningPaths(const v1::SamplingParams& s) const {
  engine::ConditioningFiles out;
  for (const v1::ControlNetRef& net : s.controlnets()) {
    if (!net.sha256().empty()) {
      ASSIGN_OR_RETURN(auto folder, UploadedModelFolder({{"diffusion_pytorch_model.safetensors", net.sha256()},
                                                         {"config.json", net.config_sha256()}}));
      out.controlnets.push_back(folder);
    } else {
      ASSIGN_OR_RETURN(auto path, NamedPath(files_.controlnet_dir, "--controlnet-dir", "ControlNet", net.name(), ".safetensors"));
      out.controlnets.push_back(path);
    }
  }
  if (!s.has_ip_adapter()) return out;
  const v1::IpAdapterRef& ip = s.ip_adapter();
  if (!ip.sha256().empty()) {
    ASSIGN_OR_RETURN(auto folder, UploadedModelFolder({{"ip-adapter.safetensors", ip.sha256()}}));
    out.ip_adapter = folder + "/ip-adapter.safetensors";
  } else {
    ASSIGN_OR_RETURN(out.ip_adapter,
                     NamedPath(files_.ip_adapter_dir, "--ip-adapter-dir", "IP-Adapter", ip.name(), ".safetensors"));
  }
  if (!ip.encoder_sha256().empty()) {
    ASSIGN_OR_RETURN(out.encoder_dir, UploadedModelFolder({{"model.safetensors", ip.encoder_sha256()},
                                                           {"config.json", ip.encoder_config_sha256()}}));
  } else {
    ASSIGN_OR_RETURN(out.encoder_dir, NamedPath(files_.ip_adapter_dir, "--ip-adapter-dir", "image encoder",
                                                ip.encoder().empty() ? "image_encoder" : ip.encoder(), ""));
  }
  return out;
}

absl::StatusOr<engine::RgbImage> BatchRunner::InitImage(const std::string& sha256) const {
  if (!files_.blobs) return absl::FailedPreconditionError("this worker has no cache for uploaded files");
  ASSIGN_OR_RETURN(auto path, files_.blobs->Path(sha256));
  auto png = ReadPngFile(path);
  if (!png.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "init image ", sha256, ": ", WithoutLocalPaths(std::string(png.status().message()), {{path, "the file"}})));
  }
  if (png->channels != 3) return absl::InvalidArgumentError(absl::StrCat("init image ", sha256, " is not RGB"));
  return engine::RgbImage{png->width, png->height, std::move(png->pixels)};
}

BatchOutcome BatchRunner::Package(const v1::Assignment& a, Rendered rendered, ThreadPool* pool) const {
  const auto started = std::chrono::steady_clock::now();
  // One sprite maker per job of the batch (its palette file read once), shared by its images.
  std::map<std::string, std::shared_ptr<const SpriteMaker>> makers;
  for (const v1::JobPostprocess& post : a.postprocess()) {
    makers[post.job_id()] = std::make_shared<const SpriteMaker>(post.spec());
  }
  auto package_one = [&](int i) {
    const v1::AssignedItem& item = a.items(i);
    const engine::Image& image = rendered.batch.images[i];
    const RasterImage raster{image.width, image.height, 3, image.rgb};
    const PngText text = {{"parameters", FormatParametersText(model_name_, item.params(), a.sampling())}};
    PackagedImage out;
    auto png = encoder_(raster, text);
    if (!png.ok()) {
      out.status = png.status();
      return out;
    }
    out.png = std::move(*png);
    if (auto maker = makers.find(item.job_id()); maker != makers.end()) {
      auto sprite = maker->second->Make(raster, text);
      if (sprite.ok()) {
        out.sprite_png = std::move(*sprite);
      } else {
        out.postprocess_error = std::string(sprite.status().message());
      }
    }
    return out;
  };
  std::vector<PackagedImage> images(a.items_size());
  if (pool && pool->size() > 1 && a.items_size() > 1) {
    std::vector<std::future<PackagedImage>> futures;
    for (int i = 0; i < a.items_size(); ++i) futures.push_back(pool->Submit([&package_one, i] { return package_one(i); }));
    for (int i = 0; i < a.items_size(); ++i) images[i] = futures[i].get();
  } else {
    for (int i = 0; i < a.items_size(); ++i) images[i] = package_one(i);
  }

  BatchOutcome out;
  out.ok = true;
  v1::BatchResultMsg& result = out.result;
  result.set_batch_id(a.batch_id());
  const engine::BatchResult& batch = rendered.batch;
  result.set_encode_ms(batch.timings.encode_ms);
  result.set_denoise_ms(batch.timings.denoise_ms);
  result.set_decode_ms(batch.timings.decode_ms);
  result.set_total_ms(batch.timings.total_ms);
  result.set_render_start_unix_ms(rendered.start_unix_ms);
  result.set_render_end_unix_ms(rendered.end_unix_ms);
  *result.mutable_memory() = MeasuredMemory(batch.memory);
  for (int i = 0; i < a.items_size(); ++i) {
    if (!images[i].status.ok()) return Failure(a, v1::FAILURE_INTERNAL, std::string(images[i].status.message()));
    const v1::AssignedItem& item = a.items(i);
    v1::ItemResult* r = result.add_items();
    r->set_job_id(item.job_id());
    r->set_index(item.index());
    r->set_seed(item.params().seed());
    r->set_png(std::move(images[i].png));
    if (!images[i].sprite_png.empty()) r->set_sprite_png(std::move(images[i].sprite_png));
    if (!images[i].postprocess_error.empty()) r->set_postprocess_error(images[i].postprocess_error);
    for (const std::string& note : batch.images[i].notes) r->add_notes(note);
  }
  result.set_package_ms(
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
  return out;
}

BatchOutcome BatchRunner::Run(const v1::Assignment& a, const std::function<void(int, int)>& on_step,
                              const std::atomic<bool>& cancel) {
  Rendered rendered = Render(a, on_step, cancel);
  if (!rendered.ok) return std::move(rendered.failure);
  return Package(a, std::move(rendered), nullptr);
}

}  // namespace spriteforge::worker
