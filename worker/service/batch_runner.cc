#include "service/batch_runner.h"

#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "service/sprite.h"
#include "spriteforge/common/generation_info.h"
#include "spriteforge/common/png.h"

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

GenerationInfo InfoOf(const v1::ImageParams& p, const std::string& model) {
  GenerationInfo info;
  info.prompt = p.prompt();
  if (p.has_negative()) info.negative = p.negative();
  info.seed = p.seed();
  info.width = p.width();
  info.height = p.height();
  info.steps = p.steps();
  info.cfg = p.cfg();
  info.sampler = p.sampler();
  info.schedule = p.schedule();
  info.model = model;
  info.tileable = p.tileable();
  return info;
}

}  // namespace

BatchOutcome BatchRunner::Run(const v1::Assignment& a, const std::function<void(int, int)>& on_step,
                              const std::atomic<bool>& cancel) {
  if (a.items().empty()) return Failure(a, v1::FAILURE_INVALID_REQUEST, "empty batch");
  if (a.model() != model_name_) {
    return Failure(a, v1::FAILURE_MODEL_UNAVAILABLE, absl::StrCat("this worker serves ", model_name_, ", not ", a.model()));
  }
  // The items share these by construction (the planner batches only compatible items).
  const v1::ImageParams& first = a.items(0).params();
  engine::BatchRequest request;
  request.width = first.width();
  request.height = first.height();
  request.steps = first.steps();
  request.cfg = first.cfg();
  request.sampler = first.sampler();
  request.schedule = first.schedule();
  request.tileable = first.tileable();
  for (const v1::AssignedItem& item : a.items()) {
    const v1::ImageParams& p = item.params();
    if (p.width() != request.width || p.height() != request.height || p.steps() != request.steps ||
        p.cfg() != request.cfg || p.sampler() != request.sampler || p.schedule() != request.schedule ||
        p.tileable() != request.tileable) {
      return Failure(a, v1::FAILURE_INVALID_REQUEST, "batch mixes incompatible parameters");
    }
    engine::ImageRequest image;
    image.prompt = p.prompt();
    if (p.has_negative()) image.negative = p.negative();
    image.seed = p.seed();
    request.images.push_back(std::move(image));
  }
  auto generated = engine_->Generate(request, [&](int step, int total) {
    if (on_step) on_step(step, total);
    return !cancel.load();
  });
  if (!generated.ok()) return Failure(a, ReasonOf(generated.status()), std::string(generated.status().message()));

  BatchOutcome out;
  out.ok = true;
  v1::BatchResultMsg& result = out.result;
  result.set_batch_id(a.batch_id());
  result.set_encode_ms(generated->timings.encode_ms);
  result.set_denoise_ms(generated->timings.denoise_ms);
  result.set_decode_ms(generated->timings.decode_ms);
  result.set_total_ms(generated->timings.total_ms);
  v1::MemoryReport* memory = result.mutable_memory();
  memory->set_total_bytes(generated->memory.total_bytes);
  memory->set_free_bytes(generated->memory.free_bytes);
  memory->set_weights_bytes(generated->memory.weights_bytes);
  memory->set_peak_allocated_bytes(generated->memory.peak_allocated_bytes);
  memory->set_peak_reserved_bytes(generated->memory.peak_reserved_bytes);
  std::map<std::string, SpriteMaker> makers;  // one parsed post-processing per job
  for (int i = 0; i < a.items_size(); ++i) {
    const v1::AssignedItem& item = a.items(i);
    const engine::Image& image = generated->images[i];
    RasterImage raster{image.width, image.height, 3, image.rgb};
    const GenerationInfo info = InfoOf(item.params(), model_name_);
    const PngText text = {{"parameters", FormatParametersText(info)}};
    auto png = EncodePng(raster, text);
    if (!png.ok()) return Failure(a, v1::FAILURE_INTERNAL, std::string(png.status().message()));
    v1::ItemResult* r = result.add_items();
    r->set_job_id(item.job_id());
    r->set_index(item.index());
    r->set_seed(item.params().seed());
    r->set_png(std::move(*png));
    if (!item.postprocess_json().empty()) {
      auto maker = makers.find(item.job_id());
      if (maker == makers.end()) maker = makers.emplace(item.job_id(), SpriteMaker(item.postprocess_json())).first;
      auto sprite = maker->second.Make(raster, text);
      if (sprite.ok()) {
        r->set_sprite_png(std::move(*sprite));
      } else {
        r->set_postprocess_error(std::string(sprite.status().message()));
      }
    }
  }
  return out;
}

}  // namespace spriteforge::worker
