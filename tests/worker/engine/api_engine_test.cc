// End to end through the public engine API (the code path of spriteforge-generate): every
// golden text-to-image case, from both checkpoint layouts, in float32 on the CPU.
#include <gtest/gtest.h>

#include <map>

#include "spriteforge/engine/engine.h"
#include "tests/worker/engine/golden.h"
#include "tests/worker/engine/golden_engine.h"
#include "worker/engine/tools/golden_cases.h"

namespace spriteforge::engine {
namespace {

std::map<std::string, BatchRequest> GoldenRequests() {
  auto cases = LoadGoldenCases(testing::GoldenDir());
  EXPECT_TRUE(cases.ok()) << cases.status();
  return cases.ok() ? *cases : std::map<std::string, BatchRequest>{};
}

class EndToEnd : public ::testing::TestWithParam<std::string> {};

TEST_P(EndToEnd, EveryGoldenCaseMatchesReferenceImages) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  Engine& engine = testing::TinyEngine(GetParam());
  for (const auto& [name, request] : GoldenRequests()) {
    auto result = engine.Generate(request);
    ASSERT_TRUE(result.ok()) << name << ": " << result.status();
    testing::ExpectReferenceImages(testing::GoldenVectors(), testing::GoldenDir(), name, *result, 1e-4);
  }
}

TEST_P(EndToEnd, AnImageDependsOnItsSeedNotItsBatch) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  Engine& engine = testing::TinyEngine(GetParam());
  BatchRequest batch = GoldenRequests()["e2e.euler_a_neg"];
  batch.images = {{"treasure chest", std::string("blurry"), 11}, {"slime", std::nullopt, 12}, {"sword", std::string(""), 13}};
  auto together = engine.Generate(batch);
  ASSERT_TRUE(together.ok());
  for (size_t i = 0; i < batch.images.size(); ++i) {
    BatchRequest alone = batch;
    alone.images = {batch.images[i]};
    auto single = engine.Generate(alone);
    ASSERT_TRUE(single.ok());
    EXPECT_LT(testing::MaxDifference(single->images[0], together->images[i]), 1e-5) << "image " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(BothLayouts, EndToEnd, ::testing::Values("tiny-sdxl.safetensors", "diffusers"),
                         [](const auto& info) { return info.param == "diffusers" ? "DiffusersFolder" : "SingleFile"; });

TEST(Engine, ProgressReportsEveryStepAndCanCancel) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  Engine& engine = testing::TinyEngine("diffusers");
  BatchRequest r = GoldenRequests()["e2e.no_cfg"];
  std::vector<int> steps;
  ASSERT_TRUE(engine.Generate(r, [&](int step, int total) { steps.push_back(step); return total == 3; }).ok());
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3}));
  auto cancelled = engine.Generate(r, [](int step, int) { return step < 2; });
  EXPECT_EQ(ClassifyFailure(cancelled.status()), FailureKind::kCancelled);
}

TEST(Engine, RejectsBadRequestsWithOneClearLine) {
  BatchRequest r;
  r.images = {{"x", std::nullopt, 1}};
  r.width = 100;
  EXPECT_EQ(ValidateRequest(r).message(), "size 100x1024: width and height must be multiples of 8 in 64..4096");
  r.width = 64;
  EXPECT_EQ(ParseSampler("lms").status().message(),
            "unknown sampler 'lms' (expected euler, euler_ancestral, dpmpp_2m, lcm or tcd)");
  EXPECT_EQ(ParseSchedule("cosine").status().message(),
            "unknown schedule 'cosine' (expected normal, trailing, sgm_uniform or karras)");
  for (SamplerKind s : {SamplerKind::kEuler, SamplerKind::kEulerAncestral, SamplerKind::kDpmpp2m, SamplerKind::kLcm,
                        SamplerKind::kTcd}) {
    EXPECT_EQ(*ParseSampler(SamplerName(s)), s);
  }
  r.sampler = SamplerKind::kEuler;
  r.steps = 0;
  EXPECT_FALSE(ValidateRequest(r).ok());
  r.steps = 4;
  r.images.clear();
  EXPECT_FALSE(ValidateRequest(r).ok());
  LoadOptions o;
  o.model_path = "/nonexistent/sdxl.safetensors";
  auto missing = Engine::Load(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/sdxl.safetensors"), std::string::npos);
  EXPECT_EQ(ParseDtype("fp4").status().message(), "unknown dtype 'fp4' (expected fp32, fp16, bf16 or fp8)");
  // fp8 GEMMs need a recent GPU: on the CPU the load stops before reading any weights.
  o.dtype = Dtype::kFp8;
  auto fp8 = Engine::Load(o);
  EXPECT_EQ(fp8.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(fp8.status().message().rfind("dtype fp8: ", 0), 0u) << fp8.status().message();
  EXPECT_EQ(fp8.status().message().find('\n'), std::string::npos);
  o.dtype = Dtype::kFp32;
  o.vae_dtype = Dtype::kFp8;
  EXPECT_EQ(Engine::Load(o).status().message(), "vae dtype: fp32, fp16 or bf16 (fp8 is the UNet's)");
}

// Without float pixels (the worker's requests) the 8-bit images are the same bytes.
TEST(Engine, EightBitImagesAloneAreTheSameBytes) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  Engine& engine = testing::TinyEngine("diffusers");
  BatchRequest r = GoldenRequests()["e2e.euler_a_neg"];
  auto both = engine.Generate(r);
  r.float_pixels = false;
  auto bytes = engine.Generate(r);
  ASSERT_TRUE(both.ok() && bytes.ok()) << both.status() << bytes.status();
  ASSERT_EQ(both->images.size(), bytes->images.size());
  for (size_t i = 0; i < both->images.size(); ++i) {
    EXPECT_FALSE(both->images[i].rgb_f32.empty());
    EXPECT_TRUE(bytes->images[i].rgb_f32.empty());
    EXPECT_EQ(both->images[i].rgb, bytes->images[i].rgb) << "image " << i;
  }
}

// The VAE in its own precision: a float32 model with a bfloat16 VAE decodes the same latents
// within bfloat16's error of the float32 images, and not bit for bit.
TEST(Engine, TheVaeRunsInItsOwnDtype) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  LoadOptions o;
  o.model_path = testing::GoldenDir() + "/diffusers";
  o.vae_dtype = Dtype::kBf16;
  auto bf16_vae = Engine::Load(o);
  ASSERT_TRUE(bf16_vae.ok()) << bf16_vae.status();
  const BatchRequest r = GoldenRequests()["e2e.no_cfg"];
  auto mixed = (*bf16_vae)->Generate(r);
  auto plain = testing::TinyEngine("diffusers").Generate(r);
  ASSERT_TRUE(mixed.ok() && plain.ok()) << mixed.status() << plain.status();
  const double diff = testing::MaxDifference(mixed->images[0], plain->images[0]);
  EXPECT_GT(diff, 0.0);
  EXPECT_LT(diff, 5e-2);  // the bf16 bound of `run-checks.sh golden` (the README's bounds are float32's)
}

}  // namespace
}  // namespace spriteforge::engine
