#include "tools/golden_cases.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "spriteforge/common/files.h"

namespace spriteforge::engine {

absl::StatusOr<std::map<std::string, BatchRequest>> LoadGoldenCases(const std::string& golden_dir) {
  const std::string path = golden_dir + "/cases.json";
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  try {
    const nlohmann::json cases = nlohmann::json::parse(*text).at("cases");
    std::map<std::string, BatchRequest> out;
    for (const auto& [name, spec] : cases.items()) {
      if (name.rfind("e2e.", 0) != 0) continue;
      BatchRequest r;
      r.width = spec.at("width");
      r.height = spec.at("height");
      r.steps = spec.at("num_inference_steps");
      r.cfg = spec.at("guidance_scale");
      const std::string sampler = spec.at("sampler");
      r.schedule = "normal";
      if (sampler == "euler" || sampler == "dpmpp_2m") r.sampler = sampler;
      else if (sampler == "euler_a") r.sampler = "euler_ancestral";
      else if (sampler == "dpmpp_2m_karras") { r.sampler = "dpmpp_2m"; r.schedule = "karras"; }
      else return absl::InvalidArgumentError(absl::StrCat(path, ": ", name, ": unknown sampler '", sampler, "'"));
      for (size_t i = 0; i < spec.at("prompt").size(); ++i) {
        ImageRequest image{spec["prompt"][i].get<std::string>(), std::nullopt, spec.at("seeds")[i].get<uint64_t>()};
        if (spec.contains("negative_prompt")) image.negative = spec["negative_prompt"][i].get<std::string>();
        r.images.push_back(image);
      }
      out[name] = r;
    }
    return out;
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

}  // namespace spriteforge::engine
