// Manifest fields for LoRAs, img2img and few-step samplers: where they may stand, how an
// item's settings replace the defaults', how files named by path are resolved, and the
// error (file, line, field) for each bad value.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/manifest.h"

namespace spriteforge {
namespace {

uint64_t Draw() { return 7; }

// Stands in for the client's upload or the coordinator's lookup: known paths only.
absl::StatusOr<ManifestFile> Files(const std::string& path, ManifestFileKind kind) {
  if (path == "styles/pixel.safetensors" && kind == ManifestFileKind::kLora) {
    return ManifestFile{std::string(64, 'a'), 1000, 0, 0};
  }
  if (path == "sketch.png" && kind == ManifestFileKind::kImage) return ManifestFile{std::string(64, 'b'), 500, 128, 128};
  return absl::NotFoundError(absl::StrCat(path, ": no such file"));
}

TEST(ManifestWorkflow, LorasStartImagesAndFewStepSettingsExpandPerItem) {
  const std::string text = R"(name: knights
model: sdxl
defaults:
  width: 128
  height: 128
  lora: [{name: pixel-art-xl.safetensors, strength: 0.8}]
  strength: 0.5
items:
  - {prompt: plain}
  - prompt: sketched
    init_image: sketch.png
    lora: [{path: styles/pixel.safetensors}, {name: lightning, strength: 1.0}]
  - prompt: fast
    lora: []
    overrides: {sampler: tcd, steps: 4, cfg: 1.0, tcd_gamma: 0.5}
  - {prompt: lcm, overrides: {sampler: lcm, schedule: normal}, init_image: sketch.png, strength: 0.9}
  - {prompt: lightning, overrides: {schedule: sgm_uniform, cfg: 1.0}}
)";
  auto m = ParseManifest(text, "k.yaml", Draw, {}, Files);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->images.size(), 5u);
  const v1::SamplingParams& plain = m->images[0].sampling;
  ASSERT_EQ(plain.loras_size(), 1);
  EXPECT_EQ(plain.loras(0).name(), "pixel-art-xl");  // the stem, as A1111 tags it
  EXPECT_EQ(plain.loras(0).strength(), 0.8);
  EXPECT_TRUE(plain.loras(0).sha256().empty());      // looked up in the workers' folder
  EXPECT_TRUE(m->images[0].image.init_image_sha256().empty());
  EXPECT_EQ(plain.strength(), 0);                    // the default strength is for img2img items
  EXPECT_EQ(plain.tcd_gamma(), 0);                   // for sampler tcd only

  const v1::SamplingParams& sketched = m->images[1].sampling;
  ASSERT_EQ(sketched.loras_size(), 2);  // the item's list replaces the defaults'
  EXPECT_EQ(sketched.loras(0).name(), "pixel");
  EXPECT_EQ(sketched.loras(0).sha256(), std::string(64, 'a'));
  EXPECT_EQ(sketched.loras(0).strength(), 1.0);
  EXPECT_EQ(sketched.loras(1).name(), "lightning");
  EXPECT_EQ(m->images[1].image.init_image_sha256(), std::string(64, 'b'));
  EXPECT_EQ(sketched.strength(), 0.5);

  const v1::SamplingParams& fast = m->images[2].sampling;
  EXPECT_EQ(fast.loras_size(), 0);
  EXPECT_EQ(fast.sampler(), v1::SAMPLER_TCD);
  EXPECT_EQ(fast.tcd_gamma(), 0.5);
  EXPECT_EQ(m->images[3].sampling.sampler(), v1::SAMPLER_LCM);
  EXPECT_EQ(m->images[3].sampling.strength(), 0.9);
  EXPECT_EQ(m->images[4].sampling.schedule(), v1::SCHEDULE_SGM_UNIFORM);
}

TEST(ManifestWorkflow, AStartImageWithoutAStrengthTakesA1111sDefault) {
  auto m = ParseManifest("name: x\nmodel: m\ndefaults: {width: 128, height: 128}\nitems: [{prompt: a, init_image: sketch.png}]\n",
                         "x.yaml", Draw, {}, Files);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->images[0].sampling.strength(), 0.75);
}

TEST(ManifestWorkflow, RejectsBadWorkflowFieldsNamingFileLineAndField) {
  struct Case { std::string text, message; };
  const std::string head = "name: x\nmodel: m\ndefaults: {width: 128, height: 128}\n";
  const Case cases[] = {
      {head + "items: [{prompt: a, lora: pixel}]\n", "job.yaml:4: items[0].lora: must be a list"},
      {head + "items: [{prompt: a, lora: [{name: a, path: b}]}]\n", "items[0].lora[0]: needs exactly one of name"},
      {head + "items: [{prompt: a, lora: [{strength: 1}]}]\n", "items[0].lora[0]: needs exactly one of name"},
      {head + "items: [{prompt: a, lora: [{name: ../secret}]}]\n", "items[0].lora[0].name: must be a file name"},
      {head + "items: [{prompt: a, lora: [{name: p, weight: 1}]}]\n", "items[0].lora[0].weight: unknown field"},
      {head + "items: [{prompt: a, lora: [{name: p, strength: 50}]}]\n", "items[0].lora[0].strength: must be -10..10"},
      {head + "items: [{prompt: a, lora: [{name: p, strength: strong}]}]\n", "items[0].lora[0].strength: has the wrong type"},
      {head + "items: [{prompt: a, lora: [{path: gone.safetensors}]}]\n",
       "job.yaml:4: items[0].lora[0].path: gone.safetensors: no such file"},
      {head + "items: [{prompt: a, init_image: gone.png}]\n", "items[0].init_image: gone.png: no such file"},
      {head + "items: [{prompt: a, init_image: sketch.png, strength: 0}]\n", "items[0].strength: must be in (0, 1]"},
      {head + "items: [{prompt: a, strength: 0.5}]\n", "job.yaml:4: items[0].strength: needs init_image"},
      {"name: x\nmodel: m\nitems:\n  - {prompt: a, init_image: sketch.png}\n",
       "job.yaml:4: items[0].init_image: is 128x128 but the item is 1024x1024"},
      {head + "items: [{prompt: a, tcd_gamma: 2}]\n", "items[0].tcd_gamma: must be 0..1"},
      {head + "items: [{prompt: a, overrides: {sampler: tcd, schedule: karras}}]\n",
       "items[0].schedule: sampler tcd uses its own timesteps"},
      {head + "items: [{prompt: a, lora: [{name: a}, {name: b}, {name: c}, {name: d}, {name: e}, {name: f}, "
              "{name: g}, {name: h}, {name: i}]}]\n",
       "items[0].lora: holds more than 8 LoRAs"},
  };
  for (const Case& c : cases) {
    auto m = ParseManifest(c.text, "job.yaml", Draw, {}, Files);
    ASSERT_FALSE(m.ok()) << c.text;
    EXPECT_NE(m.status().message().find(c.message), std::string::npos) << m.status().message();
  }
}

TEST(ManifestWorkflow, SpeedUpsThatChangePixelsAreOptInPerItem) {
  const std::string text = R"(name: fast
model: sdxl
defaults: {width: 128, height: 128, cfg: 5, guidance_interval: {end: 0.6}}
items:
  - {prompt: interval}
  - {prompt: cached, deep_cache: 3, guidance_interval: {start: 0, end: 1}}
  - {prompt: unguided, overrides: {cfg: 1.0}}
)";
  auto m = ParseManifest(text, "f.yaml", Draw, {}, Files);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->images.size(), 3u);
  const v1::SamplingParams& interval = m->images[0].sampling;
  ASSERT_TRUE(interval.has_guidance_interval());
  EXPECT_EQ(interval.guidance_interval().start(), 0.0);
  EXPECT_EQ(interval.guidance_interval().end(), 0.6);
  EXPECT_EQ(interval.deep_cache(), 0);
  // Every step guided is the exact path: the same batches as a manifest without the field.
  EXPECT_FALSE(m->images[1].sampling.has_guidance_interval());
  EXPECT_EQ(m->images[1].sampling.deep_cache(), 3);
  EXPECT_FALSE(m->images[2].sampling.has_guidance_interval());  // no CFG, nothing to interval
}

TEST(ManifestWorkflow, RejectsBadSpeedUpsNamingTheField) {
  struct Case { std::string text, message; };
  const std::string head = "name: x\nmodel: m\ndefaults: {width: 128, height: 128}\n";
  const Case cases[] = {
      {head + "items: [{prompt: a, guidance_interval: {start: 0.6, end: 0.4}}]\n",
       "job.yaml:4: items[0].guidance_interval.start: must be below end (0.6 >= 0.4)"},
      {head + "items: [{prompt: a, guidance_interval: {end: 2}}]\n", "items[0].guidance_interval.end: must be 0..1"},
      {head + "items: [{prompt: a, guidance_interval: [0, 0.5]}]\n", "items[0].guidance_interval: must be a mapping"},
      {head + "items: [{prompt: a, guidance_interval: {stop: 0.5}}]\n", "items[0].guidance_interval.stop: unknown field"},
      {head + "items: [{prompt: a, deep_cache: 1}]\n", "items[0].deep_cache: must be 2..10"},
      {head + "items: [{prompt: a, deep_cache: 3, controls: [{model: canny, image: sketch.png}]}]\n",
       "items[0].deep_cache: cannot be combined with controls"},
  };
  for (const Case& c : cases) {
    auto m = ParseManifest(c.text, "job.yaml", Draw, {}, Files);
    ASSERT_FALSE(m.ok()) << c.text;
    EXPECT_NE(m.status().message().find(c.message), std::string::npos) << m.status().message();
  }
}

TEST(ManifestWorkflow, PathsAreRefusedWhereNothingUploadsThem) {
  auto m = ParseManifest("name: x\nmodel: m\nitems: [{prompt: a, lora: [{path: /etc/passwd}]}]\n", "api.yaml", Draw);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("api.yaml:3: items[0].lora[0].path: files given by path must be uploaded"),
            std::string::npos)
      << m.status().message();
  // Names need no upload.
  EXPECT_TRUE(ParseManifest("name: x\nmodel: m\nitems: [{prompt: a, lora: [{name: p}]}]\n", "api.yaml", Draw).ok());
}

TEST(ManifestWorkflow, TheShippedPixelArtExampleIsValid) {
  auto text = ReadFile(std::string(SPRITEFORGE_SOURCE_DIR) + "/workflows/pixel-art-variations.yaml");
  ASSERT_TRUE(text.ok()) << text.status();
  std::vector<std::string> asked;
  auto m = ParseManifest(*text, "pixel-art-variations.yaml", Draw, {},
                         [&](const std::string& path, ManifestFileKind kind) -> absl::StatusOr<ManifestFile> {
                           asked.push_back(path);
                           if (kind == ManifestFileKind::kImage) return ManifestFile{std::string(64, 'b'), 1, 1024, 1024};
                           return ManifestFile{std::string(64, 'a'), 1, 0, 0};
                         });
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->images.size(), 24u);
  EXPECT_EQ(asked, (std::vector<std::string>{"sketches/potion.png", "loras/my-potions-style.safetensors"}));
  EXPECT_EQ(m->images[0].sampling.strength(), 0.6);
  EXPECT_EQ(m->images[8].sampling.loras_size(), 2);
  EXPECT_EQ(m->images[16].sampling.schedule(), v1::SCHEDULE_SGM_UNIFORM);
}

}  // namespace
}  // namespace spriteforge
