// Background to transparency, and cropping to what is left.
//   flood   grows from every border pixel close to the border's dominant colour, through
//           neighbours within `tolerance` (Oklab distance, ~0.02 barely visible, 0.1 loose)
//           of that colour: a subject that touches no border keeps every pixel.
//   chroma  every pixel within `tolerance` of a key colour, anywhere.
#pragma once

#include "absl/status/statusor.h"
#include "common/png.h"
#include "common/sprite/color.h"

namespace spriteforge::postprocess {

RasterImage ToRgba(const RasterImage& image);
RasterImage RemoveBackgroundFlood(const RasterImage& image, float tolerance);
RasterImage RemoveBackgroundChroma(const RasterImage& image, const Rgb& key, float tolerance);
// The bounding box of pixels with alpha > 0, plus `padding` transparent pixels each side.
// An image with no visible pixel is returned as it is.
RasterImage CropToContent(const RasterImage& image, int padding);

absl::StatusOr<Rgb> ParseColor(const std::string& text);  // "#00ff00" or "00ff00"

}  // namespace spriteforge::postprocess
