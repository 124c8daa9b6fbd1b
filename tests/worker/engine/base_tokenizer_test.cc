// The CLIP tokenizers reproduce the reference token ids for every golden prompt.
#include "worker/engine/base/tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "tests/worker/engine/golden.h"

namespace spriteforge::engine {
namespace {

void ExpectGoldenIds(const std::string& tokenizer_dir, const std::string& pad,
                     const std::string& tensor) {
  const std::string dir = tokenizer_dir[0] == '/' ? tokenizer_dir : testing::GoldenDir() + "/" + tokenizer_dir;
  auto tokenizer = ClipTokenizer::Load(dir, pad);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto cases = nlohmann::json::parse(*ReadFile(testing::GoldenDir() + "/cases.json"));
  const auto& prompts = cases["cases"]["tokenizer"]["prompts"];
  const TensorView* expected = testing::GoldenVectors().Find(tensor);
  ASSERT_NE(expected, nullptr);
  ASSERT_EQ(expected->dtype, DType::kI64);
  const int64_t* ids = static_cast<const int64_t*>(expected->data);
  for (size_t p = 0; p < prompts.size(); ++p) {
    std::vector<int64_t> got = (*tokenizer)->Encode(prompts[p].get<std::string>());
    std::vector<int64_t> want(ids + p * 77, ids + (p + 1) * 77);
    EXPECT_EQ(got, want) << tensor << " prompt " << p << ": " << prompts[p];
  }
}

TEST(ClipTokenizer, MatchesReferenceIdsPaddedWithEndOfText) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  ExpectGoldenIds("tokenizer", "<|endoftext|>", "tokenizer.ids1");
}

TEST(ClipTokenizer, MatchesReferenceIdsPaddedWithExclamation) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  ExpectGoldenIds("tokenizer_2", "!", "tokenizer.ids2");
}

// The vocabulary shipped with the engine serves both SDXL encoders: the same ids as the
// golden model's tokenizer/ and tokenizer_2/, which differ only in the pad token.
TEST(ClipTokenizer, ShippedVocabularyMatchesBothEncodersReferenceIds) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const std::string shipped = std::string(SPRITEFORGE_SOURCE_DIR) + "/worker/engine/data/clip";
  ExpectGoldenIds(shipped, "<|endoftext|>", "tokenizer.ids1");
  ExpectGoldenIds(shipped, "!", "tokenizer.ids2");
}

TEST(ClipTokenizer, MissingFilesNameThePath) {
  auto tokenizer = ClipTokenizer::Load("/nonexistent/tok", "!");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_NE(tokenizer.status().message().find("/nonexistent/tok/vocab.json"), std::string::npos);
}

}  // namespace
}  // namespace spriteforge::engine
