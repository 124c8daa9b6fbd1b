#include "spriteforge/engine/latent_preview.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace spriteforge::engine {
namespace {

// Rows: latent channels 0..3; columns: R, G, B.
constexpr float kSdxlToRgb[4][3] = {
    {0.3651f, 0.4232f, 0.4341f},
    {-0.2533f, -0.0042f, 0.1068f},
    {0.1076f, 0.1111f, -0.0362f},
    {-0.3165f, -0.2492f, -0.2188f},
};
constexpr float kSdxlRgbBias[3] = {0.1084f, -0.0175f, -0.0011f};

uint8_t ToByte(float v) {
  const float scaled = std::round((v + 1.0f) * 0.5f * 255.0f);
  if (!(scaled > 0.0f)) return 0;  // also NaN
  return static_cast<uint8_t>(std::min(scaled, 255.0f));
}

}  // namespace

absl::StatusOr<RgbImage> LatentsToRgb(const float* latents, int channels, int height, int width) {
  if (channels != 4) {
    return absl::InvalidArgumentError(absl::StrCat("latent previews need 4-channel (SDXL) latents, got ", channels));
  }
  if (height < 1 || width < 1) return absl::InvalidArgumentError(absl::StrCat("latents of ", width, "x", height));
  RgbImage out;
  out.width = width;
  out.height = height;
  const size_t plane = static_cast<size_t>(height) * width;
  out.rgb.resize(plane * 3);
  for (size_t p = 0; p < plane; ++p) {
    for (int c = 0; c < 3; ++c) {
      float v = kSdxlRgbBias[c];
      for (int l = 0; l < 4; ++l) v += latents[l * plane + p] * kSdxlToRgb[l][c];
      out.rgb[p * 3 + c] = ToByte(v);
    }
  }
  return out;
}

absl::StatusOr<RgbImage> LatentsToRgb(const StepLatents& latents, int index) {
  if (index < 0 || index >= latents.images) {
    return absl::OutOfRangeError(absl::StrCat("image ", index, " of a preview with ", latents.images));
  }
  const size_t need = static_cast<size_t>(latents.images) * latents.channels * latents.height * latents.width;
  if (latents.values.size() != need) {
    return absl::InvalidArgumentError(absl::StrCat("preview latents hold ", latents.values.size(), " values, not ", need));
  }
  return LatentsToRgb(latents.image(index), latents.channels, latents.height, latents.width);
}

}  // namespace spriteforge::engine
