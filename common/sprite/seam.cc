#include "common/sprite/seam.h"

#include <cstdlib>

namespace spriteforge::postprocess {
namespace {

double Step(const RasterImage& im, int x0, int y0, int x1, int y1) {
  const uint8_t* a = im.at(x0, y0);
  const uint8_t* b = im.at(x1, y1);
  double d = 0;
  for (int c = 0; c < 3; ++c) d += std::abs(int(a[c]) - int(b[c]));
  return d / 3;
}

}  // namespace

double SeamDiscontinuity(const RasterImage& im) {
  if (im.width < 3 || im.height < 3) return 0;
  double seam = 0, inner = 0;
  long seam_n = 0, inner_n = 0;
  for (int y = 0; y < im.height; ++y) {
    seam += Step(im, im.width - 1, y, 0, y), ++seam_n;
    for (int x = 0; x + 1 < im.width; ++x) inner += Step(im, x, y, x + 1, y), ++inner_n;
  }
  for (int x = 0; x < im.width; ++x) {
    seam += Step(im, x, im.height - 1, x, 0), ++seam_n;
    for (int y = 0; y + 1 < im.height; ++y) inner += Step(im, x, y, x, y + 1), ++inner_n;
  }
  const double inner_mean = inner / inner_n;
  return inner_mean > 0 ? (seam / seam_n) / inner_mean : (seam > 0 ? 1e9 : 0);
}

}  // namespace spriteforge::postprocess
