// A1111 txt2img requests as spriteforge manifests, and the response fields built back.
#include "coordinator/http/a1111.h"

#include <gtest/gtest.h>

namespace spriteforge::coordinator::http {
namespace {

absl::StatusOr<Txt2Img> Parse(const char* json, int max_images = 64) {
  return ParseTxt2Img(nlohmann::json::parse(json), ManifestLimits{}, max_images, [] { return uint64_t{777}; });
}

TEST(A1111, FieldsBecomeTheManifestsDefaultsAndOneItem) {
  auto r = Parse(R"({"prompt": "red potion", "negative_prompt": "blurry", "seed": 42, "steps": 4,
                     "cfg_scale": 5.5, "width": 128, "height": 96, "sampler_name": "Euler a",
                     "batch_size": 2, "n_iter": 3})");
  ASSERT_TRUE(r.ok()) << r.status();
  const nlohmann::json m = Txt2ImgManifest(*r, "tiny-sdxl");
  EXPECT_EQ(m["model"], "tiny-sdxl");
  EXPECT_EQ(m["defaults"]["width"], 128);
  EXPECT_EQ(m["defaults"]["height"], 96);
  EXPECT_EQ(m["defaults"]["steps"], 4);
  EXPECT_EQ(m["defaults"]["cfg"], 5.5);
  EXPECT_EQ(m["defaults"]["sampler"], "euler_ancestral");
  EXPECT_EQ(m["defaults"]["schedule"], "normal");
  ASSERT_EQ(m["items"].size(), 1u);
  EXPECT_EQ(m["items"][0]["prompt"], "red potion");
  EXPECT_EQ(m["items"][0]["negative"], "blurry");
  EXPECT_EQ(m["items"][0]["count"], 6);  // batch_size x n_iter
  EXPECT_EQ(m["items"][0]["seed"], 42);
}

TEST(A1111, DefaultsAreA1111sAndSeedMinusOneIsDrawn) {
  auto r = Parse(R"({"prompt": "knight"})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps, 50);
  EXPECT_EQ(r->width, 512);
  EXPECT_EQ(r->cfg_scale, 7.0);
  EXPECT_EQ(r->sampler, "euler");
  EXPECT_EQ(r->seed, -1);
  EXPECT_EQ(r->first_seed, 777u);
  EXPECT_EQ(Txt2ImgParameters(*r)["seed"], -1);  // echoed as asked
}

TEST(A1111, DpmppTwoMIsKarrasByDefaultAsInA1111) {
  EXPECT_EQ(Parse(R"({"sampler_name": "DPM++ 2M"})")->schedule, "karras");
  EXPECT_EQ(Parse(R"({"sampler_name": "DPM++ 2M Karras"})")->schedule, "karras");
  EXPECT_EQ(Parse(R"({"sampler_name": "DPM++ 2M", "scheduler": "Uniform"})")->schedule, "normal");
  EXPECT_EQ(Parse(R"({"sampler_index": "Euler", "scheduler": "SGM Uniform"})")->schedule, "trailing");
}

TEST(A1111, ModelComesFromOverrideSettingsWithoutItsHash) {
  EXPECT_EQ(Parse(R"({"override_settings": {"sd_model_checkpoint": "tiny-sdxl [0123abcd]"}})")->model, "tiny-sdxl");
}

TEST(A1111, BadFieldsAreNamed) {
  EXPECT_EQ(Parse(R"({"steps": "many"})").status().message(), "steps: expected an integer");
  EXPECT_EQ(Parse(R"({"steps": 0})").status().message(), "steps: must be 1..150");
  EXPECT_EQ(Parse(R"({"width": 100})").status().message(), "width: 100 is not a multiple of 8 in 64..2048");
  EXPECT_EQ(Parse(R"({"seed": -5})").status().message(), "seed: must be -1..9223372036854775807");
  EXPECT_EQ(Parse(R"({"sampler_name": "LMS"})").status().message(),
            "sampler_name: 'LMS' is not available (Euler, Euler a, DPM++ 2M)");
  EXPECT_EQ(Parse(R"({"batch_size": 8, "n_iter": 9})").status().message(),
            "batch_size x n_iter: 72 images; at most 64 per call");
  EXPECT_EQ(Parse(R"({"enable_hr": true})").status().message(), "enable_hr: not supported by spriteforge");
}

TEST(A1111, FieldsThatDoNotChangeTheImageAreIgnored) {
  EXPECT_TRUE(Parse(R"({"enable_hr": false, "save_images": true, "send_images": true, "restore_faces": false})").ok());
}

TEST(A1111, InfoIsAJsonDocumentWithEverySeed) {
  auto r = Parse(R"({"prompt": "coin", "seed": 10, "batch_size": 2, "width": 128, "height": 128, "steps": 4})");
  ASSERT_TRUE(r.ok());
  // The job's items as the coordinator returns them.
  auto manifest = ParseManifest(Txt2ImgManifest(*r, "tiny-sdxl").dump(), "txt2img", [] { return uint64_t{0}; });
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  std::vector<v1::Item> items(manifest->images.size());
  for (size_t i = 0; i < items.size(); ++i) {
    *items[i].mutable_params() = manifest->images[i].image;
    *items[i].mutable_sampling() = manifest->images[i].sampling;
  }
  const auto info = nlohmann::json::parse(Txt2ImgInfo(*r, "tiny-sdxl", items));
  EXPECT_EQ(info["seed"], 10);
  EXPECT_EQ(info["all_seeds"], nlohmann::json({10, 11}));
  EXPECT_EQ(info["sd_model_name"], "tiny-sdxl");
  ASSERT_EQ(info["infotexts"].size(), 2u);
  EXPECT_NE(info["infotexts"][1].get<std::string>().find("Seed: 11, Size: 128x128"), std::string::npos);
}

TEST(A1111, SamplerListHasA1111Names) {
  const nlohmann::json list = A1111Samplers();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[1]["name"], "Euler a");
  EXPECT_EQ(list[1]["aliases"][0], "k_euler_a");
}

}  // namespace
}  // namespace spriteforge::coordinator::http
