#include "common/sprite/pixelate.h"

#include <gtest/gtest.h>

#include "tests/common/sprite/fixtures.h"

namespace spriteforge::postprocess {
namespace {

using testing::Disc;
using testing::Solid;

TEST(PixelateTest, OutputHasTheGridSizeForBothMethods) {
  const RasterImage render = Disc(1024, 300);
  for (PixelateMethod m : {PixelateMethod::kArea, PixelateMethod::kMajority}) {
    auto out = Pixelate(render, 64, 48, m);
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->width, 64);
    EXPECT_EQ(out->height, 48);
    EXPECT_EQ(out->pixels.size(), 64u * 48 * 3);
  }
}

TEST(PixelateTest, MajorityKeepsOnlyTheSourceColoursAtEdges) {
  // A 2-colour checkerboard of 3x3 blocks reduced 3x: each cell is one block, exact colours.
  RasterImage board = Solid(12, 12, 0, 0, 0);
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 12; ++x)
      if (((x / 3) + (y / 3)) % 2) board.at(x, y)[0] = board.at(x, y)[1] = board.at(x, y)[2] = 255;
  auto out = Pixelate(board, 4, 4, PixelateMethod::kMajority);
  ASSERT_TRUE(out.ok());
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) EXPECT_EQ(out->at(x, y)[0], (x + y) % 2 ? 255 : 0) << x << "," << y;
  // A disc's edge cells: majority gives red or green only, area invents mixtures.
  const RasterImage disc = Disc(256, 100);
  auto majority = Pixelate(disc, 16, 16, PixelateMethod::kMajority);
  auto area = Pixelate(disc, 16, 16, PixelateMethod::kArea);
  int mixed_majority = 0, mixed_area = 0;
  for (size_t i = 0; i < 256; ++i) {
    mixed_majority += majority->pixels[i * 3] != 220 && majority->pixels[i * 3] != 20;
    mixed_area += area->pixels[i * 3] != 220 && area->pixels[i * 3] != 20;
  }
  EXPECT_EQ(mixed_majority, 0);
  EXPECT_GT(mixed_area, 0);
}

TEST(PixelateTest, AreaAveragesTheCell) {
  RasterImage im = Solid(2, 1, 0, 0, 0);
  im.at(1, 0)[0] = 200;
  auto out = Pixelate(im, 1, 1, PixelateMethod::kArea);
  EXPECT_EQ(out->at(0, 0)[0], 100);
}

TEST(PixelateTest, TransparentMajorityStaysTransparent) {
  RasterImage im{4, 4, 4, std::vector<uint8_t>(64, 0)};
  im.at(0, 0)[0] = 255, im.at(0, 0)[3] = 255;  // one opaque pixel of 16
  auto out = Pixelate(im, 1, 1, PixelateMethod::kMajority);
  EXPECT_EQ(out->at(0, 0)[3], 0);
}

TEST(PixelateTest, BadSizesAreRejected) {
  EXPECT_FALSE(Pixelate(Solid(8, 8, 0, 0, 0), 0, 8, PixelateMethod::kArea).ok());
  int w = 0, h = 0;
  EXPECT_TRUE(ParseSize("64x32", &w, &h).ok());
  EXPECT_EQ(w, 64);
  EXPECT_EQ(h, 32);
  EXPECT_TRUE(ParseSize("16", &w, &h).ok());
  EXPECT_EQ(h, 16);
  EXPECT_FALSE(ParseSize("64xfoo", &w, &h).ok());
  EXPECT_FALSE(ParseSize("0x0", &w, &h).ok());
}

}  // namespace
}  // namespace spriteforge::postprocess
