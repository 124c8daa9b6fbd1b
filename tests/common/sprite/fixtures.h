// Small images built in code for the post-processing tests.
#pragma once

#include <cmath>

#include "common/png.h"

namespace spriteforge::postprocess::testing {

inline RasterImage Solid(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  RasterImage im{w, h, 3, std::vector<uint8_t>(size_t(w) * h * 3)};
  for (size_t i = 0; i < size_t(w) * h; ++i) im.pixels[i * 3] = r, im.pixels[i * 3 + 1] = g, im.pixels[i * 3 + 2] = b;
  return im;
}

// A red disc of radius r on a green background, centred.
inline RasterImage Disc(int size, double radius) {
  RasterImage im = Solid(size, size, 20, 200, 40);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      if (std::hypot(x + 0.5 - size / 2.0, y + 0.5 - size / 2.0) <= radius) {
        uint8_t* p = im.at(x, y);
        p[0] = 220, p[1] = 30, p[2] = 30;
      }
    }
  }
  return im;
}

// A smooth colour ramp: many distinct colours.
inline RasterImage Gradient(int w, int h) {
  RasterImage im{w, h, 3, std::vector<uint8_t>(size_t(w) * h * 3)};
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = im.at(x, y);
      p[0] = uint8_t(255 * x / (w - 1)), p[1] = uint8_t(255 * y / (h - 1)), p[2] = uint8_t(128 + 100 * std::sin(x * 0.1));
    }
  }
  return im;
}

}  // namespace spriteforge::postprocess::testing
