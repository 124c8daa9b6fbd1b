#include "common/sprite/pixelate.h"

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace spriteforge::postprocess {

absl::StatusOr<RasterImage> Pixelate(const RasterImage& image, int width, int height, PixelateMethod method) {
  if (width < 1 || height < 1 || width > 4096 || height > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("pixel grid ", width, "x", height, " out of range 1..4096"));
  }
  if (image.width < 1 || image.height < 1) return absl::InvalidArgumentError("empty image");
  const int ch = image.channels;
  RasterImage out{width, height, ch, std::vector<uint8_t>(size_t(width) * height * ch)};
  for (int oy = 0; oy < height; ++oy) {
    const int y0 = int(int64_t(oy) * image.height / height);
    const int y1 = std::max(y0 + 1, int(int64_t(oy + 1) * image.height / height));
    for (int ox = 0; ox < width; ++ox) {
      const int x0 = int(int64_t(ox) * image.width / width);
      const int x1 = std::max(x0 + 1, int(int64_t(ox + 1) * image.width / width));
      uint8_t* dst = out.at(ox, oy);
      if (method == PixelateMethod::kArea) {
        double sum[3] = {0, 0, 0}, alpha = 0;
        int n = 0;
        for (int y = y0; y < y1; ++y) {
          for (int x = x0; x < x1; ++x, ++n) {
            const uint8_t* p = image.at(x, y);
            const double a = ch == 4 ? p[3] / 255.0 : 1.0;
            for (int c = 0; c < 3; ++c) sum[c] += p[c] * a;
            alpha += a;
          }
        }
        for (int c = 0; c < 3; ++c) dst[c] = alpha > 0 ? uint8_t(std::lround(sum[c] / alpha)) : 0;
        if (ch == 4) dst[3] = uint8_t(std::lround(255 * alpha / n));
        continue;
      }
      // Majority: bin colours coarsely, pick the fullest bin, output its exact mean.
      struct Bin {
        int count = 0;
        long sum[4] = {0, 0, 0, 0};
      };
      std::map<uint32_t, Bin> bins;
      for (int y = y0; y < y1; ++y) {
        for (int x = x0; x < x1; ++x) {
          const uint8_t* p = image.at(x, y);
          const bool transparent = ch == 4 && p[3] < 128;
          const uint32_t key = transparent ? 0xFFFFFFFFu : (uint32_t(p[0] >> 3) << 10) | (uint32_t(p[1] >> 3) << 5) | (p[2] >> 3);
          Bin& b = bins[key];
          ++b.count;
          for (int c = 0; c < ch; ++c) b.sum[c] += p[c];
        }
      }
      const auto best = std::max_element(bins.begin(), bins.end(), [](const auto& a, const auto& b) {
        return a.second.count < b.second.count;  // ties: the lower key, deterministic
      });
      if (best->first == 0xFFFFFFFFu) {
        std::fill(dst, dst + ch, 0);
        continue;
      }
      for (int c = 0; c < ch; ++c) dst[c] = uint8_t(std::lround(double(best->second.sum[c]) / best->second.count));
      if (ch == 4) dst[3] = 255;
    }
  }
  return out;
}

absl::StatusOr<PixelateMethod> ParsePixelateMethod(const std::string& name) {
  if (name == "area") return PixelateMethod::kArea;
  if (name == "majority") return PixelateMethod::kMajority;
  return absl::InvalidArgumentError(absl::StrCat("unknown method \"", name, "\" (area, majority)"));
}

absl::Status ParseSize(const std::string& text, int* width, int* height) {
  const size_t x = text.find('x');
  const bool ok = x == std::string::npos
                      ? absl::SimpleAtoi(text, width) && (*height = *width, true)
                      : absl::SimpleAtoi(text.substr(0, x), width) && absl::SimpleAtoi(text.substr(x + 1), height);
  if (!ok || *width < 1 || *height < 1 || *width > 4096 || *height > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("expected WxH in 1..4096, got \"", text, "\""));
  }
  return absl::OkStatus();
}

}  // namespace spriteforge::postprocess
