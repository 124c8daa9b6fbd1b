// The manifest's `postprocess` section applied to a render on the worker: the sprite is
// kept beside the raw render, which is never replaced. Palette files come only from the
// worker's palette folder (--palette-dir), by file name; a manifest never names a path.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/png.h"

namespace spriteforge::worker {

// The worker's palette folder, set once at start; empty (the default): no palette files.
void SetPaletteFolder(const std::string& folder);

class SpriteMaker {
 public:
  explicit SpriteMaker(const std::string& postprocess_json);
  // The sprite as PNG bytes with the render's text chunks; an error names the bad option.
  absl::StatusOr<std::string> Make(const RasterImage& render, const PngText& text) const;

 private:
  std::string json_;
};

}  // namespace spriteforge::worker
