#include "common/sprite/background.h"

#include <gtest/gtest.h>

#include "tests/common/sprite/fixtures.h"

namespace spriteforge::postprocess {
namespace {

using testing::Disc;

TEST(BackgroundTest, FloodFillMakesTheBorderTransparentAndKeepsTheSubject) {
  const RasterImage out = RemoveBackgroundFlood(Disc(64, 20), 0.05f);
  ASSERT_EQ(out.channels, 4);
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(out.at(i, 0)[3], 0);
    EXPECT_EQ(out.at(i, 63)[3], 0);
    EXPECT_EQ(out.at(0, i)[3], 0);
    EXPECT_EQ(out.at(63, i)[3], 0);
  }
  EXPECT_EQ(out.at(32, 32)[3], 255);
  EXPECT_EQ(out.at(32, 32)[0], 220);
}

TEST(BackgroundTest, FloodFillDoesNotReachAnEnclosedHoleOfBackgroundColour) {
  RasterImage ring = Disc(64, 24);
  // Green hole inside the red disc: not connected to the border, so it stays.
  for (int y = 28; y < 36; ++y)
    for (int x = 28; x < 36; ++x) ring.at(x, y)[0] = 20, ring.at(x, y)[1] = 200, ring.at(x, y)[2] = 40;
  const RasterImage out = RemoveBackgroundFlood(ring, 0.05f);
  EXPECT_EQ(out.at(32, 32)[3], 255);
  // A chroma key removes it.
  const RasterImage keyed = RemoveBackgroundChroma(ring, {20, 200, 40}, 0.05f);
  EXPECT_EQ(keyed.at(32, 32)[3], 0);
}

TEST(BackgroundTest, CropKeepsContentWithPadding) {
  const RasterImage out = CropToContent(RemoveBackgroundFlood(Disc(64, 10), 0.05f), 2);
  EXPECT_EQ(out.width, 20 + 4);
  EXPECT_EQ(out.height, 20 + 4);
  EXPECT_EQ(out.at(0, 0)[3], 0);
  EXPECT_EQ(out.at(12, 12)[3], 255);
}

TEST(BackgroundTest, ParsesColours) {
  EXPECT_EQ(*ParseColor("#00ff00"), (Rgb{0, 255, 0}));
  EXPECT_EQ(*ParseColor("FF0000"), (Rgb{255, 0, 0}));
  EXPECT_FALSE(ParseColor("green").ok());
}

}  // namespace
}  // namespace spriteforge::postprocess
