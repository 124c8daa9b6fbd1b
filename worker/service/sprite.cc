#include "service/sprite.h"

#include "absl/strings/str_cat.h"

namespace spriteforge::worker {

SpriteMaker::SpriteMaker(const std::string& postprocess_json) : json_(postprocess_json) {}

absl::StatusOr<std::string> SpriteMaker::Make(const RasterImage&, const PngText&) const {
  return absl::UnimplementedError(absl::StrCat("post-processing is not available in this worker build: ", json_));
}

}  // namespace spriteforge::worker
