// Previews through the public engine API on the golden tiny model: the preview callback
// gets the batch's latents (1/8 of the image size) on every preview step and only then,
// previews leave the final images bit for bit unchanged, and what a preview costs per step
// is measured (latents to the host, latent-to-RGB and a PNG per image, as the worker does).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "common/png.h"
#include "spriteforge/engine/engine.h"
#include "spriteforge/engine/latent_preview.h"
#include "tests/worker/engine/golden.h"
#include "tests/worker/engine/golden_engine.h"

namespace spriteforge::engine {
namespace {

using testing::TinyEngine;

BatchRequest TwoImages(int steps) {
  BatchRequest r;
  r.width = 128;
  r.height = 64;
  r.steps = steps;
  r.cfg = 5.0;
  r.images = {{"a red potion bottle", std::string("blurry"), 100}, {"a knight with a sword", std::nullopt, 7}};
  return r;
}

// What the worker does with a preview step: each image to RGB, then to a PNG.
size_t EncodePreviews(const StepLatents& latents) {
  size_t bytes = 0;
  for (int i = 0; i < latents.images; ++i) {
    auto rgb = LatentsToRgb(latents, i);
    EXPECT_TRUE(rgb.ok()) << rgb.status();
    if (!rgb.ok()) continue;
    auto png = EncodePng(RasterImage{rgb->width, rgb->height, 3, rgb->rgb});
    EXPECT_TRUE(png.ok()) << png.status();
    if (png.ok()) bytes += png->size();
  }
  return bytes;
}

TEST(Previews, ComeOnEveryKthStepAtAnEighthOfTheSizeAndChangeNothing) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  Engine& engine = TinyEngine();
  BatchRequest plain = TwoImages(6);
  auto without = engine.Generate(plain);
  ASSERT_TRUE(without.ok()) << without.status();

  BatchRequest previewed = plain;
  previewed.preview_every = 2;
  std::vector<int> steps;
  auto with = engine.Generate(previewed, nullptr, [&](const StepLatents& latents) {
    steps.push_back(latents.step);
    EXPECT_EQ(latents.total_steps, 6);
    EXPECT_EQ(latents.images, 2);
    EXPECT_EQ(latents.channels, 4);
    EXPECT_EQ(latents.width, 128 / 8);
    EXPECT_EQ(latents.height, 64 / 8);
    EXPECT_EQ(latents.values.size(), size_t{2 * 4 * 8 * 16});
    EXPECT_GT(EncodePreviews(latents), 0u);
  });
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_EQ(steps, (std::vector<int>{2, 4, 6}));
  ASSERT_EQ(with->images.size(), without->images.size());
  for (size_t i = 0; i < with->images.size(); ++i) EXPECT_EQ(with->images[i].rgb, without->images[i].rgb) << i;

  // A callback without preview_every is never called; a negative one is refused.
  bool called = false;
  ASSERT_TRUE(engine.Generate(TwoImages(2), nullptr, [&](const StepLatents&) { called = true; }).ok());
  EXPECT_FALSE(called);
  BatchRequest bad = TwoImages(2);
  bad.preview_every = -1;
  EXPECT_EQ(engine.Generate(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// Time per sampling step with a preview on every step against none, interleaved runs of
// one process, best of each (the machine is shared). Reported, not asserted: timings of a
// loaded machine vary too much for a limit.
TEST(Previews, CostPerStepIsMeasured) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  Engine& engine = TinyEngine();
  constexpr int kSteps = 10, kRounds = 3;
  double best_plain = 1e30, best_preview = 1e30, preview_work_ms = 0;
  int preview_calls = 0;
  for (int round = 0; round < kRounds; ++round) {
    BatchRequest plain = TwoImages(kSteps);
    auto a = engine.Generate(plain);
    ASSERT_TRUE(a.ok()) << a.status();
    best_plain = std::min(best_plain, a->timings.denoise_ms / kSteps);
    BatchRequest previewed = plain;
    previewed.preview_every = 1;
    auto b = engine.Generate(previewed, nullptr, [&](const StepLatents& latents) {
      const auto start = std::chrono::steady_clock::now();
      EncodePreviews(latents);
      preview_work_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      ++preview_calls;
    });
    ASSERT_TRUE(b.ok()) << b.status();
    best_preview = std::min(best_preview, b->timings.denoise_ms / kSteps);
  }
  EXPECT_EQ(preview_calls, kSteps * kRounds);
  const double ratio = best_preview / best_plain;
  std::printf("preview cost (2 images 128x64, %d steps, CPU): %.2f ms/step without, %.2f ms/step with a preview "
              "every step, ratio %.3f; RGB+PNG work %.3f ms per preview step\n",
              kSteps, best_plain, best_preview, ratio, preview_work_ms / preview_calls);
  RecordProperty("ms_per_step_plain", std::to_string(best_plain));
  RecordProperty("ms_per_step_preview", std::to_string(best_preview));
  RecordProperty("ratio", std::to_string(ratio));
}

}  // namespace
}  // namespace spriteforge::engine
