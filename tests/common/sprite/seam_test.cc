#include "common/sprite/seam.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/common/sprite/fixtures.h"

namespace spriteforge::postprocess {
namespace {

TEST(SeamTest, PeriodicImagesScoreLowAndRampsHigh) {
  RasterImage periodic = testing::Solid(64, 64, 0, 0, 0);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      uint8_t* p = periodic.at(x, y);
      p[0] = uint8_t(127 + 120 * std::sin(2 * M_PI * x / 64));
      p[1] = uint8_t(127 + 120 * std::cos(2 * M_PI * y / 64));
    }
  EXPECT_LT(SeamDiscontinuity(periodic), 1.5);
  EXPECT_GT(SeamDiscontinuity(testing::Gradient(64, 64)), 10);
  EXPECT_EQ(SeamDiscontinuity(testing::Solid(8, 8, 5, 5, 5)), 0);
}

}  // namespace
}  // namespace spriteforge::postprocess
