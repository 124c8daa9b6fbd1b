#include "common/sprite/sheet.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/sprite/background.h"

namespace spriteforge::postprocess {

absl::StatusOr<Sheet> PackSheet(const std::vector<Frame>& frames, SheetLayout layout, int columns,
                                const std::string& image_name) {
  if (frames.empty()) return absl::InvalidArgumentError("no frames to pack");
  std::set<std::string> names;
  for (const Frame& f : frames) {
    if (!names.insert(f.name).second) return absl::InvalidArgumentError(absl::StrCat("two frames named ", f.name));
    if (f.image.width < 1 || f.image.height < 1) return absl::InvalidArgumentError(absl::StrCat(f.name, ": empty image"));
  }
  const int n = static_cast<int>(frames.size());
  Sheet sheet;
  sheet.rects.resize(n);
  int width = 0, height = 0;
  if (layout == SheetLayout::kGrid) {
    int cw = 0, chh = 0;
    for (const Frame& f : frames) cw = std::max(cw, f.image.width), chh = std::max(chh, f.image.height);
    const int cols = columns > 0 ? std::min(columns, n) : static_cast<int>(std::ceil(std::sqrt(double(n))));
    const int rows = (n + cols - 1) / cols;
    for (int i = 0; i < n; ++i) {
      sheet.rects[i] = {(i % cols) * cw, (i / cols) * chh, frames[i].image.width, frames[i].image.height};
    }
    width = cols * cw;
    height = rows * chh;
  } else {
    // Shelves: tallest frames first, rows no wider than a square's side of the total area.
    long area = 0;
    int widest = 0;
    for (const Frame& f : frames) area += long(f.image.width) * f.image.height, widest = std::max(widest, f.image.width);
    const int limit = std::max(widest, static_cast<int>(std::ceil(std::sqrt(double(area)))));
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return frames[a].image.height > frames[b].image.height; });
    int x = 0, y = 0, shelf = 0;
    for (int i : order) {
      const RasterImage& im = frames[i].image;
      if (x + im.width > limit) y += shelf, x = 0, shelf = 0;
      sheet.rects[i] = {x, y, im.width, im.height};
      x += im.width;
      shelf = std::max(shelf, im.height);
      width = std::max(width, x);
    }
    height = y + shelf;
  }
  sheet.image = RasterImage{width, height, 4, std::vector<uint8_t>(size_t(width) * height * 4, 0)};
  nlohmann::json frames_json = nlohmann::json::object();
  for (int i = 0; i < n; ++i) {
    const RasterImage rgba = ToRgba(frames[i].image);
    const Rect& r = sheet.rects[i];
    for (int y = 0; y < r.h; ++y) std::copy_n(rgba.at(0, y), size_t(r.w) * 4, sheet.image.at(r.x, r.y + y));
    frames_json[frames[i].name] = {{"frame", {{"x", r.x}, {"y", r.y}, {"w", r.w}, {"h", r.h}}},
                                   {"rotated", false},
                                   {"trimmed", false},
                                   {"spriteSourceSize", {{"x", 0}, {"y", 0}, {"w", r.w}, {"h", r.h}}},
                                   {"sourceSize", {{"w", r.w}, {"h", r.h}}}};
  }
  sheet.atlas = {{"frames", frames_json},
                 {"meta",
                  {{"app", "spriteforge"},
                   {"version", "1.0"},
                   {"image", image_name},
                   {"format", "RGBA8888"},
                   {"size", {{"w", width}, {"h", height}}},
                   {"scale", "1"}}}};
  return sheet;
}

}  // namespace spriteforge::postprocess
