// A manifest's `postprocess:` section, parsed and applied to one render:
//
//   postprocess: {background: flood, tolerance: 0.08, pixelate: 64x64, method: majority,
//                 palette: pico8, dither: none, crop: true, padding: 1}
//
// Steps, in order: background removal on the full render, pixel grid, palette, crop.
// `palette` is a built-in name, a list of colours (`['#0f380f', '#9bbc0f']`) or the file
// name of a palette in the worker's palette folder (`forest.hex`). Instead of `palette`,
// `colors: N` derives N colours from the sprite (`quantizer: median_cut` or `kmeans`).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/png.h"
#include "common/sprite/color.h"
#include "common/sprite/palette.h"
#include "common/sprite/pixelate.h"

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

// Where palette files may come from. A manifest's section runs on workers for whoever
// submitted it, so it never names a path there: only a file name inside the worker's
// palette folder. The local `pixelate` command reads whatever file its user names.
struct PaletteAccess {
  bool any_path = false;     // the local command
  std::string folder;        // a worker's --palette-dir; empty: no palette files
  bool read_files = true;    // false: file names are only checked (the coordinator at submit)
};

// Unknown keys and bad values are errors naming the field: "postprocess.palette: ...".
absl::StatusOr<PostprocessOptions> ParsePostprocessOptions(const nlohmann::json& section,
                                                           const PaletteAccess& access = {});
absl::StatusOr<RasterImage> RunPostprocess(const RasterImage& render, const PostprocessOptions& options);

}  // namespace spriteforge::postprocess
