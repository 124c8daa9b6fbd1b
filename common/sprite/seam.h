// How visible the seams are when an image is tiled: the mean colour step across the
// wrap-around edges (last column to first, last row to first) divided by the mean step
// between neighbouring columns and rows inside the image. About 1 or less: the edges are
// no rougher than the image itself; well above 1: a visible seam.
#pragma once

#include "common/png.h"

namespace spriteforge::postprocess {

double SeamDiscontinuity(const RasterImage& image);

}  // namespace spriteforge::postprocess
