// ComfyUI API-format workflows as jobs: the workflows in tests/common/comfyui (saved from a
// sprite project built on ComfyUI) import as the jobs their equivalent manifests describe,
// --set / --model-map / --count rewrite a workflow as ComfyUI would read it, and a bad
// workflow is refused naming the node and input.
#include <gtest/gtest.h>

#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/str_cat.h"
#include "common/comfyui/workflow.h"
#include "common/files.h"
#include "common/manifest.h"

namespace spriteforge::comfyui {
namespace {

using json = nlohmann::json;

json Fixture(const std::string& name) {
  auto text = ReadFile(absl::StrCat(SPRITEFORGE_SOURCE_DIR, "/tests/common/comfyui/", name, ".json"));
  EXPECT_TRUE(text.ok()) << text.status();
  auto workflow = ParseWorkflow(text.value_or("{}"));
  EXPECT_TRUE(workflow.ok()) << workflow.status();
  return workflow.value_or(json::object());
}

// Stands in for the client's upload: the start image beside the workflow, 96x64.
absl::StatusOr<ManifestFile> Files(const std::string& path, ManifestFileKind kind) {
  if (path == "input_image.png" && kind == ManifestFileKind::kImage) return ManifestFile{std::string(64, 'b'), 500, 96, 64};
  return absl::NotFoundError(absl::StrCat(path, ": no such file"));
}

std::string ImportError(const json& workflow) {
  auto job = ImportWorkflow(workflow, "w.json", {}, Files);
  return job.ok() ? "imported" : std::string(job.status().message());
}

void ExpectSameEntries(const Manifest& a, const Manifest& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.image_count, b.image_count);
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    using google::protobuf::util::MessageDifferencer;
    EXPECT_TRUE(MessageDifferencer::Equals(a.entries[i].sampling, b.entries[i].sampling))
        << a.entries[i].sampling.DebugString() << " vs " << b.entries[i].sampling.DebugString();
    EXPECT_TRUE(MessageDifferencer::Equals(a.entries[i].image, b.entries[i].image))
        << a.entries[i].image.DebugString() << " vs " << b.entries[i].image.DebugString();
    EXPECT_EQ(a.entries[i].count, b.entries[i].count);
    EXPECT_EQ(a.entries[i].seed, b.entries[i].seed);
  }
}

TEST(ComfyUiWorkflow, EveryFixtureImports) {
  for (const char* name : {"txt2img_sdxl", "img2img_sdxl", "pixel_art_better", "pixel_art_lora", "batch_optimized",
                           "sprite_optimized"}) {
    json workflow = Fixture(name);
    ASSERT_TRUE(ApplyModelMap(workflow, "sd_xl_base_1.0.safetensors=tiny-sdxl").ok());
    auto job = ImportWorkflow(workflow, name, {}, Files);
    ASSERT_TRUE(job.ok()) << name << ": " << job.status();
    EXPECT_EQ(job->model, "tiny-sdxl") << name;
    EXPECT_EQ(job->entries.size(), 1u) << name;
  }
}

TEST(ComfyUiWorkflow, ALoraWorkflowIsTheJobItsManifestDescribes) {
  json workflow = Fixture("pixel_art_lora");
  ASSERT_TRUE(ApplyModelMap(workflow, "sd_xl_base_1.0.safetensors=tiny-sdxl").ok());
  auto job = ImportWorkflow(workflow, "pixel_art_lora.json");
  ASSERT_TRUE(job.ok()) << job.status();
  auto manifest = ParseManifestEntries(R"(name: dgx_pixels_lora
model: tiny-sdxl
defaults: {width: 512, height: 512, steps: 30, cfg: 7.0, sampler: euler_ancestral, schedule: normal}
items:
  - prompt: "masterpiece, best quality, 8bit character sprite, retro game, isometric view, game asset, crisp pixels, limited palette"
    negative: "blurry, smooth, antialiased, 3d render, realistic, photo, gradient, soft edges, watermark, detailed, painting"
    lora: [{name: pixel-art-xl-v1.1, strength: 1.0}]
    seed: 42
)", "m.yaml");
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  ExpectSameEntries(*job, *manifest);
}

TEST(ComfyUiWorkflow, ABatchIsOneEntryOfBatchSizeImagesWithKarras) {
  auto job = ImportWorkflow(Fixture("batch_optimized"), "b.json");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->name, "batch_optimized");
  EXPECT_EQ(job->model, "sd_xl_base_1.0");  // the checkpoint's name without its extension
  EXPECT_EQ(job->image_count, 8);
  EXPECT_EQ(job->entries[0].seed, 42u);
  EXPECT_EQ(job->entries[0].sampling.sampler(), v1::SAMPLER_EULER_ANCESTRAL);
  EXPECT_EQ(job->entries[0].sampling.schedule(), v1::SCHEDULE_KARRAS);
  EXPECT_EQ(job->entries[0].sampling.cfg(), 8.0);
  EXPECT_EQ(job->entries[0].sampling.width(), 1024);
}

TEST(ComfyUiWorkflow, Img2ImgTakesTheStartImagesSizeAndDenoiseAsStrength) {
  json workflow = Fixture("img2img_sdxl");
  ASSERT_TRUE(SetImageCount(workflow, 3).ok());  // a RepeatLatentBatch before the sampler
  auto job = ImportWorkflow(workflow, "i.json", {}, Files);
  ASSERT_TRUE(job.ok()) << job.status();
  const ManifestEntry& e = job->entries[0];
  EXPECT_EQ(e.image.init_image_sha256(), std::string(64, 'b'));
  EXPECT_EQ(e.sampling.width(), 96);
  EXPECT_EQ(e.sampling.height(), 64);
  EXPECT_EQ(e.sampling.strength(), 0.75);
  EXPECT_EQ(e.count, 3);
  EXPECT_EQ(ImportError(Fixture("img2img_sdxl")).find("imported"), 0u);
  EXPECT_EQ(std::string(ImportWorkflow(Fixture("img2img_sdxl"), "i.json").status().message()),
            "i.json: node 4 (LoadImage).image: files given by path must be uploaded: submit the manifest with the "
            "spriteforge client");
}

TEST(ComfyUiWorkflow, SettingsRewriteInputsAsComfyUiReadsThem) {
  json workflow = Fixture("txt2img_sdxl");
  ASSERT_TRUE(ApplySetting(workflow, "5.seed=7").ok());
  ASSERT_TRUE(ApplySetting(workflow, "5.steps=4").ok());
  ASSERT_TRUE(ApplySetting(workflow, "4.width=64").ok());
  ASSERT_TRUE(ApplySetting(workflow, "2.text=a red potion").ok());
  ASSERT_TRUE(SetImageCount(workflow, 2).ok());
  auto job = ImportWorkflow(workflow, "t.json");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->entries[0].seed, 7u);
  EXPECT_EQ(job->entries[0].sampling.steps(), 4);
  EXPECT_EQ(job->entries[0].sampling.width(), 64);
  EXPECT_EQ(job->entries[0].image.prompt(), "a red potion");
  EXPECT_EQ(job->image_count, 2);
  EXPECT_EQ(ApplySetting(workflow, "99.seed=1").message(), "--set 99.seed=1: the workflow has no node 99");
  EXPECT_EQ(ApplySetting(workflow, "5.model=1").message(), "--set 5.model=1: node 5.model is a link, not a value");
  EXPECT_EQ(ApplySetting(workflow, "seed").message(), "--set seed: expected NODE.INPUT=VALUE");
}

TEST(ComfyUiWorkflow, AnAdvancedSamplerStartingLateIsImg2ImgAtTheRestOfTheSteps) {
  json workflow = Fixture("img2img_sdxl");
  workflow["6"] = {{"class_type", "KSamplerAdvanced"},
                   {"inputs",
                    {{"add_noise", "enable"}, {"noise_seed", 5}, {"steps", 20}, {"cfg", 6.0}, {"sampler_name", "euler"},
                     {"scheduler", "simple"}, {"start_at_step", 5}, {"end_at_step", 10000},
                     {"return_with_leftover_noise", "disable"}, {"model", {"1", 0}}, {"positive", {"2", 0}},
                     {"negative", {"3", 0}}, {"latent_image", {"5", 0}}}}};
  auto job = ImportWorkflow(workflow, "a.json", {}, Files);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->entries[0].sampling.strength(), 0.75);
  EXPECT_EQ(job->entries[0].sampling.schedule(), v1::SCHEDULE_TRAILING);
  EXPECT_EQ(job->entries[0].seed, 5u);
  workflow["6"]["inputs"]["end_at_step"] = 15;
  EXPECT_EQ(ImportError(workflow),
            "w.json: node 6 (KSamplerAdvanced).end_at_step: must be at least steps (20): spriteforge samples to the end");
}

TEST(ComfyUiWorkflow, AnUnknownSamplerIsRefusedNamingTheNodeAndInput) {
  json workflow = Fixture("txt2img_sdxl");
  workflow["5"]["inputs"]["sampler_name"] = "dpmpp_3m_sde";
  EXPECT_EQ(ImportError(workflow),
            "w.json: node 5 (KSampler).sampler_name: \"dpmpp_3m_sde\" is not a sampler spriteforge has (euler, "
            "euler_ancestral, dpmpp_2m, lcm)");
  workflow["5"]["inputs"]["sampler_name"] = "euler";
  workflow["5"]["inputs"]["scheduler"] = "exponential";
  EXPECT_EQ(ImportError(workflow),
            "w.json: node 5 (KSampler).scheduler: \"exponential\" is not a scheduler spriteforge has (normal, karras, "
            "sgm_uniform, simple)");
}

TEST(ComfyUiWorkflow, AnUnknownNodeIsRefusedNamingIt) {
  json workflow = Fixture("txt2img_sdxl");
  workflow["9"] = {{"class_type", "UpscaleModelLoader"}, {"inputs", {{"model_name", "4x.pth"}}}};
  EXPECT_EQ(ImportError(workflow).substr(0, 73),
            "w.json: node 9 (UpscaleModelLoader): is not a node spriteforge has (Check");
}

TEST(ComfyUiWorkflow, ADanglingLinkIsRefusedNamingTheInput) {
  json workflow = Fixture("txt2img_sdxl");
  workflow["6"]["inputs"]["samples"] = {"12", 0};
  EXPECT_EQ(ImportError(workflow), "w.json: node 6 (VAEDecode).samples: links to node 12, which the workflow does not have");
  workflow["6"]["inputs"]["samples"] = {"5", 3};
  EXPECT_EQ(ImportError(workflow),
            "w.json: node 6 (VAEDecode).samples: links to output 3 of node 5 (KSampler), which has 1 outputs");
}

TEST(ComfyUiWorkflow, ACycleIsRefusedNamingTheLinkThatClosesIt) {
  json workflow = Fixture("txt2img_sdxl");
  workflow["4"] = {{"class_type", "RepeatLatentBatch"}, {"inputs", {{"samples", {"5", 0}}, {"amount", 2}}}};
  EXPECT_EQ(ImportError(workflow),
            "w.json: node 5 (KSampler).latent_image: links back to node 4: the workflow has a cycle");
}

TEST(ComfyUiWorkflow, AWrongInputTypeIsRefusedNamingTheInput) {
  json workflow = Fixture("txt2img_sdxl");
  workflow["5"]["inputs"]["positive"] = {"1", 0};
  EXPECT_EQ(ImportError(workflow),
            "w.json: node 5 (KSampler).positive: takes CONDITIONING, but output 0 of node 1 (CheckpointLoaderSimple) is MODEL");
  workflow = Fixture("txt2img_sdxl");
  workflow["5"]["inputs"]["steps"] = "twenty";
  EXPECT_EQ(ImportError(workflow), "w.json: node 5 (KSampler).steps: \"twenty\" is not a whole number");
  workflow["5"]["inputs"]["steps"] = 500;
  EXPECT_EQ(ImportError(workflow), "w.json: node 5 (KSampler).steps: must be 1..150");  // the manifest's own check
}

TEST(ComfyUiWorkflow, WhatSpriteforgeCannotRenderAsComfyUiWouldIsRefused) {
  json workflow = Fixture("pixel_art_lora");
  workflow["2"]["inputs"]["strength_clip"] = 0.5;
  EXPECT_EQ(ImportError(workflow),
            "w.json: node 2 (LoraLoader).strength_clip: must equal strength_model (1): spriteforge applies one strength "
            "to the model and CLIP");
  workflow = Fixture("txt2img_sdxl");
  workflow["5"]["inputs"]["denoise"] = 0.5;
  EXPECT_EQ(ImportError(workflow), "w.json: node 5 (KSampler).denoise: must be 1 without a start image (VAEEncode)");
  workflow = Fixture("txt2img_sdxl");
  workflow["5"]["inputs"]["sampler_name"] = "lcm";
  workflow["5"]["inputs"]["scheduler"] = "karras";
  EXPECT_EQ(ImportError(workflow).substr(0, 37), "w.json: node 5 (KSampler).scheduler: ");
  EXPECT_NE(ImportError(workflow).find("lcm"), std::string::npos);
  workflow = Fixture("txt2img_sdxl");
  workflow.erase("7");
  EXPECT_EQ(ImportError(workflow), "w.json: workflow: has no SaveImage node: nothing would be saved");
}

TEST(ComfyUiWorkflow, SdxlTextEncodingNeedsOneTextAndTheImagesOwnSize) {
  json workflow = Fixture("txt2img_sdxl");
  workflow["2"] = {{"class_type", "CLIPTextEncodeSDXL"},
                   {"inputs",
                    {{"clip", {"1", 1}}, {"width", 1024}, {"height", 1024}, {"crop_w", 0}, {"crop_h", 0},
                     {"target_width", 1024}, {"target_height", 1024}, {"text_g", "a knight"}, {"text_l", "a knight"}}}};
  auto job = ImportWorkflow(workflow, "s.json");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->entries[0].image.prompt(), "a knight");
  workflow["2"]["inputs"]["width"] = 4096;
  EXPECT_EQ(ImportError(workflow), "w.json: node 2 (CLIPTextEncodeSDXL).width: must be 1024: spriteforge conditions on "
                                   "the image's own size (1024x1024, no crop)");
}

// txt2img with cubiq's IPAdapterAdvanced between the checkpoint and the sampler.
json WithIpAdapter() {
  json workflow = Fixture("txt2img_sdxl");
  workflow["10"] = {{"class_type", "IPAdapterModelLoader"},
                    {"inputs", {{"ipadapter_file", "ip-adapter-plus_sdxl_vit-h.safetensors"}}}};
  workflow["11"] = {{"class_type", "CLIPVisionLoader"},
                    {"inputs", {{"clip_name", "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"}}}};
  workflow["12"] = {{"class_type", "LoadImage"}, {"inputs", {{"image", "input_image.png"}}}};
  workflow["13"] = {{"class_type", "IPAdapterAdvanced"},
                    {"inputs",
                     {{"model", {"1", 0}}, {"ipadapter", {"10", 0}}, {"image", {"12", 0}}, {"weight", 0.6},
                      {"weight_type", "linear"}, {"combine_embeds", "concat"}, {"start_at", 0.0}, {"end_at", 1.0},
                      {"embeds_scaling", "V only"}, {"clip_vision", {"11", 0}}}}};
  workflow["5"]["inputs"]["model"] = {"13", 0};
  return workflow;
}

TEST(ComfyUiWorkflow, AnIpAdapterOnTheModelPathIsTheEntrysReference) {
  auto job = ImportWorkflow(WithIpAdapter(), "ip.json", {}, Files);
  ASSERT_TRUE(job.ok()) << job.status();
  const ManifestEntry& e = job->entries[0];
  ASSERT_TRUE(e.sampling.has_ip_adapter());
  EXPECT_EQ(e.sampling.ip_adapter().name(), "ip-adapter-plus_sdxl_vit-h");
  EXPECT_EQ(e.sampling.ip_adapter().encoder(), "CLIP-ViT-H-14-laion2B-s32B-b79K");
  EXPECT_DOUBLE_EQ(e.sampling.ip_adapter().scale(), 0.6);
  ASSERT_EQ(e.image.reference_sha256_size(), 1);
  EXPECT_EQ(e.image.reference_sha256(0), std::string(64, 'b'));
  EXPECT_EQ(e.sampling.width(), 1024);  // a reference picture does not set the size
}

TEST(ComfyUiWorkflow, IpAdapterSettingsTheEngineDoesNotHaveAreRefusedNamingTheInput) {
  json workflow = WithIpAdapter();
  workflow["13"]["inputs"]["start_at"] = 0.2;
  EXPECT_EQ(ImportError(workflow),
            "w.json: node 13 (IPAdapterAdvanced).start_at: must be 0: spriteforge applies the IP-Adapter on every step");
  workflow = WithIpAdapter();
  workflow["13"]["inputs"]["weight_type"] = "ease in";
  EXPECT_EQ(ImportError(workflow),
            "w.json: node 13 (IPAdapterAdvanced).weight_type: \"ease in\" is not a weight type spriteforge has (linear, "
            "standard): it applies one weight in every layer");
  workflow = WithIpAdapter();
  workflow["13"]["inputs"]["embeds_scaling"] = "K+V";
  EXPECT_EQ(ImportError(workflow), "w.json: node 13 (IPAdapterAdvanced).embeds_scaling: \"K+V\" is not supported: "
                                   "spriteforge scales the values only (V only)");
  workflow = WithIpAdapter();
  workflow["14"] = {{"class_type", "IPAdapterUnifiedLoader"}, {"inputs", {{"model", {"1", 0}}, {"preset", "PLUS (high strength)"}}}};
  EXPECT_EQ(ImportError(workflow),
            "w.json: node 14 (IPAdapterUnifiedLoader): is not read by spriteforge: it picks its files by preset; name "
            "them with IPAdapterModelLoader (and CLIPVisionLoader) instead");
}

TEST(ComfyUiWorkflow, WorkflowsAreToldFromManifestsByContent) {
  EXPECT_TRUE(IsWorkflow(Fixture("txt2img_sdxl").dump()));
  EXPECT_TRUE(IsWorkflow(json{{"prompt", Fixture("txt2img_sdxl")}, {"client_id", "x"}}.dump()));
  EXPECT_FALSE(IsWorkflow(R"({"name": "class_type", "model": "m", "items": [{"prompt": "p"}]})"));
  EXPECT_FALSE(IsWorkflow("name: potions\nitems: []\n"));
}

}  // namespace
}  // namespace spriteforge::comfyui
