// Sprite sheets: frames packed into one RGBA image plus an atlas in TexturePacker's
// "JSON hash" format, which Phaser, Godot and Unity importers read.
//   grid   equal cells (the largest frame's size), `columns` per row (default: square-ish);
//   tight  shelf packing by height, for frames of mixed sizes.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/png.h"

namespace spriteforge::postprocess {

struct Frame {
  std::string name;
  RasterImage image;
};

struct Rect {
  int x = 0, y = 0, w = 0, h = 0;
};

struct Sheet {
  RasterImage image;                   // RGBA
  std::vector<Rect> rects;             // per frame, in input order
  nlohmann::json atlas;                // TexturePacker JSON hash
};

enum class SheetLayout { kGrid, kTight };

// `image_name` is the sheet's file name as the atlas refers to it.
absl::StatusOr<Sheet> PackSheet(const std::vector<Frame>& frames, SheetLayout layout, int columns,
                                const std::string& image_name);

}  // namespace spriteforge::postprocess
