#include "common/generation_info.h"

#include <gtest/gtest.h>

namespace spriteforge {
namespace {

TEST(GenerationInfo, FormatsA1111ParametersChunk) {
  GenerationInfo info{"red potion\nicon", std::string("blurry"), 42, 128, 192, 4, 5.5,
                      "euler_ancestral", "karras", "tiny-sdxl", false};
  EXPECT_EQ(FormatParametersText(info),
            "red potion icon\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, "
            "Schedule type: Karras, CFG scale: 5.5, Seed: 42, Size: 128x192, Model: tiny-sdxl");
}

TEST(GenerationInfo, CarriesLorasAndDenoisingStrengthAsA1111WritesThem) {
  GenerationInfo info{"knight", std::nullopt, 7, 128, 128, 10, 5, "euler", "normal", "tiny-sdxl", false};
  info.loras = {{"pixel-art-xl", 0.75}, {"lightning", 1}};
  info.denoising_strength = 0.6;
  info.notes = {"prompt cut"};
  EXPECT_EQ(FormatParametersText(info),
            "knight <lora:pixel-art-xl:0.75> <lora:lightning:1>\nSteps: 10, Sampler: Euler, "
            "Schedule type: Automatic, CFG scale: 5, Seed: 7, Size: 128x128, Model: tiny-sdxl, "
            "Denoising strength: 0.6");
  nlohmann::json j = ToJson(info);
  EXPECT_EQ(j["loras"][0]["name"], "pixel-art-xl");
  EXPECT_EQ(j["loras"][1]["strength"], 1.0);
  EXPECT_EQ(j["denoising_strength"], 0.6);
  EXPECT_EQ(j["notes"][0], "prompt cut");
  EXPECT_FALSE(ToJson(GenerationInfo{}).contains("loras"));
}

TEST(GenerationInfo, JsonKeepsMissingNegativeDistinctFromEmpty) {
  GenerationInfo info;
  info.prompt = "x";
  EXPECT_TRUE(ToJson(info)["negative"].is_null());
  info.negative = "";
  EXPECT_EQ(ToJson(info)["negative"], "");
}

}  // namespace
}  // namespace spriteforge
