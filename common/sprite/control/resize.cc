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

// `values` (w x h, `channels` interleaved) resampled to width x height: rows first (width),
// then columns (height), area averaging where an axis shrinks and bilinear where it grows.
std::vector<double> Resample(const std::vector<float>& values, int channels, int w, int h, int width, int height) {
  const auto xs = width < w ? AreaTaps(w, width) : BilinearTaps(w, width);
  const auto ys = height < h ? AreaTaps(h, height) : BilinearTaps(h, height);
  std::vector<float> rows(size_t(width) * h * channels, 0.0f);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < width; ++x) {
      for (const auto& [s, wt] : xs[x].taps) {
        for (int c = 0; c < channels; ++c) {
          rows[(size_t(y) * width + x) * channels + c] += float(wt) * values[(size_t(y) * w + s) * channels + c];
        }
      }
    }
  }
  std::vector<double> out(size_t(width) * height * channels, 0.0);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        double v = 0;
        for (const auto& [s, wt] : ys[y].taps) v += wt * rows[(size_t(s) * width + x) * channels + c];
        out[(size_t(y) * width + x) * channels + c] = v;
      }
    }
  }
  return out;
}

uint8_t ToByte(double v) { return uint8_t(std::clamp(std::lround(v), 0L, 255L)); }

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
  const std::vector<double> resized = Resample(rgb, 3, image.width, image.height, width, height);
  RasterImage out{width, height, 3, std::vector<uint8_t>(resized.size())};
  for (size_t i = 0; i < resized.size(); ++i) out.pixels[i] = ToByte(resized[i]);
  return out;
}

absl::StatusOr<RasterImage> StretchImage(const RasterImage& image, int width, int height) {
  if (image.width < 1 || image.height < 1 || (image.channels != 3 && image.channels != 4)) {
    return absl::InvalidArgumentError("an image to resize must be a non-empty RGB or RGBA image");
  }
  if (width < 1 || height < 1 || width > 16384 || height > 16384) {
    return absl::InvalidArgumentError(absl::StrCat("resize target ", Size(width, height), " out of range"));
  }
  if (image.width == width && image.height == height) return image;
  const int n = image.channels;
  const bool alpha = n == 4;
  // Colour premultiplied by alpha while averaging, divided back afterwards.
  std::vector<float> values(image.pixels.size());
  for (size_t i = 0; i < values.size(); i += n) {
    const float a = alpha ? image.pixels[i + 3] / 255.0f : 1.0f;
    for (int c = 0; c < 3; ++c) values[i + c] = image.pixels[i + c] * a;
    if (alpha) values[i + 3] = image.pixels[i + 3];
  }
  const std::vector<double> resized = Resample(values, n, image.width, image.height, width, height);
  RasterImage out{width, height, n, std::vector<uint8_t>(resized.size())};
  for (size_t i = 0; i < resized.size(); i += n) {
    const double a = alpha ? resized[i + 3] / 255.0 : 1.0;
    for (int c = 0; c < 3; ++c) out.pixels[i + c] = a > 0 ? ToByte(resized[i + c] / a) : 0;
    if (alpha) out.pixels[i + 3] = ToByte(resized[i + 3]);
  }
  return out;
}

}  // namespace spriteforge::control
