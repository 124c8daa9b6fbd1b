#include "common/generation_info.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/sampling.h"

namespace spriteforge {
namespace {

std::string A1111ScheduleName(v1::Schedule schedule) {
  if (schedule == v1::SCHEDULE_KARRAS) return "Karras";
  if (schedule == v1::SCHEDULE_TRAILING || schedule == v1::SCHEDULE_SGM_UNIFORM) return "SGM Uniform";
  return "Automatic";
}

// Prompts are free text; a newline inside one would break the line-based format.
std::string OneLine(const std::string& text) { return absl::StrReplaceAll(text, {{"\n", " "}}); }

// A float as Python prints it, the way the ControlNet extension writes its units: 1.0, 0.8.
std::string PythonFloat(double value) {
  std::string text = absl::StrCat(value);
  if (text.find_first_of(".en") == std::string::npos) text += ".0";
  return text;
}

// A unit's fields are split at ", " and ": " when read back, so a name keeps neither.
std::string UnitName(const std::string& name, const std::string& sha256) {
  std::string out = absl::StrReplaceAll(name, {{",", "_"}, {":", "_"}, {"\n", " "}, {"\"", "'"}});
  if (sha256.size() >= 8) absl::StrAppend(&out, " [", sha256.substr(0, 8), "]");
  return out;
}

std::string ControlNetModule(const v1::ControlImage* control) {
  if (control != nullptr && control->has_canny()) return "canny";
  return "none";  // a picture or a drawn pose is already the control image
}

// The IP-Adapter module A1111 pairs with an SDXL adapter: ViT-H encoder files say so in their
// name (h94's *_vit-h), the others use OpenCLIP bigG.
std::string IpAdapterModule(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  return absl::StrContains(lower, "vit-h") || absl::StrContains(lower, "vith") ? "ip-adapter_clip_sdxl_plus_vith"
                                                                                : "ip-adapter_clip_sdxl";
}

// One "ControlNet N" value: the extension's unit fields in its order, the settings this
// engine does not have at the extension's defaults.
std::string FormatUnit(const std::string& module, const std::string& model, double weight, double start,
                       double end, const v1::ControlImage* control, bool guess_mode = false) {
  std::string unit = absl::StrCat("Module: ", module, ", Model: ", model, ", Weight: ", PythonFloat(weight),
                                  ", Resize Mode: Crop and Resize, Low Vram: False");
  if (control != nullptr && control->has_canny()) {
    absl::StrAppend(&unit, ", Threshold A: ", PythonFloat(control->canny().low()), ", Threshold B: ",
                    PythonFloat(control->canny().high()));
  }
  absl::StrAppend(&unit, ", Guidance Start: ", PythonFloat(start), ", Guidance End: ", PythonFloat(end),
                  ", Pixel Perfect: False, Control Mode: ",
                  guess_mode ? "ControlNet is more important" : "Balanced");
  return nlohmann::json(unit).dump();  // quoted, as A1111 quotes values holding ',' or ':'
}

}  // namespace

std::vector<std::string> ControlNetUnits(const v1::ImageParams& image, const v1::SamplingParams& s) {
  std::vector<std::string> units;
  for (int i = 0; i < s.controlnets_size(); ++i) {
    const v1::ControlNetRef& c = s.controlnets(i);
    const v1::ControlImage* control = i < image.controls_size() ? &image.controls(i) : nullptr;
    units.push_back(FormatUnit(ControlNetModule(control), UnitName(c.name(), c.sha256()), c.scale(), c.start(),
                               c.end(), control, c.guess_mode()));
  }
  if (s.has_ip_adapter()) {
    const v1::IpAdapterRef& a = s.ip_adapter();
    units.push_back(FormatUnit(IpAdapterModule(a.name()), UnitName(a.name(), a.sha256()), a.scale(), 0, 1, nullptr));
  }
  return units;
}

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
  // Settings that change pixels, as A1111's extensions name them where they have one.
  if (s.has_guidance_interval()) {
    absl::StrAppend(&out, ", Guidance interval: ", s.guidance_interval().start(), "-", s.guidance_interval().end());
  }
  if (s.deep_cache() > 0) absl::StrAppend(&out, ", DeepCache interval: ", s.deep_cache());
  const std::vector<std::string> units = ControlNetUnits(image, s);
  for (size_t i = 0; i < units.size(); ++i) absl::StrAppend(&out, ", ControlNet ", i, ": ", units[i]);
  return out;
}

namespace {

nlohmann::json ControlImageJson(const v1::ControlImage& control) {
  switch (control.source_case()) {
    case v1::ControlImage::kImageSha256: return {{"image_sha256", control.image_sha256()}};
    case v1::ControlImage::kPose: return {{"pose", control.pose()}};
    case v1::ControlImage::kPoseSha256: return {{"pose_sha256", control.pose_sha256()}};
    case v1::ControlImage::kCanny:
      return {{"canny", {{"image_sha256", control.canny().image_sha256()}, {"low", control.canny().low()},
                         {"high", control.canny().high()}}}};
    default: return nlohmann::json::object();
  }
}

// "controlnets": each with its image's control; "ip_adapter" with the image's references.
void AddControls(const v1::ImageParams& image, const v1::SamplingParams& s, nlohmann::json& j) {
  for (int i = 0; i < s.controlnets_size(); ++i) {
    const v1::ControlNetRef& c = s.controlnets(i);
    nlohmann::json unit = {{"name", c.name()}, {"scale", c.scale()}, {"start", c.start()}, {"end", c.end()}};
    if (!c.sha256().empty()) unit["sha256"] = c.sha256();
    if (c.guess_mode()) unit["guess_mode"] = true;
    if (i < image.controls_size()) unit["control"] = ControlImageJson(image.controls(i));
    j["controlnets"].push_back(std::move(unit));
  }
  if (s.has_ip_adapter()) {
    const v1::IpAdapterRef& a = s.ip_adapter();
    nlohmann::json adapter = {{"name", a.name()}, {"scale", a.scale()},
                              {"encoder", a.encoder().empty() ? "image_encoder" : a.encoder()},
                              {"reference_sha256", image.reference_sha256()}};
    if (!a.sha256().empty()) adapter["sha256"] = a.sha256();
    if (!a.encoder_sha256().empty()) adapter["encoder_sha256"] = a.encoder_sha256();
    j["ip_adapter"] = std::move(adapter);
  }
}

}  // namespace

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
  if (s.has_guidance_interval()) {
    j["guidance_interval"] = {{"start", s.guidance_interval().start()}, {"end", s.guidance_interval().end()}};
  }
  if (s.deep_cache() > 0) j["deep_cache"] = s.deep_cache();
  if (!image.name().empty()) j["name"] = image.name();
  AddControls(image, s, j);
  return j;
}

}  // namespace spriteforge
