// Control images of another size than the image they steer.
#pragma once

#include "absl/status/statusor.h"
#include "common/png.h"

namespace spriteforge::control {

// A control image for a `width` x `height` render, as RGB:
//   - the same size: as it is;
//   - the same aspect ratio, to within whole-pixel rounding (1000x563 fits 1920x1080,
//     1000x600 does not): resized, by area averaging when smaller (a one-pixel edge or limb
//     line stays, fainter, instead of vanishing between samples) and bilinearly when
//     larger, as ControlNet's own preprocessors resize (area down, a smooth filter up);
//   - another aspect ratio: refused, naming both sizes: stretching would bend a pose or
//     edge map and cropping would cut it, so the choice is left to whoever made it.
// Alpha is composited over black (no control signal), whatever the size.
absl::StatusOr<RasterImage> ResizeControlImage(const RasterImage& image, int width, int height);

// `image` stretched to `width` x `height` whatever its aspect ratio (no crop, no padding), as
// A1111's "Just resize" does to an img2img start image; filtered as above (area down,
// bilinear up, per axis). RGB stays RGB and RGBA stays RGBA: colour is averaged weighted by
// alpha, so a transparent pixel's hidden colour does not bleed into its neighbours.
absl::StatusOr<RasterImage> StretchImage(const RasterImage& image, int width, int height);

}  // namespace spriteforge::control
