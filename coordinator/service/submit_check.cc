#include "service/submit_check.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "postprocess/postprocess.h"

namespace spriteforge::coordinator {

absl::Status CheckSubmission(const v1::SubmitJobRequest& request, const Manifest& manifest, const std::string& file) {
  if (!request.model_override().empty()) {
    if (auto problem = ModelNameProblem(request.model_override()); !problem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("model override: ", problem));
    }
  }
  if (manifest.postprocess_json.empty()) return absl::OkStatus();
  const auto section = nlohmann::json::parse(manifest.postprocess_json, nullptr, false);
  // Palette files live on the workers: here their names are checked, not read.
  postprocess::PaletteAccess access;
  access.read_files = false;
  auto options = postprocess::ParsePostprocessOptions(section, access);
  if (!options.ok()) return absl::InvalidArgumentError(absl::StrCat(file, ": ", options.status().message()));
  return absl::OkStatus();
}

}  // namespace spriteforge::coordinator
