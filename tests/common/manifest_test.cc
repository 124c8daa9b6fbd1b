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
  EXPECT_EQ(m->images[0].image.seed(), 100u);
  EXPECT_EQ(m->images[11].image.seed(), 111u);
  EXPECT_EQ(m->images[12].image.seed(), 500u);
  EXPECT_EQ(m->images[12].index, 12);
  EXPECT_FALSE(m->images[0].image.has_negative());
  EXPECT_EQ(m->images[12].image.negative(), "blurry");
  EXPECT_EQ(m->images[23].sampling.width(), 128);
  EXPECT_EQ(m->images[23].sampling.sampler(), v1::SAMPLER_EULER);
  EXPECT_FALSE(m->images[5].random_seed);
}

TEST(Manifest, JsonReadsLikeYamlAndRandomSeedsAreRecorded) {
  next_seed = 9000;
  auto m = ParseManifest(R"({"name": "icons", "model": "sdxl", "priority": 3,
      "defaults": {"width": 512, "height": 256, "negative": "lowres"},
      "items": [{"prompt": "gem", "count": 2, "overrides": {"steps": 8, "sampler": "dpmpp_2m"}}],
      "postprocess": {"pixelate": "64x64", "palette": "pico8"}})", "icons.json", Draw);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->priority, 3);
  ASSERT_EQ(m->images.size(), 2u);
  EXPECT_TRUE(m->images[0].random_seed);
  EXPECT_EQ(m->images[0].image.seed(), 9000u);
  EXPECT_EQ(m->images[1].image.seed(), 9001u);
  EXPECT_EQ(m->images[1].sampling.steps(), 8);
  EXPECT_EQ(m->images[1].sampling.sampler(), v1::SAMPLER_DPMPP_2M);
  EXPECT_EQ(m->images[1].image.negative(), "lowres");
  EXPECT_EQ(m->images[0].sampling.width(), 512);
  ASSERT_TRUE(m->postprocess.has_value());
  EXPECT_EQ(m->postprocess->palette_name(), "pico8");
  EXPECT_EQ(m->postprocess->width(), 64);
  EXPECT_EQ(m->postprocess->height(), 64);
}

// JSON writers escape emoji as UTF-16 surrogate pairs; YAML parsers refuse those.
TEST(Manifest, JsonMayEscapeCharactersBeyondTheBasicPlaneAsSurrogatePairs) {
  auto m = ParseManifest(R"({"name": "faces", "model": "sdxl",
      "items": [{"prompt": "smile \ud83d\ude00 \\ud83d", "seed": 1}]})", "faces.json", Draw);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->images[0].image.prompt(), "smile \xF0\x9F\x98\x80 \\ud83d");  // an escaped backslash stays text
}

TEST(Manifest, PreviewEveryIsReadAndChecked) {
  const std::string head = "name: x\nmodel: m\nitems: [{prompt: a}]\n";
  auto plain = ParseManifest(head, "job.yaml", Draw);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->preview_every, 0);
  auto every = ParseManifest(head + "preview_every: 3\n", "job.yaml", Draw);
  ASSERT_TRUE(every.ok()) << every.status();
  EXPECT_EQ(every->preview_every, 3);
  auto negative = ParseManifest(head + "preview_every: -1\n", "job.yaml", Draw);
  EXPECT_EQ(negative.status().message(), "job.yaml:4: preview_every: must be 0 (no previews) to 150 steps, got -1");
  auto words = ParseManifest(head + "preview_every: often\n", "job.yaml", Draw);
  EXPECT_NE(words.status().message().find("preview_every"), std::string::npos) << words.status();
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

TEST(Manifest, PostprocessBecomesASpecOrIsRefusedNamingFileLineAndField) {
  const std::string head = "name: x\nmodel: m\nitems: [{prompt: a}]\npostprocess:\n";
  struct Case { std::string section, message; };
  const Case cases[] = {
      {"  pixelate: 32x32\n  palette: c64\n", "job.yaml:6: postprocess.palette: unknown palette \"c64\""},
      {"  palette: ../forest.hex\n", "job.yaml:5: postprocess.palette: palette paths are not allowed"},
      {"  palette: ['#0f380f', 'green-ish']\n", "job.yaml:5: postprocess.palette[1]: "},
      {"  crop: true\n  pixelate: huge\n", "job.yaml:6: postprocess.pixelate: "},
      {"  dither: wobbly\n", "job.yaml:5: postprocess.dither: "},
      {"  sparkle: true\n", "job.yaml:5: postprocess.sparkle: unknown field"},
      {"  palette: pico8\n  colors: 8\n", "job.yaml:6: postprocess.colors: give either palette or colors"},
  };
  for (const Case& c : cases) {
    auto m = ParseManifest(head + c.section, "job.yaml", Draw);
    ASSERT_FALSE(m.ok()) << c.section;
    EXPECT_EQ(std::string(m.status().message()).rfind(c.message, 0), 0u) << m.status().message();
  }
  auto m = ParseManifest(head + "  background: chroma\n  key: '#ff00ff'\n  pixelate: 32x16\n  method: area\n"
                                "  palette: forest.hex\n  dither: fs\n  crop: true\n  padding: 2\n",
                         "job.yaml", Draw);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(m->postprocess.has_value());
  const v1::PostprocessSpec& spec = *m->postprocess;
  EXPECT_EQ(spec.background(), v1::PostprocessSpec::BACKGROUND_CHROMA);
  EXPECT_EQ(spec.key(), 0xff00ffu);
  EXPECT_FLOAT_EQ(spec.tolerance(), 0.08f);  // the default, filled in
  EXPECT_EQ(spec.width(), 32);
  EXPECT_EQ(spec.height(), 16);
  EXPECT_EQ(spec.method(), v1::PostprocessSpec::METHOD_AREA);
  EXPECT_EQ(spec.palette_file(), "forest.hex");  // read on the worker, from its --palette-dir
  EXPECT_EQ(spec.dither(), v1::PostprocessSpec::DITHER_FS);
  EXPECT_TRUE(spec.crop());
  EXPECT_EQ(spec.padding(), 2);
  EXPECT_FALSE(ParseManifest("name: x\nmodel: m\nitems: [{prompt: a}]\n", "job.yaml", Draw)->postprocess);
}

}  // namespace
}  // namespace spriteforge
