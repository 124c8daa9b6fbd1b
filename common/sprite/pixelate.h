// Reduction of a render to a pixel grid (e.g. 1024x1024 to 64x64). Each output pixel
// covers a cell of source pixels:
//   area      the mean of the cell (alpha-weighted): smooth, may invent in-between colours;
//   majority  the cell's most frequent colour (after a coarse 5-bit-per-channel binning),
//             which keeps the hard edges and flat fills of pixel art.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/png.h"

namespace spriteforge::postprocess {

enum class PixelateMethod { kArea, kMajority };

absl::StatusOr<RasterImage> Pixelate(const RasterImage& image, int width, int height, PixelateMethod method);

absl::StatusOr<PixelateMethod> ParsePixelateMethod(const std::string& name);
// "64x64" or "64" (square).
absl::Status ParseSize(const std::string& text, int* width, int* height);

}  // namespace spriteforge::postprocess
