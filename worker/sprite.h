// The manifest's `postprocess` section applied to a render on the worker: the sprite is
// kept beside the raw render, which is never replaced. Palette files come only from the
// worker's palette folder (--palette-dir), by file name; a manifest never names a path.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/png.h"
#include "common/sprite/postprocess.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::worker {

// The worker's palette folder, set once at start; empty (the default): no palette files.
void SetPaletteFolder(const std::string& folder);

// A job's post-processing settings, turned into options once (a palette file read then).
class SpriteMaker {
 public:
  explicit SpriteMaker(const v1::PostprocessSpec& spec);
  // The sprite as PNG bytes with the render's text chunks; an error names the bad option
  // (e.g. a palette file this worker does not have).
  absl::StatusOr<std::string> Make(const RasterImage& render, const PngText& text) const;

 private:
  absl::StatusOr<postprocess::PostprocessOptions> options_;
};

}  // namespace spriteforge::worker
