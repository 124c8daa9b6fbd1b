// Prompt weighting and long prompts through the public API on the golden tiny model.
#include <gtest/gtest.h>

#include "spriteforge/engine/engine.h"
#include "tests/worker/engine/golden.h"
#include "tests/worker/engine/golden_engine.h"

namespace spriteforge::engine {
namespace {

using testing::MaxDifference;
using testing::TinyEngine;

Image Render(const std::string& prompt) {
  BatchRequest r;
  r.width = r.height = 64;
  r.steps = 2;
  r.cfg = 5;
  r.images = {{prompt, std::string("blurry"), 3}};
  auto result = TinyEngine("diffusers").Generate(r);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? result->images[0] : Image{};
}

TEST(PromptWeighting, WeightsChangeTheImageAndWeightOneDoesNot) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const Image plain = Render("red potion bottle icon");
  EXPECT_EQ(Render("red (potion:1.0) bottle icon").rgb_f32, plain.rgb_f32);
  EXPECT_GT(MaxDifference(Render("red (potion:1.5) bottle icon"), plain), 1e-3);
  EXPECT_GT(MaxDifference(Render("red [potion] bottle icon"), plain), 1e-4);
}

TEST(PromptWeighting, LongPromptsAreEncodedInChunksAndCutOnlyPastTheLimit) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  std::string words;
  for (int i = 0; i < 100; ++i) words += "knight ";
  const Image two_chunks = Render(words + "sword");
  EXPECT_TRUE(two_chunks.notes.empty());
  // The 101st token is in the second chunk: it changes the image.
  EXPECT_GT(MaxDifference(two_chunks, Render(words + "potion")), 1e-4);
  std::string huge;
  for (int i = 0; i < 700; ++i) huge += "knight ";
  const Image cut = Render(huge);
  ASSERT_EQ(cut.notes.size(), 1u);
  EXPECT_NE(cut.notes[0].find("prompt cut"), std::string::npos) << cut.notes[0];
  EXPECT_NE(cut.notes[0].find("100 of 700 tokens"), std::string::npos) << cut.notes[0];
}

TEST(PromptWeighting, MalformedWeightIsAnError) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  BatchRequest r;
  r.width = r.height = 64;
  r.steps = 1;
  r.images = {{"(potion:1.2.3)", std::nullopt, 1}};
  auto result = TinyEngine("diffusers").Generate(r);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("weight '1.2.3' is not a number"), std::string::npos) << result.status();
}

}  // namespace
}  // namespace spriteforge::engine
