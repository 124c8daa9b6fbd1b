#include "common/sprite/background.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace spriteforge::postprocess {

RasterImage ToRgba(const RasterImage& image) {
  if (image.channels == 4) return image;
  RasterImage out{image.width, image.height, 4, std::vector<uint8_t>(size_t(image.width) * image.height * 4)};
  for (size_t i = 0; i < size_t(image.width) * image.height; ++i) {
    for (int c = 0; c < 3; ++c) out.pixels[i * 4 + c] = image.pixels[i * image.channels + c];
    out.pixels[i * 4 + 3] = 255;
  }
  return out;
}

RasterImage RemoveBackgroundFlood(const RasterImage& image, float tolerance) {
  RasterImage out = ToRgba(image);
  const int w = out.width, h = out.height;
  if (w == 0 || h == 0) return out;
  auto rgb = [&](int x, int y) {
    const uint8_t* p = out.at(x, y);
    return Rgb{p[0], p[1], p[2]};
  };
  // The border's dominant colour (coarse bins, exact mean of the winning bin).
  std::map<uint32_t, std::pair<int, std::array<long, 3>>> bins;
  auto vote = [&](int x, int y) {
    const Rgb c = rgb(x, y);
    auto& b = bins[(uint32_t(c[0] >> 4) << 8) | (uint32_t(c[1] >> 4) << 4) | (c[2] >> 4)];
    ++b.first;
    for (int k = 0; k < 3; ++k) b.second[k] += c[k];
  };
  for (int x = 0; x < w; ++x) vote(x, 0), vote(x, h - 1);
  for (int y = 0; y < h; ++y) vote(0, y), vote(w - 1, y);
  const auto& best = std::max_element(bins.begin(), bins.end(), [](const auto& a, const auto& b) {
                       return a.second.first < b.second.first;
                     })->second;
  const Rgb bg = {uint8_t(best.second[0] / best.first), uint8_t(best.second[1] / best.first),
                  uint8_t(best.second[2] / best.first)};
  const Oklab bg_lab = ToOklab(bg);
  const float tol2 = tolerance * tolerance;
  std::vector<uint8_t> seen(size_t(w) * h, 0);
  std::vector<std::pair<int, int>> stack;
  auto push = [&](int x, int y) {
    if (x < 0 || y < 0 || x >= w || y >= h || seen[size_t(y) * w + x]) return;
    seen[size_t(y) * w + x] = 1;
    if (Distance2(ToOklab(rgb(x, y)), bg_lab) <= tol2) stack.push_back({x, y});
  };
  for (int x = 0; x < w; ++x) push(x, 0), push(x, h - 1);
  for (int y = 0; y < h; ++y) push(0, y), push(w - 1, y);
  while (!stack.empty()) {
    const auto [x, y] = stack.back();
    stack.pop_back();
    out.at(x, y)[3] = 0;
    push(x + 1, y), push(x - 1, y), push(x, y + 1), push(x, y - 1);
  }
  return out;
}

RasterImage RemoveBackgroundChroma(const RasterImage& image, const Rgb& key, float tolerance) {
  RasterImage out = ToRgba(image);
  const Oklab key_lab = ToOklab(key);
  for (size_t i = 0; i < size_t(out.width) * out.height; ++i) {
    uint8_t* p = &out.pixels[i * 4];
    if (Distance2(ToOklab({p[0], p[1], p[2]}), key_lab) <= tolerance * tolerance) p[3] = 0;
  }
  return out;
}

RasterImage CropToContent(const RasterImage& image, int padding) {
  if (image.channels != 4) return image;
  int x0 = image.width, y0 = image.height, x1 = -1, y1 = -1;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      if (image.at(x, y)[3] == 0) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  }
  if (x1 < 0) return image;
  padding = std::max(0, padding);
  const int w = x1 - x0 + 1 + 2 * padding, h = y1 - y0 + 1 + 2 * padding;
  RasterImage out{w, h, 4, std::vector<uint8_t>(size_t(w) * h * 4, 0)};
  for (int y = y0; y <= y1; ++y) {
    std::copy_n(image.at(x0, y), size_t(x1 - x0 + 1) * 4, out.at(padding, y - y0 + padding));
  }
  return out;
}

absl::StatusOr<Rgb> ParseColor(const std::string& text) {
  std::string hex = !text.empty() && text[0] == '#' ? text.substr(1) : text;
  uint32_t v = 0;
  if (hex.size() != 6 || !absl::SimpleHexAtoi(hex, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("expected a colour like #00ff00, got \"", text, "\""));
  }
  return Rgb{uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
}

}  // namespace spriteforge::postprocess
