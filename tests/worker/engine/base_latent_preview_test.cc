// Latent previews: the linear latent-to-RGB map against values worked out by hand from
// the coefficient table (rgb = bias + latents x matrix, then (v + 1) / 2 * 255 rounded).
#include "spriteforge/engine/latent_preview.h"

#include <gtest/gtest.h>

#include <vector>

namespace spriteforge::engine {
namespace {

// 2x2 latents, channels first: pixel 0 all zero, pixel 1 only channel 0 = 1, pixel 2 only
// channel 3 = 1, pixel 3 = (0.5, -0.5, 2, 1).
std::vector<float> Latents2x2() {
  const float pixels[4][4] = {{0, 0, 0, 0}, {1, 0, 0, 0}, {0, 0, 0, 1}, {0.5f, -0.5f, 2, 1}};
  std::vector<float> chw(16);
  for (int p = 0; p < 4; ++p) {
    for (int c = 0; c < 4; ++c) chw[c * 4 + p] = pixels[p][c];
  }
  return chw;
}

TEST(LatentPreview, MapsEachPixelThroughTheMatrixAndBias) {
  const std::vector<float> latents = Latents2x2();
  auto rgb = LatentsToRgb(latents.data(), 4, 2, 2);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->width, 2);
  EXPECT_EQ(rgb->height, 2);
  const std::vector<uint8_t> expected = {
      141, 125, 127,  // bias only: (1.1084, 0.9825, 0.9989) * 127.5
      188, 179, 183,  // row 0 + bias: 0.4735, 0.4057, 0.4330
      101, 93, 99,    // row 3 + bias: -0.2081, -0.2667, -0.2199
      168, 149, 111,  // 0.5 r0 - 0.5 r1 + 2 r2 + r3 + bias: 0.3163, 0.1692, -0.12865
  };
  EXPECT_EQ(rgb->rgb, expected);
}

TEST(LatentPreview, SecondAndThirdChannels) {
  std::vector<float> latents(8, 0.0f);  // 1x2: pixel 0 channel 1 = 1, pixel 1 channel 2 = 1
  latents[1 * 2 + 0] = 1;
  latents[2 * 2 + 1] = 1;
  auto rgb = LatentsToRgb(latents.data(), 4, 1, 2);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->rgb, (std::vector<uint8_t>{109, 125, 141, 155, 139, 123}));
}

TEST(LatentPreview, ClampsToTheByteRange) {
  std::vector<float> latents = {10, -10, 0, 0, 0, 0, 0, 0};  // 2x1: channel 0 = +10, -10
  auto rgb = LatentsToRgb(latents.data(), 4, 1, 2);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->rgb, (std::vector<uint8_t>{255, 255, 255, 0, 0, 0}));
}

TEST(LatentPreview, PicksOneImageOfAStep) {
  StepLatents step;
  step.images = 2;
  step.channels = 4;
  step.height = 1;
  step.width = 1;
  step.values = {0, 0, 0, 0, 1, 0, 0, 0};  // image 1: channel 0 = 1
  auto rgb = LatentsToRgb(step, 1);
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->rgb, (std::vector<uint8_t>{188, 179, 183}));
  EXPECT_EQ(LatentsToRgb(step, 2).status().code(), absl::StatusCode::kOutOfRange);
  step.values.pop_back();
  EXPECT_EQ(LatentsToRgb(step, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LatentPreview, RefusesLatentsWithoutSdxlsFourChannels) {
  std::vector<float> latents(16, 0.0f);
  auto rgb = LatentsToRgb(latents.data(), 16, 1, 1);
  ASSERT_FALSE(rgb.ok());
  EXPECT_EQ(rgb.status().message(), "latent previews need 4-channel (SDXL) latents, got 16");
}

}  // namespace
}  // namespace spriteforge::engine
