// Seamless tiles end to end: the engine's tileable option (circular padding in the UNet and
// VAE) measured with the post-processing seam score on the golden tiny model.
#include <gtest/gtest.h>

#include "common/sprite/seam.h"
#include "spriteforge/engine/engine.h"
#include "tests/worker/engine/golden.h"
#include "tests/worker/engine/golden_engine.h"

namespace spriteforge::engine {
namespace {

TEST(TileableSeamTest, TileableImagesWrapWithoutASeam) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  Engine& engine = testing::TinyEngine();
  double plain = 0, tiled = 0;
  for (bool tileable : {false, true}) {
    BatchRequest request;
    request.width = request.height = 128;
    request.steps = 8;
    request.tileable = tileable;
    for (uint64_t seed : {11, 12, 13}) request.images.push_back({"stone floor tile", std::nullopt, seed});
    auto result = engine.Generate(request);
    ASSERT_TRUE(result.ok()) << result.status();
    for (const Image& im : result->images) {
      const double score = postprocess::SeamDiscontinuity(RasterImage{im.width, im.height, 3, im.rgb});
      (tileable ? tiled : plain) += score / 3;
    }
  }
  std::printf("seam score: plain %.3f, tileable %.3f\n", plain, tiled);
  EXPECT_LT(tiled, plain);
  EXPECT_LT(tiled, 1.3);
}

}  // namespace
}  // namespace spriteforge::engine
