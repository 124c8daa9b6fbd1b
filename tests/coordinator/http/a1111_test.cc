// A1111 txt2img requests as spriteforge's typed jobs, and the response fields built back.
#include "coordinator/transport/http/a1111.h"

#include <gtest/gtest.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/png.h"
#include "common/sha256.h"

namespace spriteforge::coordinator::http {
namespace {

absl::StatusOr<Txt2Img> Parse(const char* json, int max_images = 64) {
  return ParseTxt2Img(nlohmann::json::parse(json), ManifestLimits{}, max_images, [] { return uint64_t{777}; });
}

TEST(A1111, FieldsBecomeOneTypedEntry) {
  auto r = Parse(R"({"prompt": "red potion", "negative_prompt": "blurry", "seed": 42, "steps": 4,
                     "cfg_scale": 5.5, "width": 128, "height": 96, "sampler_name": "Euler a",
                     "batch_size": 2, "n_iter": 3})");
  ASSERT_TRUE(r.ok()) << r.status();
  auto m = Txt2ImgManifest(*r, "tiny-sdxl", ManifestLimits{});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->model, "tiny-sdxl");
  EXPECT_EQ(m->name, "txt2img");
  ASSERT_EQ(m->entries.size(), 1u);
  const ManifestEntry& e = m->entries[0];
  EXPECT_EQ(e.sampling.width(), 128);
  EXPECT_EQ(e.sampling.height(), 96);
  EXPECT_EQ(e.sampling.steps(), 4);
  EXPECT_EQ(e.sampling.cfg(), 5.5);
  EXPECT_EQ(e.sampling.sampler(), v1::SAMPLER_EULER_ANCESTRAL);
  EXPECT_EQ(e.sampling.schedule(), v1::SCHEDULE_NORMAL);
  EXPECT_EQ(e.image.prompt(), "red potion");
  EXPECT_EQ(e.image.negative(), "blurry");
  EXPECT_EQ(e.count, 6);  // batch_size x n_iter
  EXPECT_EQ(e.seed, 42u);
  EXPECT_EQ(m->image_count, 6);
}

// The request and the manifest a user would write for it are one job, field for field.
TEST(A1111, ARequestAndItsManifestBuildTheSameEntry) {
  auto r = Parse(R"({"prompt": "red potion", "negative_prompt": "blurry", "seed": 42, "steps": 4,
                     "cfg_scale": 5.5, "width": 128, "height": 96, "sampler_name": "DPM++ 2M",
                     "tiling": true, "batch_size": 2})");
  ASSERT_TRUE(r.ok()) << r.status();
  auto typed = Txt2ImgManifest(*r, "tiny-sdxl", ManifestLimits{});
  ASSERT_TRUE(typed.ok()) << typed.status();
  auto parsed = ParseManifestEntries(R"(
name: txt2img
model: tiny-sdxl
defaults: {width: 128, height: 96, steps: 4, cfg: 5.5, sampler: dpmpp_2m, schedule: karras, tileable: true}
items:
  - {prompt: red potion, negative: blurry, count: 2, seed: 42}
)", "txt2img.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->entries.size(), 1u);
  const ManifestEntry& a = typed->entries[0];
  const ManifestEntry& b = parsed->entries[0];
  EXPECT_EQ(a.image.SerializeAsString(), b.image.SerializeAsString()) << a.image.DebugString();
  EXPECT_EQ(a.sampling.SerializeAsString(), b.sampling.SerializeAsString()) << a.sampling.DebugString();
  EXPECT_EQ(a.count, b.count);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(typed->name, parsed->name);
  EXPECT_EQ(typed->model, parsed->model);
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
  EXPECT_EQ(Parse(R"({"width": 100})").status().message(), "width: must be a multiple of 8 in 64..2048");
  EXPECT_EQ(Parse(R"({"cfg_scale": 31})").status().message(), "cfg_scale: must be 0..30");
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
  auto manifest = Txt2ImgManifest(*r, "tiny-sdxl", ManifestLimits{});
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  std::vector<v1::Item> items(manifest->image_count);
  for (size_t i = 0; i < items.size(); ++i) {
    const ManifestImage image = ExpandImage(manifest->entries[0], static_cast<int>(i), [] { return uint64_t{0}; });
    *items[i].mutable_params() = image.image;
    *items[i].mutable_sampling() = image.sampling;
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
TEST(A1111, ControlNetUnitsBecomeTheEntrysControlsAndReference) {
  auto r = ParseWithUnits(absl::StrCat(
      R"([{"input_image": ")", Base64Png(10), R"(", "module": "none", "model": "openpose-sdxl [a1b2c3d4]",
           "weight": 0.9, "guidance_start": 0.0, "guidance_end": 0.75, "pixel_perfect": true},
          {"image": "data:image/png;base64,)", Base64Png(20), R"(", "module": "canny", "model": "canny-sdxl",
           "threshold_a": 50, "threshold_b": -1, "control_mode": "ControlNet is more important"},
          {"enabled": false, "module": "depth_midas", "model": "depth"},
          {"input_image": ")", Base64Png(30), R"(", "module": "ip-adapter_clip_sdxl_plus_vith",
           "model": "ip-adapter-plus_sdxl_vit-h [f1f19f7d]", "weight": 0.6}])"));
  ASSERT_TRUE(r.ok()) << r.status();
  const auto files = Txt2ImgFiles(*r);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(absl::Base64Escape(files.at("controlnet1.png")), Base64Png(20));
  EXPECT_EQ(absl::Base64Escape(files.at("reference0.png")), Base64Png(30));

  // The entry the job is made of: the same typed fields a manifest's controls give, its
  // pictures named by the hashes their uploads will have, and the infotexts A1111 clients
  // read back.
  const v1::SamplingParams& sampling = r->entry.sampling;
  const v1::ImageParams& image = r->entry.image;
  ASSERT_EQ(sampling.controlnets_size(), 2);
  EXPECT_EQ(sampling.controlnets(0).name(), "openpose-sdxl");
  EXPECT_EQ(sampling.controlnets(0).scale(), 0.9);
  EXPECT_EQ(sampling.controlnets(0).end(), 0.75);
  EXPECT_FALSE(sampling.controlnets(0).guess_mode());
  EXPECT_TRUE(sampling.controlnets(1).guess_mode());  // "ControlNet is more important"
  EXPECT_EQ(image.controls(0).image_sha256(), Sha256Hex(files.at("controlnet0.png")));
  EXPECT_EQ(image.controls(1).canny().low(), 50);
  EXPECT_EQ(image.controls(1).canny().high(), 200);
  EXPECT_EQ(sampling.ip_adapter().name(), "ip-adapter-plus_sdxl_vit-h");
  EXPECT_EQ(sampling.ip_adapter().scale(), 0.6);
  EXPECT_EQ(image.reference_sha256(0), Sha256Hex(files.at("reference0.png")));
  std::vector<v1::Item> items(1);
  *items[0].mutable_params() = image;
  *items[0].mutable_sampling() = sampling;
  const auto info = nlohmann::json::parse(Txt2ImgInfo(*r, "tiny-sdxl", items));
  EXPECT_NE(info["infotexts"][0].get<std::string>().find(", ControlNet 2: \"Module: ip-adapter_clip_sdxl_plus_vith"),
            std::string::npos) << info["infotexts"][0];
  EXPECT_EQ(info["extra_generation_params"]["ControlNet 1"].get<std::string>().rfind("Module: canny, Model: canny-sdxl, ", 0), 0u)
      << info["extra_generation_params"];
  EXPECT_NE(info["extra_generation_params"]["ControlNet 1"].get<std::string>().find(
                "Control Mode: ControlNet is more important"), std::string::npos);
  EXPECT_NE(info["extra_generation_params"]["ControlNet 0"].get<std::string>().find("Control Mode: Balanced"),
            std::string::npos);
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
  // The ranges are a manifest's scale, start and end, in the same words.
  EXPECT_EQ(ParseWithUnits(R"([{"model": "pose", "weight": 6, )" + image + "}]").status().message(),
            "alwayson_scripts.controlnet.args[0].weight: must be 0..5");
  EXPECT_EQ(ParseWithUnits(R"([{"model": "pose", "guidance_start": 0.8, "guidance_end": 0.5, )" + image + "}]")
                .status().message(),
            "alwayson_scripts.controlnet.args[0].guidance_start: must be below end (0.8 >= 0.5): the ControlNet "
            "would act on no step");
  // A picture is checked against the request's size as a manifest's control image is.
  EXPECT_EQ(Parse(absl::StrCat(R"({"width": 128, "height": 64, "alwayson_scripts": {"controlnet": {"args": [
                                   {"model": "pose", )", image, "}]}}}").c_str()).status().message(),
            "alwayson_scripts.controlnet.args[0].input_image: is 64x64, not the item's aspect ratio (128x64): crop it "
            "or set width and height to match");
  EXPECT_EQ(ParseWithUnits(R"([{"module": "ip-adapter_clip_sdxl", "model": "a", )" + image +
                           R"(}, {"module": "ip-adapter_clip_sdxl", "model": "b", )" + image + "}]")
                .status().message(),
            "alwayson_scripts.controlnet.args[1].model: one IP-Adapter per request: its units must share model and "
            "weight (a 1)");
  EXPECT_EQ(ParseWithUnits(R"([{"model": "pose", "control_mode": 1, )" + image + "}]").status().message(),
            "alwayson_scripts.controlnet.args[0].control_mode: 'My prompt is more important' is not supported "
            "(Balanced or ControlNet is more important)");
  EXPECT_EQ(ParseWithUnits(R"([{"model": "pose", "control_mode": "Loud", )" + image + "}]").status().message(),
            "alwayson_scripts.controlnet.args[0].control_mode: expected 0 (Balanced) or 2 (ControlNet is more "
            "important)");
  EXPECT_TRUE(ParseWithUnits(R"([{"model": "pose", "control_mode": 0, )" + image + "}]").ok());
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

// ---- LoRA tags, field names, img2img

TEST(A1111, LoraTagsLeaveThePromptAndBecomeTheEntrysLoras) {
  auto r = Parse(R"({"prompt": "a knight, <lora:pixel-art:0.7> <lora:outline>", "steps": 4})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->entry.image.prompt(), "a knight,  ");  // A1111 takes out the tags, not the spaces
  ASSERT_EQ(r->entry.sampling.loras_size(), 2);
  EXPECT_EQ(r->entry.sampling.loras(0).name(), "pixel-art");
  EXPECT_EQ(r->entry.sampling.loras(0).strength(), 0.7);
  EXPECT_EQ(r->entry.sampling.loras(1).name(), "outline");
  EXPECT_EQ(r->entry.sampling.loras(1).strength(), 1.0);
  EXPECT_EQ(Txt2ImgParameters(*r)["prompt"], "a knight, <lora:pixel-art:0.7> <lora:outline>");  // echoed as asked
  EXPECT_TRUE(CheckPromptLoras(*r, {"outline", "pixel-art"}).ok());
}

TEST(A1111, ALoraNoWorkerHasIsNotFoundByName) {
  auto r = Parse(R"({"prompt": "<lora:pixel-art-xl:0.7> a knight"})");
  ASSERT_TRUE(r.ok()) << r.status();
  const absl::Status missing = CheckPromptLoras(*r, {"outline"});
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.message(),
            "prompt: <lora:pixel-art-xl>: no connected worker has LoRA 'pixel-art-xl' in its LoRA folder (outline)");
}

TEST(A1111, LoraTagMistakesAreNamed) {
  EXPECT_EQ(Parse(R"({"prompt": "<lora:px:strong>"})").status().message(),
            "prompt: <lora:px:strong>: the weight must be a number");
  EXPECT_EQ(Parse(R"({"prompt": "<lora:px:0.8:0.5>"})").status().message(),
            "prompt: <lora:px:0.8:0.5>: one weight per LoRA (separate text-encoder and UNet weights are not supported)");
  EXPECT_EQ(Parse(R"({"prompt": "<lora:px:11>"})").status().message(), "prompt <lora:px>: must be -10..10");
  EXPECT_EQ(Parse(R"({"prompt": "<lora:../px:1>"})").status().message(),
            "prompt <lora:../px>: must be a file name of the workers' LoRA folder: A-Z a-z 0-9 . _ -, no folders");
}

TEST(A1111, AnUnknownFieldIsRefusedNamingIt) {
  EXPECT_EQ(Parse(R"({"promt": "a knight"})").status().message(), "promt: unknown field (did you mean prompt?)");
  EXPECT_EQ(Parse(R"({"prompt": "a knight", "frobnicate": 1})").status().message(), "frobnicate: unknown field");
  EXPECT_EQ(Parse(R"({"init_images": []})").status().message(), "init_images: a field of /sdapi/v1/img2img, not of txt2img");
}

TEST(A1111, FieldsA1111ClientsSendThatChangeNothingAreListedInInfo) {
  auto r = Parse(R"({"prompt": "coin", "styles": [], "eta": 0.5, "send_images": true, "save_images": null,
                     "steps": 4, "width": 64, "height": 64})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ignored, (std::vector<std::string>{"eta", "send_images", "styles"}));
  const auto info = nlohmann::json::parse(Txt2ImgInfo(*r, "tiny-sdxl", {}));
  EXPECT_EQ(info["ignored_fields"], nlohmann::json({"eta", "send_images", "styles"}));
}

absl::StatusOr<Txt2Img> ParseImg(const std::string& json) {
  return ParseImg2Img(nlohmann::json::parse(json), ManifestLimits{}, 64, [] { return uint64_t{5}; });
}

std::string InitImages(uint8_t shade) { return absl::StrCat(R"("init_images": [")", Base64Png(shade), R"("])"); }

TEST(A1111, Img2ImgStartsFromItsImageAtItsSize) {
  auto r = ParseImg(absl::StrCat(R"({"prompt": "barrel", "denoising_strength": 0.4, "steps": 4, "resize_mode": 0,
                                        "mask_blur": 4, )", InitImages(90), "}"));
  ASSERT_TRUE(r.ok()) << r.status();
  const auto files = Txt2ImgFiles(*r);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(absl::Base64Escape(files.at("init.png")), Base64Png(90));
  EXPECT_EQ(r->entry.image.init_image_sha256(), Sha256Hex(files.at("init.png")));
  EXPECT_EQ(r->entry.sampling.strength(), 0.4);
  EXPECT_EQ(r->entry.sampling.width(), 64);  // the image's size when the request gives none
  EXPECT_EQ(r->ignored, std::vector<std::string>{"mask_blur"});
  auto m = Txt2ImgManifest(*r, "tiny-sdxl", ManifestLimits{}, 2);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->name, "img2img");
  EXPECT_EQ(m->preview_every, 2);
  EXPECT_EQ(Txt2ImgParameters(*r)["denoising_strength"], 0.4);
}

TEST(A1111, Img2ImgStretchesAnImageOfAnotherSizeToTheRequestsAsJustResize) {
  // Left half black, right half white: stretched, the middle column stays the boundary.
  RasterImage wide{96, 64, 3, std::vector<uint8_t>(96 * 64 * 3, 0)};
  for (int y = 0; y < 64; ++y) {
    for (int x = 48; x < 96; ++x) std::fill_n(wide.at(x, y), 3, 255);
  }
  auto r = ParseImg(absl::StrCat(R"({"width": 64, "height": 64, "resize_mode": 0, "init_images": [")",
                                 absl::Base64Escape(*EncodePng(wide)), R"("]})"));
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string init = Txt2ImgFiles(*r).at("init.png");
  EXPECT_EQ(r->entry.image.init_image_sha256(), Sha256Hex(init));
  auto start = DecodePng(init);
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(start->width, 64);
  EXPECT_EQ(start->height, 64);
  EXPECT_EQ(start->at(31, 10)[0], 0);
  EXPECT_EQ(start->at(32, 10)[0], 255);
  EXPECT_EQ(r->entry.sampling.width(), 64);
}

TEST(A1111, Img2ImgRefusesWhatItCannotDoNamingTheField) {
  EXPECT_EQ(ParseImg(absl::StrCat(R"({"resize_mode": 1, )", InitImages(1), "}")).status().message(),
            "resize_mode: 1 is not supported; only 0 (Just resize: stretched to width x height)");
  EXPECT_EQ(ParseImg(absl::StrCat(R"({"mask": "abc", )", InitImages(1), "}")).status().message(),
            "mask: not supported by spriteforge");
  EXPECT_EQ(ParseImg(R"({"prompt": "x"})").status().message(), "init_images: a list of one base64 PNG is required");
  EXPECT_EQ(ParseImg(absl::StrCat(R"({"width": 100, )", InitImages(1), "}")).status().message(),
            "width: must be a multiple of 8 in 64..2048");
  EXPECT_EQ(ParseImg(absl::StrCat(R"({"denoising_strength": 0, )", InitImages(1), "}")).status().message(),
            "denoising_strength: must be in (0, 1]");
  EXPECT_EQ(ParseImg(absl::StrCat(R"({"enable_hr": false, )", InitImages(1), "}")).status().message(),
            "enable_hr: unknown field");
}

// ---- Options and progress, per caller

TEST(A1111, EachCallerChoosesItsOwnModel) {
  A1111Sessions sessions;
  const std::set<std::string> served = {"tiny-sdxl", "pixel-xl"};
  ASSERT_TRUE(sessions.SetOptions("alice", nlohmann::json::parse(R"({"sd_model_checkpoint": "pixel-xl [0a1b]"})"),
                                  served).ok());
  EXPECT_EQ(sessions.OptionsOf("alice").model, "pixel-xl");
  EXPECT_EQ(sessions.OptionsOf("bob").model, "");
  EXPECT_EQ(sessions.OptionsJson("alice", "pixel-xl")["sd_model_checkpoint"], "pixel-xl");
  EXPECT_EQ(sessions.SetOptions("bob", {{"sd_model_checkpoint", "sd15"}}, served).message(),
            "sd_model_checkpoint: 'sd15' is not served by any connected worker (pixel-xl, tiny-sdxl)");
  EXPECT_EQ(sessions.SetOptions("alice", {{"sd_model_checkpoint", "tiny-sdxl"}, {"sd_vae", "x"}}, served).message(),
            "sd_vae: not an option spriteforge has (sd_model_checkpoint, show_progress_every_n_steps, "
            "live_previews_enable)");
  EXPECT_EQ(sessions.OptionsOf("alice").model, "pixel-xl");  // a refused POST changes nothing
  ASSERT_TRUE(sessions.SetOptions("alice", {{"show_progress_every_n_steps", 1}}, served).ok());
  EXPECT_EQ(sessions.OptionsOf("alice").preview_every, 1);
  EXPECT_EQ(sessions.OptionsOf("bob").preview_every, 10);  // A1111's default
}

TEST(A1111, ProgressFollowsTheCallersJobAndShowsItsPreview) {
  A1111Sessions sessions;
  auto r = Parse(R"({"prompt": "coin", "steps": 4, "batch_size": 2, "n_iter": 2})");
  ASSERT_TRUE(r.ok()) << r.status();
  const auto start = std::chrono::steady_clock::now();
  const int64_t call = sessions.Begin("alice", *r, start);
  v1::JobEvent event;
  event.mutable_job()->mutable_counts()->set_done(2);
  event.mutable_progress()->add_indices(2);
  event.mutable_progress()->add_indices(3);
  event.mutable_progress()->set_step(2);
  event.mutable_progress()->set_total_steps(4);
  sessions.Apply("alice", call, event);
  v1::JobEvent preview;
  preview.mutable_preview()->set_png("tiny png");
  sessions.Apply("alice", call, preview);

  const nlohmann::json p = sessions.Progress("alice", false, start + std::chrono::seconds(3));
  EXPECT_EQ(p["progress"], 0.75);  // two images done, two half-way, of four
  EXPECT_EQ(p["eta_relative"], 1.0);
  EXPECT_EQ(p["state"]["job"], "Batch 2 out of 2");
  EXPECT_EQ(p["state"]["sampling_step"], 2);
  EXPECT_EQ(p["state"]["sampling_steps"], 4);
  EXPECT_EQ(p["current_image"], absl::Base64Escape("tiny png"));
  EXPECT_TRUE(sessions.Progress("alice", true, start)["current_image"].is_null());
  EXPECT_EQ(sessions.Progress("bob", false, start)["state"]["job_count"], 0);  // another caller's job is not bob's

  sessions.End("alice", call);
  const nlohmann::json idle = sessions.Progress("alice", false, start);
  EXPECT_EQ(idle["progress"], 0.0);
  EXPECT_EQ(idle["state"]["job"], "");
  EXPECT_TRUE(idle["current_image"].is_null());
}

}  // namespace
}  // namespace spriteforge::coordinator::http
