// PNG encoding and decoding (libpng), with tEXt chunks for generation parameters.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace spriteforge {

// An 8-bit image with 3 (RGB) or 4 (RGBA) interleaved channels, rows top to bottom.
struct RasterImage {
  int width = 0;
  int height = 0;
  int channels = 3;
  std::vector<uint8_t> pixels;  // width * height * channels

  uint8_t* at(int x, int y) { return &pixels[(static_cast<size_t>(y) * width + x) * channels]; }
  const uint8_t* at(int x, int y) const {
    return &pixels[(static_cast<size_t>(y) * width + x) * channels];
  }
};

using PngText = std::vector<std::pair<std::string, std::string>>;  // tEXt key, value

absl::StatusOr<std::string> EncodePng(const RasterImage& image, const PngText& text = {});

// Decodes any PNG (palette, grey, 16-bit, interlaced) to 8-bit RGB or RGBA: RGBA when the
// file has alpha or transparency, else RGB. tEXt chunks go to `text` if given.
absl::StatusOr<RasterImage> DecodePng(const std::string& bytes, PngText* text = nullptr);

absl::StatusOr<RasterImage> ReadPngFile(const std::string& path, PngText* text = nullptr);

// Writes atomically: a temporary file in the same folder, fsync, then rename.
absl::Status WritePngFile(const std::string& path, const RasterImage& image,
                          const PngText& text = {});

}  // namespace spriteforge
