#include "common/generation_info.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace spriteforge {
namespace {

// A1111's sampler names, so tools that parse the chunk recognise ours.
std::string A1111SamplerName(const std::string& sampler) {
  if (sampler == "euler") return "Euler";
  if (sampler == "euler_ancestral") return "Euler a";
  if (sampler == "dpmpp_2m") return "DPM++ 2M";
  if (sampler == "lcm") return "LCM";
  if (sampler == "tcd") return "TCD";
  return sampler;
}

std::string A1111ScheduleName(const std::string& schedule) {
  if (schedule == "karras") return "Karras";
  if (schedule == "trailing" || schedule == "sgm_uniform") return "SGM Uniform";
  return "Automatic";
}

// Prompts are free text; a newline inside one would break the line-based format.
std::string OneLine(const std::string& text) { return absl::StrReplaceAll(text, {{"\n", " "}}); }

}  // namespace

std::string FormatParametersText(const GenerationInfo& info) {
  std::string out = OneLine(info.prompt);
  // A1111 writes the LoRAs it applied as tags in the prompt.
  for (const LoraUse& lora : info.loras) absl::StrAppend(&out, " <lora:", lora.name, ":", lora.strength, ">");
  if (info.negative) absl::StrAppend(&out, "\nNegative prompt: ", OneLine(*info.negative));
  absl::StrAppend(&out, "\nSteps: ", info.steps, ", Sampler: ", A1111SamplerName(info.sampler),
                  ", Schedule type: ", A1111ScheduleName(info.schedule),
                  ", CFG scale: ", info.cfg, ", Seed: ", info.seed, ", Size: ", info.width,
                  "x", info.height);
  if (!info.model.empty()) absl::StrAppend(&out, ", Model: ", info.model);
  if (info.denoising_strength) absl::StrAppend(&out, ", Denoising strength: ", *info.denoising_strength);
  if (info.tileable) absl::StrAppend(&out, ", Tiling: True");
  return out;
}

nlohmann::json ToJson(const GenerationInfo& info) {
  nlohmann::json j = {{"prompt", info.prompt},   {"seed", info.seed},
                      {"width", info.width},     {"height", info.height},
                      {"steps", info.steps},     {"cfg", info.cfg},
                      {"sampler", info.sampler}, {"schedule", info.schedule},
                      {"model", info.model},     {"tileable", info.tileable}};
  j["negative"] = info.negative ? nlohmann::json(*info.negative) : nlohmann::json(nullptr);
  if (!info.loras.empty()) {
    j["loras"] = nlohmann::json::array();
    for (const LoraUse& lora : info.loras) {
      nlohmann::json l = {{"name", lora.name}, {"strength", lora.strength}};
      if (!lora.sha256.empty()) l["sha256"] = lora.sha256;
      j["loras"].push_back(std::move(l));
    }
  }
  if (info.denoising_strength) j["denoising_strength"] = *info.denoising_strength;
  if (!info.init_image.empty()) j["init_image_sha256"] = info.init_image;
  if (info.sampler == "tcd") j["tcd_gamma"] = info.tcd_gamma;
  if (!info.notes.empty()) j["notes"] = info.notes;
  return j;
}

}  // namespace spriteforge
