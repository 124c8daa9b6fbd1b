// The opt-in speed-ups that change pixels (BatchRequest's guidance interval and deep cache)
// on the golden tiny model in float32 on the CPU: what each step computes, and what each
// costs against the exact path (printed; docs/performance.md quotes these lines).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "spriteforge/engine/engine.h"
#include "tests/worker/engine/golden.h"
#include "tests/worker/engine/golden_engine.h"
#include "worker/engine/tools/golden_cases.h"

namespace spriteforge::engine {
namespace {

// e2e.euler_cfg: two images, 4 steps, CFG 5.
BatchRequest GuidedCase() {
  auto cases = LoadGoldenCases(testing::GoldenDir());
  EXPECT_TRUE(cases.ok()) << cases.status();
  return cases.ok() ? (*cases)["e2e.euler_cfg"] : BatchRequest{};
}

BatchResult Generated(const BatchRequest& request) {
  auto result = testing::TinyEngine().Generate(request);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : BatchResult{};
}

// Largest and mean difference in 8-bit levels over all images.
void PrintCost(const char* what, const BatchResult& exact, const BatchResult& fast) {
  int largest = 0;
  double sum = 0;
  size_t count = 0;
  for (size_t i = 0; i < exact.images.size() && i < fast.images.size(); ++i) {
    for (size_t k = 0; k < exact.images[i].rgb.size(); ++k) {
      const int d = std::abs(exact.images[i].rgb[k] - fast.images[i].rgb[k]);
      largest = std::max(largest, d);
      sum += d;
      ++count;
    }
  }
  std::printf("%s against the exact path: max %d, mean %.2f (8-bit levels)\n", what, largest, count ? sum / count : 0.0);
}

TEST(SpeedUps, StepsOutsideTheGuidanceIntervalRunTheUnguidedPath) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  BatchRequest none_guided = GuidedCase();
  // Of 4 steps, none lies inside [0.8, 0.9]: every step runs on the prompts alone.
  none_guided.guidance_start = 0.8;
  none_guided.guidance_end = 0.9;
  BatchRequest unguided = GuidedCase();
  unguided.cfg = 1.0;
  const BatchResult a = Generated(none_guided), b = Generated(unguided);
  ASSERT_EQ(a.images.size(), 2u);
  ASSERT_EQ(b.images.size(), 2u);
  for (size_t i = 0; i < a.images.size(); ++i) EXPECT_LT(testing::MaxDifference(a.images[i], b.images[i]), 1e-5) << i;
}

TEST(SpeedUps, AGuidanceIntervalGuidesOnlyItsSteps) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const BatchRequest exact_request = GuidedCase();
  BatchRequest first_half = exact_request;  // steps 0 and 1 guided, 2 and 3 not
  first_half.guidance_end = 0.5;
  BatchRequest unguided = exact_request;
  unguided.cfg = 1.0;
  const BatchResult exact = Generated(exact_request), half = Generated(first_half), none = Generated(unguided);
  ASSERT_EQ(half.images.size(), 2u);
  for (size_t i = 0; i < half.images.size(); ++i) {
    EXPECT_GT(testing::MaxDifference(half.images[i], exact.images[i]), 1e-3) << i;
    EXPECT_GT(testing::MaxDifference(half.images[i], none.images[i]), 1e-3) << i;
  }
  PrintCost("guidance interval 0-0.5, 4 steps", exact, half);
}

TEST(SpeedUps, DeepCacheReusesTheDeepFeaturesBetweenFullPasses) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const BatchRequest exact_request = GuidedCase();
  BatchRequest cached = exact_request;
  cached.deep_cache = 2;  // steps 0 and 2 full, 1 and 3 shallow
  BatchRequest every_step = exact_request;
  every_step.deep_cache = 5;  // only step 0 full
  const BatchResult exact = Generated(exact_request), two = Generated(cached), once = Generated(every_step);
  ASSERT_EQ(two.images.size(), 2u);
  for (size_t i = 0; i < two.images.size(); ++i) {
    EXPECT_GT(testing::MaxDifference(two.images[i], exact.images[i]), 1e-4) << i;
    EXPECT_GT(testing::MaxDifference(once.images[i], two.images[i]), 1e-4) << i;
  }
  PrintCost("deep cache 2, 4 steps", exact, two);
}

TEST(SpeedUps, BadSettingsAreRefusedWithOneLine) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  BatchRequest r = GuidedCase();
  r.guidance_start = 0.6;
  r.guidance_end = 0.4;
  auto inverted = testing::TinyEngine().Generate(r);
  ASSERT_FALSE(inverted.ok());
  EXPECT_EQ(inverted.status().message(), "guidance interval must be 0 <= start < end <= 1, got 0.6..0.4");
  r = GuidedCase();
  r.deep_cache = 11;
  EXPECT_FALSE(testing::TinyEngine().Generate(r).ok());
  r.deep_cache = 2;
  r.controlnets.push_back({"/nonexistent/controlnet", 1.0, 0.0, 1.0});
  auto with_control = testing::TinyEngine().Generate(r);
  ASSERT_FALSE(with_control.ok());
  EXPECT_NE(with_control.status().message().find("deep_cache cannot be combined with ControlNets"), std::string::npos)
      << with_control.status();
}

}  // namespace
}  // namespace spriteforge::engine
