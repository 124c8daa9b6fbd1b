#include "common/generation_info.h"

#include <gtest/gtest.h>

namespace spriteforge {
namespace {

v1::SamplingParams Sampling(int width, int height, int steps, double cfg, v1::Sampler sampler, v1::Schedule schedule) {
  v1::SamplingParams s;
  s.set_width(width);
  s.set_height(height);
  s.set_steps(steps);
  s.set_cfg(cfg);
  s.set_sampler(sampler);
  s.set_schedule(schedule);
  return s;
}

v1::ImageParams Image(const std::string& prompt, uint64_t seed) {
  v1::ImageParams image;
  image.set_prompt(prompt);
  image.set_seed(seed);
  return image;
}

TEST(GenerationInfo, FormatsA1111ParametersChunk) {
  v1::ImageParams image = Image("red potion\nicon", 42);
  image.set_negative("blurry");
  EXPECT_EQ(FormatParametersText("tiny-sdxl", image,
                                 Sampling(128, 192, 4, 5.5, v1::SAMPLER_EULER_ANCESTRAL, v1::SCHEDULE_KARRAS)),
            "red potion icon\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, "
            "Schedule type: Karras, CFG scale: 5.5, Seed: 42, Size: 128x192, Model: tiny-sdxl");
}

TEST(GenerationInfo, CarriesLorasAndDenoisingStrengthAsA1111WritesThem) {
  v1::SamplingParams s = Sampling(128, 128, 10, 5, v1::SAMPLER_EULER, v1::SCHEDULE_NORMAL);
  v1::LoraRef* pixel = s.add_loras();
  pixel->set_name("pixel-art-xl");
  pixel->set_strength(0.75);
  v1::LoraRef* lightning = s.add_loras();
  lightning->set_name("lightning");
  lightning->set_strength(1);
  s.set_strength(0.6);
  v1::ImageParams image = Image("knight", 7);
  image.set_init_image_sha256("bb");
  EXPECT_EQ(FormatParametersText("tiny-sdxl", image, s),
            "knight <lora:pixel-art-xl:0.75> <lora:lightning:1>\nSteps: 10, Sampler: Euler, "
            "Schedule type: Automatic, CFG scale: 5, Seed: 7, Size: 128x128, Model: tiny-sdxl, "
            "Denoising strength: 0.6");
  nlohmann::json j = ToJson("tiny-sdxl", image, s);
  EXPECT_EQ(j["loras"][0]["name"], "pixel-art-xl");
  EXPECT_EQ(j["loras"][1]["strength"], 1.0);
  EXPECT_EQ(j["denoising_strength"], 0.6);
  EXPECT_EQ(j["init_image_sha256"], "bb");
  EXPECT_EQ(j["sampler"], "euler");
  EXPECT_EQ(j["schedule"], "normal");
  EXPECT_FALSE(j.contains("tcd_gamma"));
  EXPECT_FALSE(ToJson("m", v1::ImageParams(), v1::SamplingParams()).contains("loras"));
}

TEST(GenerationInfo, JsonKeepsMissingNegativeDistinctFromEmpty) {
  v1::ImageParams image = Image("x", 1);
  EXPECT_TRUE(ToJson("m", image, v1::SamplingParams())["negative"].is_null());
  image.set_negative("");
  EXPECT_EQ(ToJson("m", image, v1::SamplingParams())["negative"], "");
}

}  // namespace
}  // namespace spriteforge
