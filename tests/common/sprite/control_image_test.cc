#include <gtest/gtest.h>

#include "common/sprite/control/canny.h"
#include "common/sprite/control/resize.h"
#include "tests/common/sprite/fixtures.h"

namespace spriteforge::control {
namespace {

using postprocess::testing::Solid;

bool IsEdge(const RasterImage& edges, int x, int y) { return edges.at(x, y)[0] == 255; }

// A white square covering [4, 12) x [4, 12) on a 16x16 black image.
RasterImage WhiteSquare() {
  RasterImage image = Solid(16, 16, 0, 0, 0);
  for (int y = 4; y < 12; ++y)
    for (int x = 4; x < 12; ++x) image.at(x, y)[0] = image.at(x, y)[1] = image.at(x, y)[2] = 255;
  return image;
}

TEST(CannyTest, AFilledSquareGivesAOnePixelOutline) {
  // As OpenCV draws it (ties go to the pixel before): just outside the square's left and top
  // sides, just inside its right and bottom sides, the top-left corner cut diagonally.
  const char* expected[16] = {
      "................", "................", "................", ".....######.....",
      "....#......#....", "...#.......#....", "...#.......#....", "...#.......#....",
      "...#.......#....", "...#.......#....", "...#.......#....", "....########....",
      "................", "................", "................", "................"};
  auto edges = CannyEdges(WhiteSquare(), 100, 200);
  ASSERT_TRUE(edges.ok()) << edges.status();
  ASSERT_EQ(edges->channels, 3);
  for (int y = 0; y < 16; ++y) {
    for (int x = 0; x < 16; ++x) {
      const uint8_t* p = edges->at(x, y);
      EXPECT_EQ(p[0], expected[y][x] == '#' ? 255 : 0) << x << "," << y;
      EXPECT_TRUE(p[1] == p[0] && p[2] == p[0]) << "white on black";
    }
  }
}

TEST(CannyTest, AHighThresholdAboveEveryGradientLeavesTheImageBlack) {
  // The strongest 3x3 Sobel response of an 8-bit step is 4 * 255 = 1020 per axis.
  auto edges = CannyEdges(WhiteSquare(), 100, 2040);
  ASSERT_TRUE(edges.ok());
  for (uint8_t v : edges->pixels) ASSERT_EQ(v, 0);
}

TEST(CannyTest, AWeakEdgeIsKeptOnlyWhereItTouchesAStrongOne) {
  // A step of 255 on the left half of the rows and of 40 (gradient 160) on the right half:
  // with low 100 and high 500 the weak part is kept as it continues the strong part.
  RasterImage image = Solid(16, 16, 0, 0, 0);
  for (int y = 8; y < 16; ++y)
    for (int x = 0; x < 16; ++x) image.at(x, y)[1] = x < 8 ? 255 : 40;
  auto joined = CannyEdges(image, 100, 500);
  ASSERT_TRUE(joined.ok());
  EXPECT_TRUE(IsEdge(*joined, 2, 7));
  EXPECT_TRUE(IsEdge(*joined, 13, 7));
  // Alone (the strong half dark too), the weak step starts no edge.
  for (int y = 8; y < 16; ++y)
    for (int x = 0; x < 8; ++x) image.at(x, y)[1] = 40;
  auto alone = CannyEdges(image, 100, 500);
  ASSERT_TRUE(alone.ok());
  for (uint8_t v : alone->pixels) ASSERT_EQ(v, 0);
}

TEST(CannyTest, ThresholdsOutOfOrderAreRefused) {
  auto edges = CannyEdges(WhiteSquare(), 200, 100);
  ASSERT_FALSE(edges.ok());
  EXPECT_NE(edges.status().message().find("low <= high"), std::string::npos) << edges.status();
  EXPECT_FALSE(CannyEdges(WhiteSquare(), -1, 100).ok());
  EXPECT_FALSE(CannyEdges(RasterImage{}, 100, 200).ok());
}

TEST(ResizeControlImageTest, TheSameSizeIsKeptAsItIs) {
  const RasterImage image = WhiteSquare();
  auto out = ResizeControlImage(image, 16, 16);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->pixels, image.pixels);
}

TEST(ResizeControlImageTest, TheSameAspectRatioIsResizedKeepingThinLines) {
  // A one-pixel white line on 8x4, doubled and halved.
  RasterImage image = Solid(8, 4, 0, 0, 0);
  for (int y = 0; y < 4; ++y) image.at(3, y)[0] = image.at(3, y)[1] = image.at(3, y)[2] = 255;
  auto larger = ResizeControlImage(image, 16, 8);
  ASSERT_TRUE(larger.ok()) << larger.status();
  EXPECT_EQ(larger->width, 16);
  EXPECT_EQ(larger->height, 8);
  EXPECT_GT(larger->at(7, 4)[0], 128);
  EXPECT_EQ(larger->at(0, 4)[0], 0);
  auto smaller = ResizeControlImage(image, 4, 2);
  ASSERT_TRUE(smaller.ok()) << smaller.status();
  EXPECT_EQ(smaller->at(1, 1)[0], 128) << "the line survives, at half strength";
  EXPECT_EQ(smaller->at(0, 1)[0], 0);
  // Whole-pixel rounding of a 16:9 control image is not a change of shape.
  EXPECT_TRUE(ResizeControlImage(Solid(100, 56, 1, 2, 3), 192, 108).ok());
}

TEST(ResizeControlImageTest, AnotherAspectRatioIsRefusedNamingBothSizes) {
  auto out = ResizeControlImage(Solid(512, 512, 0, 0, 0), 1024, 768);
  ASSERT_FALSE(out.ok());
  const std::string message(out.status().message());
  EXPECT_NE(message.find("512x512"), std::string::npos) << message;
  EXPECT_NE(message.find("1024x768"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(ResizeControlImageTest, TransparencyBecomesBlack) {
  RasterImage image{2, 1, 4, {255, 255, 255, 0, 200, 100, 50, 255}};
  auto out = ResizeControlImage(image, 2, 1);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->channels, 3);
  EXPECT_EQ(out->pixels, (std::vector<uint8_t>{0, 0, 0, 200, 100, 50}));
}

}  // namespace
}  // namespace spriteforge::control
