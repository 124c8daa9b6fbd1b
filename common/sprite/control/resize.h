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

}  // namespace spriteforge::control
