// The manifest's `postprocess` section applied to a render on the worker: the sprite is
// kept beside the raw render, which is never replaced.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "spriteforge/common/png.h"

namespace spriteforge::worker {

class SpriteMaker {
 public:
  explicit SpriteMaker(const std::string& postprocess_json);
  // The sprite as PNG bytes with the render's text chunks; an error names the bad option.
  absl::StatusOr<std::string> Make(const RasterImage& render, const PngText& text) const;

 private:
  std::string json_;
};

}  // namespace spriteforge::worker
