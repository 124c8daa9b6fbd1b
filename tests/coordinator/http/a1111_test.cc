// A1111 txt2img requests as spriteforge manifests, and the response fields built back.
#include "coordinator/transport/http/a1111.h"

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/png.h"

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

// A 64x64 PNG as a ControlNet unit carries it: base64.
std::string Base64Png(uint8_t shade) {
  RasterImage image{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3, shade)};
  return absl::Base64Escape(*EncodePng(image));
}

absl::StatusOr<Txt2Img> ParseWithUnits(const std::string& units) {
  return Parse(absl::StrReplaceAll(R"({"prompt": "knight", "seed": 3, "width": 64, "height": 64, "steps": 2,
      "alwayson_scripts": {"controlnet": {"args": UNITS}}})", {{"UNITS", units}}).c_str());
}

// The ControlNet extension's units as an A1111 client sends them: a pose picture, Canny
// edges of a sketch, a disabled unit, and an IP-Adapter unit whose image is the reference.
TEST(A1111, ControlNetUnitsBecomeTheManifestsControlsAndReference) {
  auto r = ParseWithUnits(absl::StrCat(
      R"([{"input_image": ")", Base64Png(10), R"(", "module": "none", "model": "openpose-sdxl [a1b2c3d4]",
           "weight": 0.9, "guidance_start": 0.0, "guidance_end": 0.75, "pixel_perfect": true},
          {"image": "data:image/png;base64,)", Base64Png(20), R"(", "module": "canny", "model": "canny-sdxl",
           "threshold_a": 50, "threshold_b": -1},
          {"enabled": false, "module": "depth_midas", "model": "depth"},
          {"input_image": ")", Base64Png(30), R"(", "module": "ip-adapter_clip_sdxl_plus_vith",
           "model": "ip-adapter-plus_sdxl_vit-h [f1f19f7d]", "weight": 0.6}])"));
  ASSERT_TRUE(r.ok()) << r.status();
  const nlohmann::json m = Txt2ImgManifest(*r, "tiny-sdxl");
  const nlohmann::json& controls = m["defaults"]["controls"];
  ASSERT_EQ(controls.size(), 2u);
  EXPECT_EQ(controls[0], nlohmann::json({{"model", "openpose-sdxl"}, {"image", "controlnet0.png"}, {"scale", 0.9},
                                         {"start", 0.0}, {"end", 0.75}}));
  EXPECT_EQ(controls[1]["canny"], nlohmann::json({{"image", "controlnet1.png"}, {"low", 50}, {"high", 200}}));
  EXPECT_EQ(m["defaults"]["reference"], nlohmann::json({{"images", {"reference0.png"}},
                                                        {"adapter", "ip-adapter-plus_sdxl_vit-h"}, {"scale", 0.6}}));
  const auto files = Txt2ImgFiles(*r);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(absl::Base64Escape(files.at("controlnet1.png")), Base64Png(20));
  EXPECT_EQ(absl::Base64Escape(files.at("reference0.png")), Base64Png(30));

  // The manifest the job is made of: the same typed fields a manifest's controls give, and
  // the infotexts A1111 clients read back.
  auto manifest = ParseManifest(m.dump(), "txt2img", [] { return uint64_t{0}; }, {},
                                [](const std::string& path, ManifestFileKind) -> absl::StatusOr<ManifestFile> {
                                  return ManifestFile{std::string(64, path[0] == 'c' ? 'c' : 'e'), 100, 64, 64};
                                });
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  const v1::SamplingParams& sampling = manifest->images[0].sampling;
  ASSERT_EQ(sampling.controlnets_size(), 2);
  EXPECT_EQ(sampling.controlnets(0).name(), "openpose-sdxl");
  EXPECT_EQ(sampling.controlnets(0).end(), 0.75);
  EXPECT_EQ(manifest->images[0].image.controls(1).canny().low(), 50);
  EXPECT_EQ(sampling.ip_adapter().name(), "ip-adapter-plus_sdxl_vit-h");
  EXPECT_EQ(sampling.ip_adapter().scale(), 0.6);
  EXPECT_EQ(manifest->images[0].image.reference_sha256(0), std::string(64, 'e'));
  std::vector<v1::Item> items(1);
  *items[0].mutable_params() = manifest->images[0].image;
  *items[0].mutable_sampling() = sampling;
  const auto info = nlohmann::json::parse(Txt2ImgInfo(*r, "tiny-sdxl", items));
  EXPECT_NE(info["infotexts"][0].get<std::string>().find(", ControlNet 2: \"Module: ip-adapter_clip_sdxl_plus_vith"),
            std::string::npos) << info["infotexts"][0];
  EXPECT_EQ(info["extra_generation_params"]["ControlNet 1"].get<std::string>().rfind("Module: canny, Model: canny-sdxl, ", 0), 0u)
      << info["extra_generation_params"];
}

TEST(A1111, ControlNetUnitMistakesAreNamed) {
  const std::string image = absl::StrCat(R"("input_image": ")", Base64Png(1), R"(")");
  EXPECT_EQ(ParseWithUnits(R"([{"module": "openpose_full", "model": "openpose", )" + image + "}]").status().message(),
            "alwayson_scripts.controlnet.args[0].module: 'openpose_full' is not available (none, canny, "
            "ip-adapter_clip_sdxl_plus_vith, ...)");
  EXPECT_EQ(ParseWithUnits(R"([{"module": "none", "model": "None", )" + image + "}]").status().message(),
            "alwayson_scripts.controlnet.args[0].model: a model name is required");
  EXPECT_EQ(ParseWithUnits(R"([{"model": "pose", "input_image": "bm90IGEgcG5n"}])").status().message(),
            "alwayson_scripts.controlnet.args[0].input_image: expected a base64 PNG");
  EXPECT_EQ(ParseWithUnits(R"([{"model": "pose"}])").status().message(),
            "alwayson_scripts.controlnet.args[0].input_image: a base64 PNG is required");
  EXPECT_EQ(ParseWithUnits(R"([{"model": "pose", "weight": 3, )" + image + "}]").status().message(),
            "alwayson_scripts.controlnet.args[0].weight: must be 0..2");
  EXPECT_EQ(ParseWithUnits(R"([{"model": "pose", "guidance_start": 0.8, "guidance_end": 0.5, )" + image + "}]")
                .status().message(),
            "alwayson_scripts.controlnet.args[0].guidance_start: must be below guidance_end (0.8 >= 0.5)");
  EXPECT_EQ(ParseWithUnits(R"([{"module": "ip-adapter_clip_sdxl", "model": "a", )" + image +
                           R"(}, {"module": "ip-adapter_clip_sdxl", "model": "b", )" + image + "}]")
                .status().message(),
            "alwayson_scripts.controlnet.args[1].model: one IP-Adapter per request: its units must share model and "
            "weight (a 1)");
  EXPECT_EQ(Parse(R"({"alwayson_scripts": {"ADetailer": {"args": [true]}}})").status().message(),
            "alwayson_scripts.ADetailer: not supported by spriteforge");
  EXPECT_TRUE(Parse(R"({"alwayson_scripts": {"controlnet": {"args": []}, "Refiner": {}}})").ok());
}

TEST(A1111, SamplerListHasA1111Names) {
  const nlohmann::json list = A1111Samplers();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[1]["name"], "Euler a");
  EXPECT_EQ(list[1]["aliases"][0], "k_euler_a");
}

}  // namespace
}  // namespace spriteforge::coordinator::http
