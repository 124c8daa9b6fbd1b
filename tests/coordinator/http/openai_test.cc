// OpenAI image generation requests as spriteforge's typed jobs.
#include "coordinator/transport/http/openai.h"

#include <gtest/gtest.h>

#include "common/sampling.h"

namespace spriteforge::coordinator::http {
namespace {

absl::StatusOr<ImageGeneration> Parse(const char* json) {
  return ParseImageGeneration(nlohmann::json::parse(json), ManifestLimits{}, 64, [] { return uint64_t{99}; });
}

TEST(OpenAi, SizeAndCountBecomeTheManifest) {
  auto r = Parse(R"({"prompt": "a slime", "n": 3, "size": "128x64", "response_format": "b64_json"})");
  ASSERT_TRUE(r.ok()) << r.status();
  auto m = ImageGenerationManifest(*r, "tiny-sdxl", ManifestLimits{});
  ASSERT_TRUE(m.ok()) << m.status();
  const ManifestEntry& e = m->entries[0];
  EXPECT_EQ(e.sampling.width(), 128);
  EXPECT_EQ(e.sampling.height(), 64);
  EXPECT_EQ(e.sampling.steps(), 30);
  EXPECT_EQ(e.count, 3);
  EXPECT_EQ(e.seed, 99u);  // drawn: no seed given
  EXPECT_FALSE(e.image.has_negative());
}

TEST(OpenAi, ExtensionsSetSeedStepsAndNegative) {
  auto r = Parse(R"({"prompt": "x", "seed": 5, "steps": 4, "negative_prompt": "", "cfg_scale": 2})");
  ASSERT_TRUE(r.ok()) << r.status();
  const ManifestEntry& e = r->entry;
  EXPECT_EQ(e.seed, 5u);
  EXPECT_TRUE(e.image.has_negative());
  EXPECT_EQ(e.image.negative(), "");
  EXPECT_EQ(e.sampling.steps(), 4);
  EXPECT_EQ(e.sampling.cfg(), 2.0);
}

TEST(OpenAi, BadRequestsAreNamed) {
  EXPECT_EQ(Parse(R"({"n": 1})").status().message(), "prompt: is required");
  EXPECT_EQ(Parse(R"({"prompt": "x", "size": "big"})").status().message(),
            "size: expected WIDTHxHEIGHT such as 1024x1024, got 'big'");
  EXPECT_EQ(Parse(R"({"prompt": "x", "size": "1001x1000"})").status().message(),
            "size: must be a multiple of 8 in 64..2048");
  EXPECT_EQ(Parse(R"({"prompt": "x", "steps": 151})").status().message(), "steps: must be 1..150");
  EXPECT_EQ(Parse(R"({"prompt": "x", "sampler": "lms"})").status().message(),
            "sampler: must be " + SamplerNames());
  EXPECT_EQ(Parse(R"({"prompt": "x", "n": 65})").status().message(), "n: must be 1..64");
  EXPECT_EQ(Parse(R"({"prompt": "x", "response_format": "jpeg"})").status().message(),
            "response_format: expected b64_json or url, got 'jpeg'");
  EXPECT_EQ(Parse(R"({"prompt": "x", "colour": "red"})").status().message(), "unrecognized request argument: colour");
}

TEST(OpenAi, OpenAiOnlyFieldsAreAccepted) {
  EXPECT_TRUE(Parse(R"({"prompt": "x", "quality": "hd", "style": "vivid", "user": "me", "model": "tiny-sdxl"})").ok());
}

}  // namespace
}  // namespace spriteforge::coordinator::http
