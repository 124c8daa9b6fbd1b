#include "common/sprite/control/canny.h"

#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"

namespace spriteforge::control {
namespace {

// Per pixel: the Sobel derivatives of the channel whose L1 magnitude is largest.
struct Gradients {
  int width = 0, height = 0;
  std::vector<int> dx, dy, magnitude;
};

// 3x3 Sobel with replicated borders, as OpenCV's Canny computes it.
Gradients Sobel(const RasterImage& image) {
  const int w = image.width, h = image.height, channels = image.channels == 4 ? 3 : image.channels;
  Gradients g{w, h, std::vector<int>(size_t(w) * h), std::vector<int>(size_t(w) * h),
              std::vector<int>(size_t(w) * h, -1)};
  auto px = [&](int x, int y, int c) {
    x = x < 0 ? 0 : (x >= w ? w - 1 : x);
    y = y < 0 ? 0 : (y >= h ? h - 1 : y);
    return int(image.at(x, y)[c]);
  };
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const size_t i = size_t(y) * w + x;
      for (int c = 0; c < channels; ++c) {
        const int gx = (px(x + 1, y - 1, c) - px(x - 1, y - 1, c)) + 2 * (px(x + 1, y, c) - px(x - 1, y, c)) +
                       (px(x + 1, y + 1, c) - px(x - 1, y + 1, c));
        const int gy = (px(x - 1, y + 1, c) - px(x - 1, y - 1, c)) + 2 * (px(x, y + 1, c) - px(x, y - 1, c)) +
                       (px(x + 1, y + 1, c) - px(x + 1, y - 1, c));
        const int m = std::abs(gx) + std::abs(gy);
        if (m > g.magnitude[i]) g.magnitude[i] = m, g.dx[i] = gx, g.dy[i] = gy;  // first strongest channel
      }
    }
  }
  return g;
}

enum : uint8_t { kMaybe = 0, kNotEdge = 1, kEdge = 2 };

}  // namespace

absl::StatusOr<RasterImage> CannyEdges(const RasterImage& image, int low, int high) {
  if (low < 0 || high < 0 || low > high) {
    return absl::InvalidArgumentError(
        absl::StrCat("canny thresholds low ", low, ", high ", high, ": need 0 <= low <= high"));
  }
  if (image.width < 1 || image.height < 1 || (image.channels != 3 && image.channels != 4)) {
    return absl::InvalidArgumentError("canny needs a non-empty RGB or RGBA image");
  }
  const Gradients g = Sobel(image);
  const int w = g.width, h = g.height;
  auto mag = [&](int x, int y) { return x < 0 || y < 0 || x >= w || y >= h ? 0 : g.magnitude[size_t(y) * w + x]; };

  // Non-maximum suppression in OpenCV's fixed point: tan(22.5 deg) scaled by 2^15 splits the
  // gradient directions into horizontal, vertical and the two diagonals. Ties go to the
  // pixel before (left, above), so a step edge gives a line one pixel wide.
  constexpr int kShift = 15, kTan22 = 13573;
  std::vector<uint8_t> map(size_t(w) * h, kNotEdge);
  std::vector<int> stack;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const size_t i = size_t(y) * w + x;
      const int m = g.magnitude[i];
      if (m <= low) continue;
      const int ax = std::abs(g.dx[i]), ay = std::abs(g.dy[i]) << kShift;
      const int tg22x = ax * kTan22;
      bool peak;
      if (ay < tg22x) {
        peak = m > mag(x - 1, y) && m >= mag(x + 1, y);
      } else if (ay > tg22x + (ax << (kShift + 1))) {
        peak = m > mag(x, y - 1) && m >= mag(x, y + 1);
      } else {
        const int s = (g.dx[i] ^ g.dy[i]) < 0 ? -1 : 1;
        peak = m > mag(x - s, y - 1) && m > mag(x + s, y + 1);
      }
      if (!peak) continue;
      if (m > high) {
        map[i] = kEdge;
        stack.push_back(int(i));
      } else {
        map[i] = kMaybe;
      }
    }
  }
  // Hysteresis: weak peaks touching an edge (8-connected) join it.
  while (!stack.empty()) {
    const int i = stack.back();
    stack.pop_back();
    const int x = i % w, y = i / w;
    for (int ny = y - 1; ny <= y + 1; ++ny) {
      for (int nx = x - 1; nx <= x + 1; ++nx) {
        if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
        const size_t n = size_t(ny) * w + nx;
        if (map[n] == kMaybe) map[n] = kEdge, stack.push_back(int(n));
      }
    }
  }
  RasterImage out{w, h, 3, std::vector<uint8_t>(size_t(w) * h * 3, 0)};
  for (size_t i = 0; i < map.size(); ++i) {
    if (map[i] == kEdge) out.pixels[i * 3] = out.pixels[i * 3 + 1] = out.pixels[i * 3 + 2] = 255;
  }
  return out;
}

}  // namespace spriteforge::control
