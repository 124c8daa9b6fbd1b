// Manifests written to hurt the coordinator: recursive and exponential YAML aliases, deep
// nesting, duplicate keys, text that is not UTF-8 or carries terminal escapes, and names
// that would walk out of a folder. Each is refused quickly with one line naming the place.
#include <gtest/gtest.h>

#include <chrono>

#include "common/manifest.h"
#include "common/text.h"

namespace spriteforge {
namespace {

uint64_t Draw() { return 1; }

std::string Refusal(const std::string& text) {
  auto m = ParseManifest(text, "job.yaml", Draw);
  EXPECT_FALSE(m.ok()) << text.substr(0, 200);
  return m.ok() ? "" : std::string(m.status().message());
}

// 7 levels of 10 aliases each: 10^7 values once expanded, from a few hundred bytes.
std::string BillionLaughs() {
  std::string text = "name: x\nmodel: m\npostprocess:\n  l0: &l0 lol\n";
  for (int level = 1; level <= 7; ++level) {
    text += "  l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int k = 0; k < 10; ++k) text += (k ? ", *l" : "*l") + std::to_string(level - 1);
    text += "]\n";
  }
  return text + "items: [{prompt: a}]\n";
}

// Loaded and walked, this one overflowed the coordinator's stack.
TEST(ManifestHostile, ARecursiveAliasIsRefusedNotFollowed) {
  const std::string text = "name: c\nmodel: tiny\npostprocess: &a {x: *a}\nitems: [{prompt: a}]\n";
  EXPECT_EQ(Refusal(text), "job.yaml:3: alias *a refers to a node that contains it");
}

TEST(ManifestHostile, ExponentialAliasesAreRefusedQuickly) {
  const std::string text = BillionLaughs();
  EXPECT_LT(text.size(), 500u);
  const auto start = std::chrono::steady_clock::now();
  const std::string message = Refusal(text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(message.find("(expanding alias *l"), std::string::npos) << message;
  EXPECT_LT(seconds, 0.5);
}

TEST(ManifestHostile, ModestAliasesStillWork) {
  auto m = ParseManifest("name: x\nmodel: m\nitems:\n  - {prompt: &p red potion, count: 2}\n  - {prompt: *p}\n",
                         "job.yaml", Draw);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->images.size(), 3u);
  EXPECT_EQ(m->images[2].image.prompt(), "red potion");
}

TEST(ManifestHostile, DeepNestingIsRefused) {
  const std::string deep = std::string(40, '[') + std::string(40, ']');
  EXPECT_EQ(Refusal("name: x\nmodel: m\npostprocess: {a: " + deep + "}\nitems: [{prompt: a}]\n"),
            "job.yaml:3: nested deeper than 32 levels");
}

TEST(ManifestHostile, DuplicateKeysAreRefusedWithKeyAndLine) {
  EXPECT_EQ(Refusal("name: x\nmodel: m\nname: y\nitems: [{prompt: a}]\n"), "job.yaml:3: duplicate key \"name\"");
  EXPECT_EQ(Refusal("name: x\nmodel: m\nitems:\n  - {prompt: a, count: 2, count: 3}\n"),
            "job.yaml:4: duplicate key \"count\"");
  EXPECT_EQ(Refusal(R"({"name": "x", "model": "m", "items": [{"prompt": "a"}], "model": "n"})"),
            "job.yaml:1: duplicate key \"model\"");
}

TEST(ManifestHostile, TextThatIsNotUtf8IsRefused) {
  // Before: the postprocess section's JSON encoder threw on it and took the process down.
  EXPECT_EQ(Refusal("name: x\nmodel: m\npostprocess: {palette: \"\xff\xfe\"}\nitems: [{prompt: a}]\n"),
            "job.yaml:3: text is not valid UTF-8");
}

TEST(ManifestHostile, PromptLimitCountsCharactersNotBytes) {
  std::string emoji;
  for (int i = 0; i < 400; ++i) emoji += "\xF0\x9F\x90\x89";  // U+1F409, 4 bytes
  auto m = ParseManifest("name: x\nmodel: m\nitems: [{prompt: \"" + emoji + "\"}]\n", "job.yaml", Draw);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(Utf8Length(m->images[0].image.prompt()), 400u);
  std::string long_prompt;
  for (int i = 0; i < 1001; ++i) long_prompt += "\xC3\xA9";  // é
  EXPECT_EQ(Refusal("name: x\nmodel: m\nitems: [{prompt: " + long_prompt + "}]\n"),
            "job.yaml:3: items[0].prompt: longer than 1000 characters");
}

TEST(ManifestHostile, TerminalEscapesInTheJobNameAreRefused) {
  EXPECT_EQ(Refusal("name: \"\\e]0;owned\\a\\e[2J\"\nmodel: m\nitems: [{prompt: a}]\n"),
            "job.yaml:1: name: contains control characters (such as terminal escapes)");
  EXPECT_EQ(Refusal("name: \"a\\u009bb\"\nmodel: m\nitems: [{prompt: a}]\n"),
            "job.yaml:1: name: contains control characters (such as terminal escapes)");
  EXPECT_NE(Refusal("name: " + std::string(201, 'n') + "\nmodel: m\nitems: [{prompt: a}]\n").find("name: longer than 200"),
            std::string::npos);
}

TEST(ManifestHostile, ModelNamesThatAreNotPlainNamesAreRefused) {
  for (const char* model : {"../../etc/passwd", "/abs", "a b", ".hidden", "-x", "tiny\\sdxl"}) {
    EXPECT_NE(Refusal(std::string("name: x\nmodel: '") + model + "'\nitems: [{prompt: a}]\n")
                  .find("job.yaml:2: model: must be 1..128 characters of A-Z a-z 0-9 . _ -"),
              std::string::npos)
        << model;
  }
  EXPECT_TRUE(ParseManifest("name: x\nmodel: sd_xl-base.1.0\nitems: [{prompt: a}]\n", "job.yaml", Draw).ok());
}

TEST(ManifestHostile, ALargePostprocessSectionIsRefused) {
  // It travels with every item of every batch, so it stays small.
  std::string colours = "[";
  for (int i = 0; i < 3000; ++i) colours += "'#aabbcc', ";
  EXPECT_EQ(Refusal("name: x\nmodel: m\npostprocess: {palette: " + colours + "]}\nitems: [{prompt: a}]\n"),
            "job.yaml:3: postprocess: is 30013 bytes as JSON; the limit is 16384");
}

TEST(Text, Utf8AndControlCharacters) {
  EXPECT_EQ(Utf8Length("h\xC3\xA9llo"), 5u);
  EXPECT_FALSE(Utf8Length("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(Utf8Length("\xED\xA0\x80"));      // a surrogate
  EXPECT_FALSE(Utf8Length("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(Utf8Length("\xE2\x82"));          // cut short
  EXPECT_TRUE(HasControlCharacters("a\x1b[31m"));
  EXPECT_FALSE(HasControlCharacters("line\nbreak", "\n"));
  EXPECT_TRUE(IsSafeName("tiny-sdxl"));
  EXPECT_FALSE(IsSafeName(".."));
  EXPECT_FALSE(IsSafeName(std::string(129, 'a')));
}

}  // namespace
}  // namespace spriteforge
