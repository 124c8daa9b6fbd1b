// Colour spaces for palette work: sRGB <-> linear light <-> Oklab, a perceptual space where
// Euclidean distance tracks how different two colours look.
#pragma once

#include <array>
#include <cstdint>

namespace spriteforge::postprocess {

using Rgb = std::array<uint8_t, 3>;

struct Oklab {
  float L = 0, a = 0, b = 0;
};

Oklab ToOklab(const Rgb& rgb);
Rgb FromOklab(const Oklab& lab);  // clamped to the sRGB gamut
float Distance2(const Oklab& x, const Oklab& y);

}  // namespace spriteforge::postprocess
