#include "worker/engine/tools/golden_cases.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/png.h"
#include "common/status_macros.h"

namespace spriteforge::engine {

namespace {

absl::StatusOr<RgbImage> ReadRgb(const std::string& path) {
  ASSIGN_OR_RETURN(auto png, ReadPngFile(path));
  if (png.channels != 3) return absl::InvalidArgumentError(absl::StrCat(path, ": not an RGB PNG"));
  return RgbImage{png.width, png.height, png.pixels};
}

// ControlNets and the IP-Adapter of a controls case, with their images.
absl::Status AddControls(const std::string& dir, const nlohmann::json& spec, BatchRequest& r) {
  if (spec.contains("controls")) {
    for (const auto& control : spec["controls"]) {
      r.controlnets.push_back({dir + "/" + control.at("model").get<std::string>(), control.at("scale").get<double>(),
                               control.at("start").get<double>(), control.at("end").get<double>()});
      ASSIGN_OR_RETURN(auto image, ReadRgb(dir + "/" + control.at("image").get<std::string>()));
      for (ImageRequest& request : r.images) request.control_images.push_back(image);
    }
  }
  if (spec.contains("ip_adapter")) {
    const auto& ip = spec["ip_adapter"];
    r.ip_adapter = IpAdapterSpec{dir + "/" + ip.at("file").get<std::string>(), dir + "/" + ip.at("image_encoder").get<std::string>(),
                                 ip.at("scale").get<double>()};
    ASSIGN_OR_RETURN(auto image, ReadRgb(dir + "/" + ip.at("image").get<std::string>()));
    for (ImageRequest& request : r.images) request.reference_images.push_back(image);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, BatchRequest>> LoadCases(const std::string& dir, bool workflows,
                                                              const std::string& lora_file) {
  const std::string path = dir + "/cases.json";
  ASSIGN_OR_RETURN(auto text, ReadFile(path));
  try {
    const nlohmann::json cases = nlohmann::json::parse(text).at("cases");
    std::map<std::string, BatchRequest> out;
    for (const auto& [name, spec] : cases.items()) {
      if (!workflows && name.rfind("e2e.", 0) != 0) continue;
      BatchRequest r;
      r.width = spec.value("width", 0);
      r.height = spec.value("height", 0);
      r.steps = spec.at("num_inference_steps");
      r.cfg = spec.at("guidance_scale");
      const std::string sampler = spec.at("sampler");
      r.schedule = ScheduleKind::kNormal;
      if (sampler == "euler") r.sampler = SamplerKind::kEuler;
      else if (sampler == "dpmpp_2m") r.sampler = SamplerKind::kDpmpp2m;
      else if (sampler == "euler_a") r.sampler = SamplerKind::kEulerAncestral;
      else if (sampler == "dpmpp_2m_karras") { r.sampler = SamplerKind::kDpmpp2m; r.schedule = ScheduleKind::kKarras; }
      else return absl::InvalidArgumentError(absl::StrCat(path, ": ", name, ": unknown sampler '", sampler, "'"));
      for (size_t i = 0; i < spec.at("prompt").size(); ++i) {
        ImageRequest image{spec["prompt"][i].get<std::string>(), std::nullopt, spec.at("seeds")[i].get<uint64_t>()};
        if (spec.contains("negative_prompt")) image.negative = spec["negative_prompt"][i].get<std::string>();
        r.images.push_back(image);
      }
      RETURN_IF_ERROR(AddControls(dir, spec, r));
      if (spec.contains("lora")) r.loras = {{dir + "/" + lora_file, spec.at("lora_scale").get<double>()}};
      if (spec.contains("init_image")) {
        ASSIGN_OR_RETURN(auto png, ReadPngFile(dir + "/" + spec["init_image"].get<std::string>()));
        if (png.channels != 3) return absl::InvalidArgumentError(absl::StrCat(name, ": init image is not RGB"));
        r.width = png.width;
        r.height = png.height;
        r.strength = spec.at("strength");
        for (ImageRequest& image : r.images) image.init_image = RgbImage{png.width, png.height, png.pixels};
      }
      out[name] = r;
    }
    return out;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<std::map<std::string, BatchRequest>> LoadGoldenCases(const std::string& golden_dir) {
  return LoadCases(golden_dir, /*workflows=*/false, "");
}

absl::StatusOr<std::map<std::string, BatchRequest>> LoadControlCases(const std::string& controls_dir) {
  return LoadCases(controls_dir, /*workflows=*/true, "");
}

absl::StatusOr<std::map<std::string, BatchRequest>> LoadWorkflowCases(const std::string& workflows_dir,
                                                                      const std::string& lora_file) {
  return LoadCases(workflows_dir, /*workflows=*/true, lora_file);
}

}  // namespace spriteforge::engine
