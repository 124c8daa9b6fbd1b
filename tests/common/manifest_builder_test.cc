// The typed builder every request form fills: a field is checked once, in one wording,
// whether a manifest or a dialect sets it.
#include "common/manifest_builder.h"

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "common/sampling.h"

namespace spriteforge {
namespace {

TEST(ManifestBuilder, ABadFieldReadsTheSameThroughYamlAndThroughTheBuilder) {
  auto yaml = ParseManifestEntries("name: n\nmodel: m\nitems:\n  - prompt: x\n    overrides: {steps: 0}\n", "jobs.yaml");
  ASSERT_FALSE(yaml.ok());
  EXPECT_EQ(yaml.status().message(), "jobs.yaml:5: items[0].overrides.steps: must be 1..150");

  EntryBuilder direct(ManifestLimits{}, nullptr, "jobs.yaml");
  EXPECT_EQ(direct.SetSteps({"items[0].overrides.steps", 5}, 0).message(), yaml.status().message());
  // A dialect names its own field and has no file.
  EntryBuilder dialect{ManifestLimits{}};
  EXPECT_EQ(dialect.SetSteps({"steps"}, 0).message(), "steps: must be 1..150");
  EXPECT_EQ(dialect.SetSampler({"sampler_name"}, "lms").message(),
            absl::StrCat("sampler_name: must be ", SamplerNames()));
}

TEST(ManifestBuilder, BuildReturnsTheFirstErrorOfAnySetter) {
  EntryBuilder b{ManifestLimits{}};
  (void)b.SetCfg({"cfg_scale"}, 99);
  (void)b.SetSteps({"steps"}, 0);
  EXPECT_EQ(b.Build({""}).status().message(), "cfg_scale: must be 0..30");
}

TEST(ManifestBuilder, ChecksNeedingEveryFieldAreMadeAtBuild) {
  EntryBuilder b{ManifestLimits{}};
  ASSERT_TRUE(b.SetSampler({"sampler"}, "lcm").ok());
  ASSERT_TRUE(b.SetSchedule({"schedule"}, "karras").ok());
  auto entry = b.Build({"items[2]", 7});
  ASSERT_FALSE(entry.ok());
  EXPECT_EQ(entry.status().message().rfind("items[2].schedule: ", 0), 0u) << entry.status();

  EntryBuilder strength{ManifestLimits{}};
  ASSERT_TRUE(strength.SetStrength({"denoising_strength"}, 0.5).ok());
  EXPECT_EQ(strength.Build({""}).status().message(), "denoising_strength: needs init_image (img2img)");
}

TEST(ManifestBuilder, AYamlManifestAndTheSameSettersBuildEqualJobs) {
  auto yaml = ParseManifestEntries(R"(
name: potions
model: tiny-sdxl
defaults: {width: 128, height: 64, steps: 4, cfg: 2.5, sampler: euler_ancestral, negative: blurry}
items:
  - {prompt: red potion, count: 3, seed: 7, name: red}
)", "potions.yaml");
  ASSERT_TRUE(yaml.ok()) << yaml.status();

  ManifestBuilder m(ManifestLimits{});
  ASSERT_TRUE(m.SetName({"name"}, "potions").ok());
  ASSERT_TRUE(m.SetModel({"model"}, "tiny-sdxl").ok());
  EntryBuilder e{ManifestLimits{}};
  ASSERT_TRUE(e.SetWidth({"w"}, 128).ok());
  ASSERT_TRUE(e.SetHeight({"h"}, 64).ok());
  ASSERT_TRUE(e.SetSteps({"s"}, 4).ok());
  ASSERT_TRUE(e.SetCfg({"c"}, 2.5).ok());
  ASSERT_TRUE(e.SetSampler({"x"}, "euler_ancestral").ok());
  ASSERT_TRUE(e.SetNegative({"n"}, "blurry").ok());
  ASSERT_TRUE(e.SetPrompt({"p"}, "red potion").ok());
  ASSERT_TRUE(e.SetCount({"k"}, 3).ok());
  ASSERT_TRUE(e.SetName({"a"}, "red").ok());
  e.SetSeed(7);
  ASSERT_TRUE(m.AddEntry({"item"}, {"count"}, e).ok());
  auto built = m.Build();
  ASSERT_TRUE(built.ok()) << built.status();

  ASSERT_EQ(built->entries.size(), yaml->entries.size());
  EXPECT_EQ(built->entries[0].image.SerializeAsString(), yaml->entries[0].image.SerializeAsString());
  EXPECT_EQ(built->entries[0].sampling.SerializeAsString(), yaml->entries[0].sampling.SerializeAsString());
  EXPECT_EQ(built->entries[0].seed, yaml->entries[0].seed);
  EXPECT_EQ(built->image_count, yaml->image_count);
}

TEST(ManifestBuilder, AJobOverItsImageLimitIsRefusedAtTheEntryThatPassesIt) {
  ManifestLimits limits;
  limits.max_images_per_job = 5;
  ManifestBuilder m(limits);
  EntryBuilder e(limits);
  ASSERT_TRUE(e.SetCount({"n"}, 4).ok());
  ASSERT_TRUE(m.AddEntry({""}, {"n"}, e).ok());
  EXPECT_EQ(m.AddEntry({""}, {"n"}, e).message(), "n: the job would exceed 5 images");
}

}  // namespace
}  // namespace spriteforge
