#include "spriteforge/common/generation_info.h"

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

TEST(GenerationInfo, JsonKeepsMissingNegativeDistinctFromEmpty) {
  GenerationInfo info;
  info.prompt = "x";
  EXPECT_TRUE(ToJson(info)["negative"].is_null());
  info.negative = "";
  EXPECT_EQ(ToJson(info)["negative"], "");
}

}  // namespace
}  // namespace spriteforge
