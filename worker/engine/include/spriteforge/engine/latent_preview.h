// Previews without the VAE: SDXL's four latent channels map to RGB almost linearly, so a
// 4x3 matrix plus a bias per colour gives a recognisable picture at one pixel per latent
// (1/8 of the image's size). The coefficients are the least-squares fit that SDXL UIs use
// for their "latent2rgb" previews; applied to latents in the UNet's scale, they give RGB
// in about [-1, 1].
#pragma once

#include "absl/status/statusor.h"
#include "spriteforge/engine/engine.h"

namespace spriteforge::engine {

// One image's latents (channels x height x width floats, channels first) as 8-bit RGB of
// width x height: ((rgb + 1) / 2 * 255, rounded and clamped). Only 4-channel (SDXL)
// latents have coefficients; others are an error.
absl::StatusOr<RgbImage> LatentsToRgb(const float* latents, int channels, int height, int width);

// Image `index` of a preview step's latents.
absl::StatusOr<RgbImage> LatentsToRgb(const StepLatents& latents, int index);

}  // namespace spriteforge::engine
