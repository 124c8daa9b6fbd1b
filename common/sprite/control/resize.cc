#include "common/sprite/control/resize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace spriteforge::control {
namespace {

// One output sample along an axis: the source indices it reads and their weights (sum 1).
struct Taps {
  std::vector<std::pair<int, double>> taps;
};

// Area averaging shrinking n source pixels to m (m < n): each output pixel covers n/m
// source pixels, partially at its ends.
std::vector<Taps> AreaTaps(int n, int m) {
  std::vector<Taps> out(m);
  const double scale = double(n) / m;
  for (int o = 0; o < m; ++o) {
    const double begin = o * scale, end = (o + 1) * scale;
    for (int s = int(begin); s < n && s < end; ++s) {
      const double cover = std::min(end, s + 1.0) - std::max(begin, double(s));
      if (cover > 1e-12) out[o].taps.push_back({s, cover / scale});
    }
  }
  return out;
}

// Bilinear enlargement with pixel centres aligned (as cv2.resize and PIL), edges clamped.
std::vector<Taps> BilinearTaps(int n, int m) {
  std::vector<Taps> out(m);
  const double scale = double(n) / m;
  for (int o = 0; o < m; ++o) {
    const double src = std::clamp((o + 0.5) * scale - 0.5, 0.0, double(n - 1));
    const int s0 = int(src), s1 = std::min(s0 + 1, n - 1);
    const double f = src - s0;
    out[o].taps = {{s0, 1 - f}, {s1, f}};
  }
  return out;
}

// The image as RGB floats, alpha over black.
std::vector<float> ToRgb(const RasterImage& image) {
  const size_t n = size_t(image.width) * image.height;
  std::vector<float> rgb(n * 3);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &image.pixels[i * image.channels];
    const float a = image.channels == 4 ? p[3] / 255.0f : 1.0f;
    for (int c = 0; c < 3; ++c) rgb[i * 3 + c] = p[c] * a;
  }
  return rgb;
}

std::string Size(int w, int h) { return absl::StrCat(w, "x", h); }

}  // namespace

absl::StatusOr<RasterImage> ResizeControlImage(const RasterImage& image, int width, int height) {
  if (image.width < 1 || image.height < 1 || (image.channels != 3 && image.channels != 4)) {
    return absl::InvalidArgumentError("a control image must be a non-empty RGB or RGBA image");
  }
  if (width < 1 || height < 1 || width > 16384 || height > 16384) {
    return absl::InvalidArgumentError(absl::StrCat("control image target ", Size(width, height), " out of range"));
  }
  // The same shape to within the rounding to whole pixels, judged at the smaller of the two
  // sizes (where that rounding happened): 1000x563 fits 1920x1080, 1000x600 does not.
  const bool control_smaller = int64_t(image.width) * image.height < int64_t(width) * height;
  const double sw = control_smaller ? image.width : width, sh = control_smaller ? image.height : height;
  const double lw = control_smaller ? width : image.width, lh = control_smaller ? height : image.height;
  if (std::abs(lw * sh / lh - sw) >= 1 || std::abs(lh * sw / lw - sh) >= 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control image is ", Size(image.width, image.height), " but the image is ", Size(width, height),
        ": another aspect ratio (crop or pad it to ", Size(width, height), " first)"));
  }
  const std::vector<float> rgb = ToRgb(image);
  if (image.width == width && image.height == height) {
    RasterImage out{width, height, 3, std::vector<uint8_t>(rgb.size())};
    for (size_t i = 0; i < rgb.size(); ++i) out.pixels[i] = uint8_t(std::lround(rgb[i]));
    return out;
  }
  const auto xs = width < image.width ? AreaTaps(image.width, width) : BilinearTaps(image.width, width);
  const auto ys = height < image.height ? AreaTaps(image.height, height) : BilinearTaps(image.height, height);
  // Rows first (width), then columns (height).
  std::vector<float> rows(size_t(width) * image.height * 3, 0.0f);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (const auto& [s, w] : xs[x].taps) {
        for (int c = 0; c < 3; ++c) rows[(size_t(y) * width + x) * 3 + c] += float(w) * rgb[(size_t(y) * image.width + s) * 3 + c];
      }
    }
  }
  RasterImage out{width, height, 3, std::vector<uint8_t>(size_t(width) * height * 3)};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) {
        double v = 0;
        for (const auto& [s, w] : ys[y].taps) v += w * rows[(size_t(s) * width + x) * 3 + c];
        out.pixels[(size_t(y) * width + x) * 3 + c] = uint8_t(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
  return out;
}

}  // namespace spriteforge::control
