// Manifests: YAML and JSON read the same, seeds expand S..S+N-1, random seeds are drawn and
// recorded, and every bad field is rejected with file, line and field named.
#include "common/manifest.h"

#include <gtest/gtest.h>

#include "common/files.h"

namespace spriteforge {
namespace {

uint64_t next_seed = 9000;
uint64_t Draw() { return next_seed++; }

TEST(Manifest, ExpandsThePotionsExample) {
  auto text = ReadFile(std::string(SPRITEFORGE_SOURCE_DIR) + "/workflows/potions.yaml");
  ASSERT_TRUE(text.ok());
  auto m = ParseManifest(*text, "potions.yaml", Draw);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->name, "potions");
  EXPECT_EQ(m->model, "tiny-sdxl");
  ASSERT_EQ(m->images.size(), 24u);
  EXPECT_EQ(m->images[0].params.seed, 100u);
  EXPECT_EQ(m->images[11].params.seed, 111u);
  EXPECT_EQ(m->images[12].params.seed, 500u);
  EXPECT_EQ(m->images[12].index, 12);
  EXPECT_FALSE(m->images[0].params.negative.has_value());
  EXPECT_EQ(m->images[12].params.negative, "blurry");
  EXPECT_EQ(m->images[23].params.width, 128);
  EXPECT_EQ(m->images[23].params.sampler, "euler");
  EXPECT_FALSE(m->images[5].random_seed);
}

TEST(Manifest, JsonReadsLikeYamlAndRandomSeedsAreRecorded) {
  next_seed = 9000;
  auto m = ParseManifest(R"({"name": "icons", "model": "sdxl", "priority": 3,
      "defaults": {"width": 512, "height": 256, "negative": "lowres"},
      "items": [{"prompt": "gem", "count": 2, "overrides": {"steps": 8, "sampler": "dpmpp_2m"}}],
      "postprocess": {"pixelate": {"size": "64x64"}, "palette": "pico8"}})", "icons.json", Draw);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->priority, 3);
  ASSERT_EQ(m->images.size(), 2u);
  EXPECT_TRUE(m->images[0].random_seed);
  EXPECT_EQ(m->images[0].params.seed, 9000u);
  EXPECT_EQ(m->images[1].params.seed, 9001u);
  EXPECT_EQ(m->images[1].params.steps, 8);
  EXPECT_EQ(m->images[1].params.sampler, "dpmpp_2m");
  EXPECT_EQ(m->images[1].params.negative, "lowres");
  EXPECT_EQ(m->images[0].params.width, 512);
  EXPECT_EQ(m->postprocess_json, R"({"palette":"pico8","pixelate":{"size":"64x64"}})");
}

TEST(Manifest, RejectsBadFieldsNamingFileLineAndField) {
  struct Case { std::string text, message; };
  const std::string head = "name: x\nmodel: m\n";
  const Case cases[] = {
      {"name: x\n", "job.yaml:1: model: is required"},
      {head + "items:\n  - {prompt: a, count: 0}\n", "job.yaml:4: items[0].count: must be 1..10000"},
      {head + "items:\n  - {prompt: a, count: 20000}\n", "items[0].count: must be 1..10000"},
      {head + "defaults: {width: 100}\nitems: [{prompt: a}]\n", "job.yaml:3: defaults.width: must be a multiple of 8 in 64..2048"},
      {head + "defaults: {steps: 500}\nitems: [{prompt: a}]\n", "defaults.steps: must be 1..150"},
      {head + "defaults: {sampler: ddim}\nitems: [{prompt: a}]\n", "defaults.sampler: must be euler, euler_ancestral, dpmpp_2m, lcm or tcd"},
      {head + "items: [{prompt: a, overrides: {schedule: cosine}}]\n", "items[0].overrides.schedule: must be normal, trailing, sgm_uniform or karras"},
      {head + "items: [{prompt: a, colour: red}]\n", "job.yaml:3: items[0].colour: unknown field"},
      {head + "items: [{negative: a}]\n", "items[0].prompt: is required"},
      {head + "items: []\n", "items: must be a non-empty list"},
      {head + "items: [{prompt: a, count: many}]\n", "items[0].count: has the wrong type"},
      {head + "items: [{prompt: " + std::string(1001, 'a') + "}]\n", "items[0].prompt: longer than 1000 characters"},
      {head + "postprocess: [1]\nitems: [{prompt: a}]\n", "postprocess: must be a mapping"},
      {head + "items: [{prompt: a}\n", "job.yaml:"},
      {"- just\n- a list\n", "the manifest must be a mapping"},
  };
  for (const Case& c : cases) {
    auto m = ParseManifest(c.text, "job.yaml", Draw);
    ASSERT_FALSE(m.ok()) << c.text;
    EXPECT_NE(m.status().message().find(c.message), std::string::npos) << m.status().message();
  }
  ManifestLimits small;
  small.max_images_per_job = 10;
  auto too_many = ParseManifest(head + "items: [{prompt: a, count: 6}, {prompt: b, count: 6}]\n", "job.yaml", Draw, small);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("exceed 10 images"), std::string::npos);
  auto huge = ParseManifest(std::string(2 << 20, ' '), "big.yaml", Draw);
  EXPECT_NE(huge.status().message().find("the limit is"), std::string::npos);
}

}  // namespace
}  // namespace spriteforge
