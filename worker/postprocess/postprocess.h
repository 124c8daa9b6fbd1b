// A manifest's `postprocess:` section, parsed and applied to one render:
//
//   postprocess: {background: flood, tolerance: 0.08, pixelate: 64x64, method: majority,
//                 palette: pico8, dither: none, crop: true, padding: 1}
//
// Steps, in order: background removal on the full render, pixel grid, palette, crop.
// Instead of `palette`, `colors: N` derives N colours from the sprite (`quantizer:
// median_cut` or `kmeans`).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "postprocess/color.h"
#include "postprocess/palette.h"
#include "postprocess/pixelate.h"
#include "spriteforge/common/png.h"

namespace spriteforge::postprocess {

enum class Background { kNone, kFlood, kChroma };

struct PostprocessOptions {
  Background background = Background::kNone;
  float tolerance = 0.08f;           // Oklab distance for flood fill and chroma key
  Rgb key = {0, 255, 0};             // chroma key colour
  int width = 0, height = 0;         // pixel grid; 0: keep the render's size
  PixelateMethod method = PixelateMethod::kMajority;
  std::optional<Palette> palette;    // fixed or user palette
  int colors = 0;                    // >0: derive this many colours
  Quantizer quantizer = Quantizer::kKMeans;
  Dither dither = Dither::kNone;
  bool crop = false;
  int padding = 0;

  bool empty() const {
    return background == Background::kNone && width == 0 && !palette && colors == 0 && !crop;
  }
};

// Unknown keys and bad values are errors naming the field: "postprocess.palette: ...".
absl::StatusOr<PostprocessOptions> ParsePostprocessOptions(const nlohmann::json& section);
absl::StatusOr<RasterImage> RunPostprocess(const RasterImage& render, const PostprocessOptions& options);

}  // namespace spriteforge::postprocess
