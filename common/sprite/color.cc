#include "common/sprite/color.h"

#include <algorithm>
#include <cmath>

namespace spriteforge::postprocess {
namespace {

float ToLinear(uint8_t v) {
  const float c = v / 255.0f;
  return c <= 0.04045f ? c / 12.92f : std::pow((c + 0.055f) / 1.055f, 2.4f);
}

uint8_t FromLinear(float c) {
  c = std::clamp(c, 0.0f, 1.0f);
  const float s = c <= 0.0031308f ? c * 12.92f : 1.055f * std::pow(c, 1 / 2.4f) - 0.055f;
  return static_cast<uint8_t>(std::lround(std::clamp(s, 0.0f, 1.0f) * 255));
}

}  // namespace

// Oklab as published by Björn Ottosson (2020): linear sRGB -> LMS -> cube root -> Lab.
Oklab ToOklab(const Rgb& rgb) {
  const float r = ToLinear(rgb[0]), g = ToLinear(rgb[1]), b = ToLinear(rgb[2]);
  const float l = std::cbrt(0.4122214708f * r + 0.5363325363f * g + 0.0514459929f * b);
  const float m = std::cbrt(0.2119034982f * r + 0.6806995451f * g + 0.1073969566f * b);
  const float s = std::cbrt(0.0883024619f * r + 0.2817188376f * g + 0.6299787005f * b);
  return {0.2104542553f * l + 0.7936177850f * m - 0.0040720468f * s,
          1.9779984951f * l - 2.4285922050f * m + 0.4505937099f * s,
          0.0259040371f * l + 0.7827717662f * m - 0.8086757660f * s};
}

Rgb FromOklab(const Oklab& lab) {
  const float l = lab.L + 0.3963377774f * lab.a + 0.2158037573f * lab.b;
  const float m = lab.L - 0.1055613458f * lab.a - 0.0638541728f * lab.b;
  const float s = lab.L - 0.0894841775f * lab.a - 1.2914855480f * lab.b;
  const float l3 = l * l * l, m3 = m * m * m, s3 = s * s * s;
  return {FromLinear(4.0767416621f * l3 - 3.3077115913f * m3 + 0.2309699292f * s3),
          FromLinear(-1.2684380046f * l3 + 2.6097574011f * m3 - 0.3413193965f * s3),
          FromLinear(-0.0041960863f * l3 - 0.7034186147f * m3 + 1.7076147010f * s3)};
}

float Distance2(const Oklab& x, const Oklab& y) {
  const float dL = x.L - y.L, da = x.a - y.a, db = x.b - y.b;
  return dL * dL + da * da + db * db;
}

}  // namespace spriteforge::postprocess
