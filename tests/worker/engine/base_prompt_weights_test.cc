// A1111's prompt syntax: the parser reproduces the examples of A1111's own
// parse_prompt_attention docstring, and long or weighted prompts are chunked as its
// tokenize_line does (chunks of 75, BREAK, words after a nearby comma moved together).
#include "worker/engine/base/prompt_weights.h"

#include <gtest/gtest.h>

#include "tests/worker/engine/golden.h"

namespace spriteforge::engine {
namespace {

using Runs = std::vector<std::pair<std::string, double>>;

Runs Parse(const std::string& prompt) {
  auto parsed = ParsePromptAttention(prompt);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  Runs out;
  if (parsed.ok()) {
    for (const WeightedText& r : *parsed) out.emplace_back(r.text, r.is_break ? -1 : r.weight);
  }
  return out;
}

// The docstring's examples, weights as Python prints them (same multiplication order,
// so the same doubles).
TEST(PromptAttention, ParsesA1111DocstringExamples) {
  EXPECT_EQ(Parse("normal text"), (Runs{{"normal text", 1.0}}));
  EXPECT_EQ(Parse("an (important) word"), (Runs{{"an ", 1.0}, {"important", 1.1}, {" word", 1.0}}));
  EXPECT_EQ(Parse("(unbalanced"), (Runs{{"unbalanced", 1.1}}));
  EXPECT_EQ(Parse("\\(literal\\]"), (Runs{{"(literal]", 1.0}}));
  EXPECT_EQ(Parse("(unnecessary)(parens)"), (Runs{{"unnecessaryparens", 1.1}}));
  EXPECT_EQ(Parse("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            (Runs{{"a ", 1.0},
                  {"house", 1.5730000000000004},
                  {" ", 1.1},
                  {"on", 1.0},
                  {" a ", 1.1},
                  {"hill", 0.55},
                  {", sun, ", 1.1},
                  {"sky", 1.4641000000000006},
                  {".", 1.1}}));
}

// Further cases checked against the reference Python function.
TEST(PromptAttention, BreaksEscapesAndStrayBrackets) {
  EXPECT_EQ(Parse("a BREAK b"), (Runs{{"a", 1.0}, {"BREAK", -1}, {"b", 1.0}}));
  EXPECT_EQ(Parse("x  BREAK  (y:0.5) BREAKING [[z]]"),
            (Runs{{"x", 1.0}, {"BREAK", -1}, {"", 1.0}, {"y", 0.5}, {" BREAKING ", 1.0}, {"z", 0.8264462809917354}}));
  EXPECT_EQ(Parse("orphan) and ] and : and (w:abc) \\\\ back \\x"),
            (Runs{{"orphan) and ] and : and ", 1.0}, {"w:abc", 1.1}, {" \\ back x", 1.0}}));
  EXPECT_EQ(Parse("((a:1.5) b)"), (Runs{{"a", 1.6500000000000001}, {" b", 1.1}}));
  EXPECT_EQ(Parse("[x:0.5]"), (Runs{{"x:0.5", 0.9090909090909091}}));
  EXPECT_EQ(Parse("(x: -0.25 )"), (Runs{{"x", -0.25}}));
  EXPECT_EQ(Parse(""), (Runs{{"", 1.0}}));
  auto bad = ParsePromptAttention("(x:1.2.3)");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("weight '1.2.3' is not a number"), std::string::npos);
}

class PromptChunks : public ::testing::Test {
 protected:
  void SetUp() override {
    SPRITEFORGE_REQUIRE_GOLDEN_DIR();
    auto t1 = ClipTokenizer::Load(testing::GoldenDir() + "/tokenizer", "<|endoftext|>");
    auto t2 = ClipTokenizer::Load(testing::GoldenDir() + "/tokenizer_2", "!");
    ASSERT_TRUE(t1.ok() && t2.ok());
    first_ = std::move(*t1);
    second_ = std::move(*t2);
    cat_ = first_->Tokenize("cat").at(0);
    dog_ = first_->Tokenize("dog").at(0);
  }
  ChunkedPrompt Chunk(const std::string& prompt, const ClipTokenizer& t, int max_chunks = 8) {
    return ChunkPrompt(*ParsePromptAttention(prompt), t, max_chunks);
  }
  static std::string Words(const std::string& word, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += word + " ";
    return out;
  }
  std::unique_ptr<ClipTokenizer> first_, second_;
  int64_t cat_ = 0, dog_ = 0;
};

TEST_F(PromptChunks, ShortUnweightedPromptIsThePlainEncoding) {
  for (const ClipTokenizer* t : {first_.get(), second_.get()}) {
    ChunkedPrompt c = Chunk("a pixel art knight, 16-bit sprite", *t);
    ASSERT_EQ(c.chunks.size(), 1u);
    EXPECT_EQ(c.chunks[0].ids, t->Encode("a pixel art knight, 16-bit sprite"));
    EXPECT_FALSE(c.weighted);
    EXPECT_EQ(c.dropped_tokens, 0);
  }
  EXPECT_EQ(Chunk("", *second_).chunks[0].ids, EmptyChunk(*second_).ids);
}

TEST_F(PromptChunks, LongPromptsContinueInChunksOf75) {
  ChunkedPrompt c = Chunk(Words("cat", 100), *first_);
  ASSERT_EQ(c.chunks.size(), 2u);
  EXPECT_EQ(c.token_count, 100);
  EXPECT_EQ(c.chunks[0].ids[75], cat_);
  EXPECT_EQ(c.chunks[0].ids[76], first_->eos_id());
  EXPECT_EQ(c.chunks[1].ids[25], cat_);
  EXPECT_EQ(c.chunks[1].ids[26], first_->eos_id());
  // The bigG tokenizer pads after the first EOS with its own pad id.
  ChunkedPrompt c2 = Chunk(Words("cat", 100), *second_);
  EXPECT_EQ(c2.chunks[1].ids[26], second_->eos_id());
  EXPECT_EQ(c2.chunks[1].ids[27], second_->pad_id());

  ChunkedPrompt cut = Chunk(Words("cat", 100), *first_, 1);
  EXPECT_EQ(cut.chunks.size(), 1u);
  EXPECT_EQ(cut.dropped_tokens, 25);
}

TEST_F(PromptChunks, WordsAfterANearbyCommaMoveToTheNextChunk) {
  // 60 cats, a comma, 20 dogs: at the 76th token the comma is 15 back (within 20), so the
  // 14 dogs already in the first chunk move with the rest to the second.
  ChunkedPrompt c = Chunk(Words("cat", 60) + ", " + Words("dog", 20), *first_);
  ASSERT_EQ(c.chunks.size(), 2u);
  EXPECT_EQ(c.chunks[0].ids[60], cat_);
  EXPECT_EQ(c.chunks[0].ids[61], first_->comma_id());
  EXPECT_EQ(c.chunks[0].ids[62], first_->eos_id());
  for (int i = 1; i <= 20; ++i) EXPECT_EQ(c.chunks[1].ids[i], dog_) << i;
  EXPECT_EQ(c.chunks[1].ids[21], first_->eos_id());
}

TEST_F(PromptChunks, BreakStartsAChunkAndWeightsFollowTheirTokens) {
  ChunkedPrompt c = Chunk("(cat:1.5) dog BREAK [dog]", *first_);
  ASSERT_EQ(c.chunks.size(), 2u);
  EXPECT_TRUE(c.weighted);
  EXPECT_EQ(c.chunks[0].ids[1], cat_);
  EXPECT_EQ(c.chunks[0].weights[1], 1.5f);
  EXPECT_EQ(c.chunks[0].ids[2], dog_);
  EXPECT_EQ(c.chunks[0].weights[2], 1.0f);
  EXPECT_EQ(c.chunks[0].ids[3], first_->eos_id());
  EXPECT_EQ(c.chunks[1].ids[1], dog_);
  EXPECT_FLOAT_EQ(c.chunks[1].weights[1], static_cast<float>(1 / 1.1));
  EXPECT_EQ(c.chunks[1].weights[0], 1.0f);  // BOS
}

}  // namespace
}  // namespace spriteforge::engine
