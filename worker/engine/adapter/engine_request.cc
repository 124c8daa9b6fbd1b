#include "worker/engine/adapter/engine_request.h"

#include "absl/strings/str_cat.h"
#include "common/sampling.h"
#include "common/status_macros.h"

namespace spriteforge::engine {

absl::StatusOr<BatchRequest> ToEngineRequest(const v1::SamplingParams& s, const std::vector<std::string>& lora_paths) {
  if (lora_paths.size() != static_cast<size_t>(s.loras_size())) {
    return absl::InternalError(absl::StrCat(lora_paths.size(), " LoRA files for ", s.loras_size(), " LoRAs"));
  }
  // The API's enums and the engine's share their names: a value one side lacks is an error.
  ASSIGN_OR_RETURN(auto sampler, ParseSampler(spriteforge::SamplerName(s.sampler())));
  ASSIGN_OR_RETURN(auto schedule, ParseSchedule(spriteforge::ScheduleName(s.schedule())));
  BatchRequest request;
  request.width = s.width();
  request.height = s.height();
  request.steps = s.steps();
  request.cfg = s.cfg();
  request.sampler = sampler;
  request.schedule = schedule;
  request.tileable = s.tileable();
  request.tcd_gamma = s.tcd_gamma();
  if (s.strength() > 0) request.strength = s.strength();  // 0: txt2img, where it does not apply
  for (int i = 0; i < s.loras_size(); ++i) request.loras.push_back({lora_paths[i], s.loras(i).strength()});
  return request;
}

ImageRequest ToEngineImage(const v1::ImageParams& image, std::optional<RgbImage> init_image) {
  ImageRequest out;
  out.prompt = image.prompt();
  if (image.has_negative()) out.negative = image.negative();
  out.seed = image.seed();
  out.init_image = std::move(init_image);
  return out;
}

}  // namespace spriteforge::engine
