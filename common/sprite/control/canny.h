// Canny edge maps as control images for canny ControlNets.
#pragma once

#include "absl/status/statusor.h"
#include "common/png.h"

namespace spriteforge::control {

// The edges ControlNet's canny preprocessor finds: OpenCV's cv2.Canny(image, low, high) with
// its defaults (no blur first, 3x3 Sobel, L1 magnitude |gx| + |gy|, non-maximum suppression
// along the nearest of 4 directions, hysteresis: pixels above `high` start edges, pixels
// above `low` next to an edge extend it). Like OpenCV on a colour image, each pixel takes the
// gradient of its strongest channel (a grey image gives the grey image's edges); alpha is
// ignored. Magnitudes run 0..1020 per axis. Returns white (255) edges on black, RGB, the
// image's size; thresholds must satisfy 0 <= low <= high.
absl::StatusOr<RasterImage> CannyEdges(const RasterImage& image, int low, int high);

}  // namespace spriteforge::control
