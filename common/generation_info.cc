#include "common/generation_info.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/sampling.h"

namespace spriteforge {
namespace {

// A1111's sampler names, so tools that parse the chunk recognise ours.
std::string A1111SamplerName(v1::Sampler sampler) {
  switch (sampler) {
    case v1::SAMPLER_EULER: return "Euler";
    case v1::SAMPLER_EULER_ANCESTRAL: return "Euler a";
    case v1::SAMPLER_DPMPP_2M: return "DPM++ 2M";
    case v1::SAMPLER_LCM: return "LCM";
    case v1::SAMPLER_TCD: return "TCD";
    default: return SamplerName(sampler);
  }
}

std::string A1111ScheduleName(v1::Schedule schedule) {
  if (schedule == v1::SCHEDULE_KARRAS) return "Karras";
  if (schedule == v1::SCHEDULE_TRAILING || schedule == v1::SCHEDULE_SGM_UNIFORM) return "SGM Uniform";
  return "Automatic";
}

// Prompts are free text; a newline inside one would break the line-based format.
std::string OneLine(const std::string& text) { return absl::StrReplaceAll(text, {{"\n", " "}}); }

}  // namespace

std::string FormatParametersText(const std::string& model, const v1::ImageParams& image,
                                 const v1::SamplingParams& s) {
  std::string out = OneLine(image.prompt());
  // A1111 writes the LoRAs it applied as tags in the prompt.
  for (const v1::LoraRef& lora : s.loras()) absl::StrAppend(&out, " <lora:", lora.name(), ":", lora.strength(), ">");
  if (image.has_negative()) absl::StrAppend(&out, "\nNegative prompt: ", OneLine(image.negative()));
  absl::StrAppend(&out, "\nSteps: ", s.steps(), ", Sampler: ", A1111SamplerName(s.sampler()),
                  ", Schedule type: ", A1111ScheduleName(s.schedule()), ", CFG scale: ", s.cfg(),
                  ", Seed: ", image.seed(), ", Size: ", s.width(), "x", s.height());
  if (!model.empty()) absl::StrAppend(&out, ", Model: ", model);
  if (s.strength() > 0) absl::StrAppend(&out, ", Denoising strength: ", s.strength());
  if (s.tileable()) absl::StrAppend(&out, ", Tiling: True");
  return out;
}

nlohmann::json ToJson(const std::string& model, const v1::ImageParams& image, const v1::SamplingParams& s) {
  nlohmann::json j = {{"prompt", image.prompt()},
                      {"seed", image.seed()},
                      {"width", s.width()},
                      {"height", s.height()},
                      {"steps", s.steps()},
                      {"cfg", s.cfg()},
                      {"sampler", SamplerName(s.sampler())},
                      {"schedule", ScheduleName(s.schedule())},
                      {"model", model},
                      {"tileable", s.tileable()}};
  j["negative"] = image.has_negative() ? nlohmann::json(image.negative()) : nlohmann::json(nullptr);
  if (s.loras_size() > 0) {
    j["loras"] = nlohmann::json::array();
    for (const v1::LoraRef& lora : s.loras()) {
      nlohmann::json l = {{"name", lora.name()}, {"strength", lora.strength()}};
      if (!lora.sha256().empty()) l["sha256"] = lora.sha256();
      j["loras"].push_back(std::move(l));
    }
  }
  if (s.strength() > 0) j["denoising_strength"] = s.strength();
  if (!image.init_image_sha256().empty()) j["init_image_sha256"] = image.init_image_sha256();
  if (s.sampler() == v1::SAMPLER_TCD) j["tcd_gamma"] = s.tcd_gamma();
  return j;
}

}  // namespace spriteforge
