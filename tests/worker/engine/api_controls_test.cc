// ControlNets through the public engine API: the reference's ControlNet cases on the golden
// tiny model, alone and with an IP-Adapter (float32 on the CPU, within 1e-3 and one 8-bit
// level), and requests whose controls cannot work refused with one line before any work.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "spriteforge/engine/engine.h"
#include "tests/worker/engine/golden.h"
#include "tests/worker/engine/golden_engine.h"
#include "worker/engine/tools/golden_cases.h"

namespace spriteforge::engine {
namespace {

BatchRequest ControlCase(const std::string& name) {
  auto cases = LoadControlCases(testing::ControlsDir());
  EXPECT_TRUE(cases.ok()) << cases.status();
  return cases.ok() ? cases->at(name) : BatchRequest{};
}

TEST(ControlNet, TheControlNetCaseMatchesTheReference) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  auto result = testing::TinyEngine().Generate(ControlCase("controlnet.euler"));
  ASSERT_TRUE(result.ok()) << result.status();
  testing::ExpectReferenceImages(testing::ControlVectors(), testing::ControlsDir(), "controlnet.euler", *result, 1e-3);
}

// A ControlNet for the first 75% of the steps (euler_a) with an IP-Adapter Plus, two seeds.
TEST(ControlNet, WithAnIpAdapterMatchesTheReference) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  auto result = testing::TinyEngine().Generate(ControlCase("pose_and_identity.euler_a"));
  ASSERT_TRUE(result.ok()) << result.status();
  testing::ExpectReferenceImages(testing::ControlVectors(), testing::ControlsDir(), "pose_and_identity.euler_a", *result, 1e-3);
}

// The golden ControlNet on a small, fast request: 64x64, no guidance (one UNet half).
BatchRequest SmallControlled(std::vector<std::pair<double, std::pair<double, double>>> controls) {
  BatchRequest r;
  r.width = r.height = 64;
  r.steps = 2;
  r.cfg = 1.0;
  r.images = {{"a knight", std::nullopt, 3}};
  RgbImage pose{64, 64, std::vector<uint8_t>(64 * 64 * 3)};
  for (size_t k = 0; k < pose.rgb.size(); k += 7) pose.rgb[k] = 255;
  for (const auto& [scale, window] : controls) {
    r.controlnets.push_back({testing::ControlsDir() + "/controlnet", scale, window.first, window.second});
    r.images[0].control_images.push_back(pose);
  }
  return r;
}

Image GenerateOne(const BatchRequest& r) {
  auto result = testing::TinyEngine().Generate(r);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? result->images.at(0) : Image{};
}

TEST(ControlNet, SeveralControlNetsSumTheirResiduals) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const Image one = GenerateOne(SmallControlled({{0.8, {0.0, 1.0}}}));
  const Image two = GenerateOne(SmallControlled({{0.5, {0.0, 1.0}}, {0.3, {0.0, 1.0}}}));
  EXPECT_LT(testing::MaxDifference(one, two), 1e-4);
  EXPECT_GT(testing::MaxDifference(one, GenerateOne(SmallControlled({}))), 1e-3);
}

// The first step's denoised latents (Euler: the latents minus sigma times the prediction).
std::vector<float> FirstDenoised(BatchRequest r) {
  r.preview_every = 1;
  std::vector<float> first;
  auto result = testing::TinyEngine().Generate(r, nullptr, [&](const StepLatents& l) {
    if (first.empty()) first = l.values;
  });
  EXPECT_TRUE(result.ok()) << result.status();
  return first;
}

// Guess mode with CFG: the negative half gets nothing from the ControlNet, so the first
// step is (1 - g) x the negative prompt alone without it + g x the prompt with the ControlNet
// in guess mode at CFG 1 (the prediction, and so the denoised latents, are linear in both).
// Balanced mode, whose negative half has the ControlNet too, does not fit that sum.
TEST(ControlNet, GuessModeLeavesTheNegativeHalfWithoutTheControlNet) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const double g = 4.0;
  BatchRequest guided = SmallControlled({{0.8, {0.0, 1.0}}});
  guided.cfg = g;
  guided.images[0].negative = "blurry";
  guided.controlnets[0].guess_mode = true;
  BatchRequest prompt_half = SmallControlled({{0.8, {0.0, 1.0}}});
  prompt_half.controlnets[0].guess_mode = true;
  BatchRequest negative_half = SmallControlled({});
  negative_half.images[0].prompt = "blurry";

  const std::vector<float> c = FirstDenoised(prompt_half), u = FirstDenoised(negative_half);
  auto distance = [&](const std::vector<float>& got) {
    EXPECT_EQ(got.size(), c.size());
    double worst = 0;
    for (size_t k = 0; k < std::min(got.size(), c.size()); ++k) {
      worst = std::max(worst, std::abs(got[k] - ((1 - g) * u[k] + g * c[k])));
    }
    return worst;
  };
  EXPECT_LT(distance(FirstDenoised(guided)), 1e-4);
  BatchRequest balanced = guided;
  balanced.controlnets[0].guess_mode = false;
  EXPECT_GT(distance(FirstDenoised(balanced)), 1e-3);
  // At CFG 1 guess mode still weights the residuals: not the balanced image.
  BatchRequest plain_half = SmallControlled({{0.8, {0.0, 1.0}}});
  EXPECT_GT(testing::MaxDifference(GenerateOne(prompt_half), GenerateOne(plain_half)), 1e-3);
}

TEST(ControlNet, Img2ImgCountsTheStepsThatRunForTheWindow) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  // strength 0.5 of 2 steps runs one step, step 0 of 1: a window from 0.5 never opens.
  auto img2img = [](BatchRequest r) {
    r.strength = 0.5;
    r.images[0].init_image = RgbImage{64, 64, std::vector<uint8_t>(64 * 64 * 3, 128)};
    return GenerateOne(r);
  };
  const Image plain = img2img(SmallControlled({}));
  EXPECT_EQ(testing::MaxDifference(plain, img2img(SmallControlled({{0.8, {0.5, 1.0}}}))), 0.0);
  EXPECT_GT(testing::MaxDifference(plain, img2img(SmallControlled({{0.8, {0.0, 1.0}}}))), 1e-3);
}

// A ControlNet on 128x128 and one image with its control image, valid as it stands.
BatchRequest OneControl() {
  BatchRequest r;
  r.width = r.height = 128;
  r.steps = 4;
  r.controlnets = {{"/models/pose", 0.8, 0.0, 1.0}};
  r.images = {{"a knight", std::nullopt, 1}};
  r.images[0].control_images = {RgbImage{128, 128, std::vector<uint8_t>(128 * 128 * 3)}};
  return r;
}

std::string Refusal(const BatchRequest& r) {
  absl::Status status = ValidateRequest(r);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(std::string(status.message()).find('\n'), std::string::npos);
  return std::string(status.message());
}

TEST(ControlNet, RequestsWhoseControlsCannotWorkAreRefused) {
  ASSERT_TRUE(ValidateRequest(OneControl()).ok());

  BatchRequest missing = OneControl();
  missing.images[0].control_images.clear();
  EXPECT_EQ(Refusal(missing), "image 0 has 0 control images for 1 ControlNets (one each)");

  BatchRequest unused = OneControl();
  unused.controlnets.clear();
  EXPECT_EQ(Refusal(unused), "image 0 has 1 control images for 0 ControlNets (one each)");

  BatchRequest small = OneControl();
  small.images[0].control_images[0] = RgbImage{64, 64, std::vector<uint8_t>(64 * 64 * 3)};
  EXPECT_EQ(Refusal(small), "image 0: control image 0 is 64x64, the batch is 128x128 (sizes must match)");

  BatchRequest short_pixels = OneControl();
  short_pixels.images[0].control_images[0].rgb.resize(10);
  EXPECT_NE(Refusal(short_pixels).find("has 10 bytes"), std::string::npos);

  BatchRequest nan = OneControl();
  nan.controlnets[0].scale = std::nan("");
  EXPECT_NE(Refusal(nan).find("scale must be a finite number"), std::string::npos);

  for (auto [start, end] : {std::pair{0.5, 0.5}, {0.8, 0.2}, {-0.1, 1.0}, {0.0, 1.5}}) {
    BatchRequest window = OneControl();
    window.controlnets[0].start = start;
    window.controlnets[0].end = end;
    EXPECT_NE(Refusal(window).find("must satisfy 0 <= start < end <= 1"), std::string::npos) << start << " " << end;
  }

  BatchRequest unnamed = OneControl();
  unnamed.controlnets[0].model_path.clear();
  EXPECT_EQ(Refusal(unnamed), "ControlNet 0 has an empty model path");
}

TEST(ControlNet, AFileThatIsNotAControlNetFailsTheBatchNamingTheTensor) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  BatchRequest r = OneControl();
  // A whole SDXL checkpoint is not a ControlNet, though a config.json may sit beside it.
  r.controlnets[0].model_path = testing::GoldenDir() + "/diffusers/unet";
  auto result = testing::TinyEngine().Generate(r);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_NE(result.status().message().find("field '_class_name' is 'UNet2DConditionModel', not a ControlNet"), std::string::npos)
      << result.status();
}

}  // namespace
}  // namespace spriteforge::engine
