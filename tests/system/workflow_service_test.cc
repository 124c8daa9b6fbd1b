// LoRAs and img2img through the service: a manifest naming a LoRA by path (uploaded by
// the client), a LoRA by name (the worker's --lora-dir) and a start image runs through a
// real coordinator and CPU worker on the golden tiny model, and every image equals what
// spriteforge-generate makes with the same options.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/png.h"
#include "tests/system/cluster.h"

namespace spriteforge::testing {
namespace {

namespace fs = std::filesystem;

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Workflows() { return GoldenModel() + "/../tiny-sdxl-workflows"; }

// Files directly in `dir` (not its subfolders).
int FilesIn(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

int Occurrences(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Largest difference of one 8-bit channel between two PNG files of the same size.
int WorstDifference(const std::string& a_path, const std::string& b_path) {
  auto a = ReadPngFile(a_path);
  auto b = ReadPngFile(b_path);
  EXPECT_TRUE(a.ok()) << a_path;
  EXPECT_TRUE(b.ok()) << b_path;
  if (!a.ok() || !b.ok() || a->pixels.size() != b->pixels.size()) return 256;
  int worst = 0;
  for (size_t i = 0; i < a->pixels.size(); ++i) worst = std::max(worst, std::abs(a->pixels[i] - b->pixels[i]));
  return worst;
}

// spriteforge-generate on the golden model with `options` for one prompt and seed.
std::string Generate(const std::string& out, const std::vector<std::string>& options) {
  const std::string g = GoldenModel();
  std::vector<std::string> argv = {SPRITEFORGE_GENERATE_BIN, "--model", g + "/tiny-sdxl.safetensors", "--config",
                                   g + "/diffusers", "--tokenizer", g + "/tokenizer", "--out", out};
  argv.insert(argv.end(), options.begin(), options.end());
  auto r = RunCommand(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

constexpr const char* kKnight = "a pixel art knight with a sword, 16-bit sprite";
constexpr const char* kPotion = "red potion bottle icon, pixel art";

const char* kManifest = R"(name: workflows
model: tiny-sdxl
defaults: {width: 128, height: 128, steps: 4, cfg: 5.0, sampler: euler, schedule: normal}
items:
  - prompt: "a pixel art knight with a sword, 16-bit sprite"
    negative: blurry
    seed: 42
    lora: [{path: files/lora-diffusers.safetensors, strength: 0.75}]
  - prompt: "a pixel art knight with a sword, 16-bit sprite"
    negative: blurry
    seed: 42
    lora: [{name: pixel-knight, strength: 0.75}]
  - prompt: "red potion bottle icon, pixel art"
    seed: 99
    init_image: files/init.png
    strength: 0.6
    overrides: {steps: 10}
)";

TEST(WorkflowServiceTest, LorasByPathAndNameAndAStartImageMatchTheGenerateCommand) {
  if (GoldenModel().empty() || !fs::exists(Workflows() + "/init.png")) {
    if (std::getenv("SPRITEFORGE_REQUIRE_GOLDEN")) FAIL() << "golden folders missing";
    GTEST_SKIP() << "golden folders missing: set SPRITEFORGE_GOLDEN";
  }
  Cluster cluster(TempDir("workflows"));
  const std::string dir = cluster.dir();
  fs::create_directories(dir + "/job/files");
  fs::create_directories(dir + "/loras");
  fs::copy_file(Workflows() + "/lora-diffusers.safetensors", dir + "/job/files/lora-diffusers.safetensors");
  fs::copy_file(Workflows() + "/init.png", dir + "/job/files/init.png");
  fs::copy_file(Workflows() + "/lora-kohya.safetensors", dir + "/loras/pixel-knight.safetensors");
  const std::string manifest = dir + "/job/workflows.yaml";
  std::ofstream(manifest) << kManifest;

  cluster.StartCoordinator();
  cluster.StartWorker("w1", {"--lora-dir", dir + "/loras", "--cache-dir", dir + "/cache"});
  auto submitted = cluster.Client({"submit", manifest, "--wait"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = Trim(submitted.out);
  ASSERT_EQ(cluster.Job(job).job().state(), v1::JOB_DONE);
  const std::string out = cluster.output() + "/" + job;

  // The same images as spriteforge-generate with the same options.
  const std::string workflows = Workflows();
  Generate(dir + "/ref-path", {"--prompt", kKnight, "--negative", "blurry", "--seed", "42", "--width", "128",
                               "--height", "128", "--steps", "4", "--cfg", "5", "--lora",
                               workflows + "/lora-diffusers.safetensors:0.75"});
  Generate(dir + "/ref-name", {"--prompt", kKnight, "--negative", "blurry", "--seed", "42", "--width", "128",
                               "--height", "128", "--steps", "4", "--cfg", "5", "--lora",
                               workflows + "/lora-kohya.safetensors:0.75"});
  Generate(dir + "/ref-img2img", {"--prompt", kPotion, "--seed", "99", "--steps", "10", "--cfg", "5",
                                  "--init-image", workflows + "/init.png", "--strength", "0.6"});
  EXPECT_EQ(WorstDifference(out + "/0_42.png", dir + "/ref-path/0_42.png"), 0);
  EXPECT_EQ(WorstDifference(out + "/1_42.png", dir + "/ref-name/0_42.png"), 0);
  EXPECT_EQ(WorstDifference(out + "/2_99.png", dir + "/ref-img2img/0_99.png"), 0);
  // A LoRA changes the image; img2img keeps the start image's look.
  EXPECT_GT(WorstDifference(out + "/0_42.png", dir + "/job/files/init.png"), 0);

  // The sidecar and the PNG's parameters say what ran, as A1111 writes it.
  auto lora_meta = nlohmann::json::parse(*ReadFile(out + "/0_42.json"));
  EXPECT_EQ(lora_meta["parameters"]["loras"][0]["name"], "lora-diffusers");
  EXPECT_EQ(lora_meta["parameters"]["loras"][0]["strength"], 0.75);
  EXPECT_EQ(lora_meta["parameters"]["loras"][0]["sha256"].get<std::string>().size(), 64u);
  auto named_meta = nlohmann::json::parse(*ReadFile(out + "/1_42.json"));
  EXPECT_EQ(named_meta["parameters"]["loras"][0]["name"], "pixel-knight");
  EXPECT_FALSE(named_meta["parameters"]["loras"][0].contains("sha256"));
  auto img2img_meta = nlohmann::json::parse(*ReadFile(out + "/2_99.json"));
  EXPECT_EQ(img2img_meta["parameters"]["denoising_strength"], 0.6);
  PngText text;
  ASSERT_TRUE(ReadPngFile(out + "/0_42.png", &text).ok());
  EXPECT_NE(text.at(0).second.find(std::string(kKnight) + " <lora:lora-diffusers:0.75>"), std::string::npos)
      << text.at(0).second;
  ASSERT_TRUE(ReadPngFile(out + "/2_99.png", &text).ok());
  EXPECT_NE(text.back().second.find("Denoising strength: 0.6"), std::string::npos) << text.back().second;

  // Submitted again: the uploads are kept once, the worker fetches nothing new.
  auto again = cluster.Client({"submit", manifest, "--wait"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(cluster.Job(Trim(again.out)).job().state(), v1::JOB_DONE);
  EXPECT_EQ(FilesIn(dir + "/blobs"), 2);  // beside the database: the LoRA and the image
  EXPECT_EQ(FilesIn(dir + "/cache"), 2);
  const std::string worker_log = Slurp(dir + "/worker-w1.log");
  EXPECT_EQ(Occurrences(worker_log, "fetched uploaded file"), 2) << worker_log;
  const std::string metrics = cluster.HttpGet("/metrics");
  EXPECT_NE(metrics.find("spriteforge_blob_fetches_total 2"), std::string::npos) << metrics;
  EXPECT_EQ(WorstDifference(out + "/0_42.png", cluster.output() + "/" + Trim(again.out) + "/0_42.png"), 0);
}

// The ComfyUI workflows of tests/common/comfyui, each submitted as it is with the client's
// flags (the tiny model for SDXL's checkpoint, 2 steps, 64 px, two images of the batch),
// against one manifest with the same settings: the same images, pixel for pixel.
struct ComfyCase {
  const char* fixture;
  const char *latent, *sampler, *positive, *negative;  // node ids; latent "" for img2img
  int count;
};
constexpr ComfyCase kComfyCases[] = {
    {"txt2img_sdxl", "4", "5", "2", "3", 1},     {"img2img_sdxl", "", "6", "2", "3", 1},
    {"pixel_art_better", "4", "5", "2", "3", 1}, {"pixel_art_lora", "5", "6", "3", "4", 1},
    {"batch_optimized", "4", "5", "2", "3", 2},  {"sprite_optimized", "4", "5", "2", "3", 1},
};

// The manifest item a case's workflow describes, from the workflow's own values.
nlohmann::json ComfyItem(const ComfyCase& c, const nlohmann::json& wf) {
  const nlohmann::json& k = wf[c.sampler]["inputs"];
  nlohmann::json item = {{"prompt", wf[c.positive]["inputs"]["text"]},
                         {"negative", wf[c.negative]["inputs"]["text"]},
                         {"seed", k["seed"]},
                         {"count", c.count},
                         {"overrides",
                          {{"steps", 2}, {"cfg", k["cfg"]}, {"sampler", k["sampler_name"]}, {"schedule", k["scheduler"]},
                           {"width", *c.latent ? 64 : 128}, {"height", *c.latent ? 64 : 128}}}};
  if (!*c.latent) item["init_image"] = "input_image.png", item["strength"] = k["denoise"];
  if (std::string(c.fixture) == "pixel_art_lora") item["lora"] = {{{"name", "pixel-art-xl-v1.1"}, {"strength", 1.0}}};
  return item;
}

std::vector<std::string> ImagesOf(Cluster& cluster, const std::string& job) {
  auto view = cluster.Job(job, true);
  EXPECT_EQ(view.job().state(), v1::JOB_DONE) << job;
  std::vector<std::pair<int, std::string>> items;
  for (const v1::Item& item : view.items()) items.push_back({item.index(), item.image_path()});
  std::sort(items.begin(), items.end());
  std::vector<std::string> paths;
  for (auto& [index, path] : items) paths.push_back(path);
  return paths;
}

TEST(WorkflowServiceTest, ComfyUiWorkflowsMakeTheirManifestsImages) {
  if (GoldenModel().empty() || !fs::exists(Workflows() + "/init.png")) {
    if (std::getenv("SPRITEFORGE_REQUIRE_GOLDEN")) FAIL() << "golden folders missing";
    GTEST_SKIP() << "golden folders missing: set SPRITEFORGE_GOLDEN";
  }
  Cluster cluster(TempDir("comfyui"));
  const std::string dir = cluster.dir();
  fs::create_directories(dir + "/job");
  fs::create_directories(dir + "/loras");
  fs::copy_file(Workflows() + "/init.png", dir + "/job/input_image.png");
  fs::copy_file(Workflows() + "/lora-kohya.safetensors", dir + "/loras/pixel-art-xl-v1.1.safetensors");
  cluster.StartCoordinator();
  cluster.StartWorker("w1", {"--lora-dir", dir + "/loras"});

  nlohmann::json manifest = {{"name", "comfyui"}, {"model", "tiny-sdxl"}, {"items", nlohmann::json::array()}};
  std::vector<std::string> jobs, from_workflows;
  for (const ComfyCase& c : kComfyCases) {
    const std::string path = dir + "/job/" + c.fixture + ".json";
    fs::copy_file(std::string(SPRITEFORGE_SOURCE_DIR) + "/tests/common/comfyui/" + c.fixture + ".json", path);
    manifest["items"].push_back(ComfyItem(c, nlohmann::json::parse(*ReadFile(path))));
    std::vector<std::string> args = {"submit", path, "--model-map",
                                     "sd_xl_base_1.0.safetensors=tiny-sdxl", "--set", std::string(c.sampler) + ".steps=2"};
    if (*c.latent) {
      args.insert(args.end(), {"--set", std::string(c.latent) + ".width=64", "--set", std::string(c.latent) + ".height=64"});
    }
    if (c.count > 1) args.insert(args.end(), {"--count", std::to_string(c.count)});
    auto submitted = cluster.Client(args);
    ASSERT_EQ(submitted.exit_code, 0) << c.fixture << ": " << submitted.err;
    jobs.push_back(Trim(submitted.out));
  }
  std::ofstream(dir + "/job/comfyui.json") << manifest.dump();
  auto submitted = cluster.Client({"submit", dir + "/job/comfyui.json"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  jobs.push_back(Trim(submitted.out));
  for (const std::string& job : jobs) {
    cluster.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_DONE || j.state() == v1::JOB_FAILED; });
  }
  for (size_t i = 0; i + 1 < jobs.size(); ++i) {
    for (const std::string& image : ImagesOf(cluster, jobs[i])) from_workflows.push_back(image);
  }
  const std::vector<std::string> from_manifest = ImagesOf(cluster, jobs.back());
  ASSERT_EQ(from_workflows.size(), 7u);
  ASSERT_EQ(from_manifest.size(), from_workflows.size());
  for (size_t i = 0; i < from_manifest.size(); ++i) {
    EXPECT_EQ(*ReadFile(from_workflows[i]), *ReadFile(from_manifest[i])) << from_workflows[i] << " vs " << from_manifest[i];
  }

  // A workflow spriteforge cannot render is refused before anything is uploaded, naming the node.
  auto bad = cluster.Client({"submit", dir + "/job/txt2img_sdxl.json", "--set", "5.sampler_name=dpmpp_3m_sde"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("node 5 (KSampler).sampler_name: \"dpmpp_3m_sde\" is not a sampler spriteforge has"),
            std::string::npos) << bad.err;
}

// Beside the golden model when the shared folder has it, else the copy in the source tree.
std::string Controls() {
  const std::string shared = GoldenModel() + "/../tiny-sdxl-controls";
  return fs::exists(shared) ? shared : std::string(SPRITEFORGE_SOURCE_DIR) + "/tests/golden/tiny-sdxl-controls";
}

// Two ControlNets (one uploaded folder, one by name from --controlnet-dir: the golden
// ControlNet under two names) and an uploaded IP-Adapter Plus with the image_encoder folder
// beside it, for two seeds.
const char* kControlsManifest = R"(name: controls
model: tiny-sdxl
defaults: {width: 128, height: 128, steps: 4, cfg: 5.0, sampler: euler_ancestral, schedule: normal}
items:
  - prompt: "a pixel art knight with a sword, 16-bit sprite"
    negative: blurry
    seed: 11
    count: 2
    controls:
      - {model: files/controlnet, image: files/pose.png, scale: 0.5, end: 0.75}
      - {model: posing, image: files/pose.png, scale: 0.4}
    reference: {images: [files/reference.png], adapter: files/ip-adapter-plus.safetensors, scale: 0.6}
)";

TEST(WorkflowServiceTest, TwoControlNetsAndAnIpAdapterMatchTheGenerateCommand) {
  const std::string controls = Controls();
  if (GoldenModel().empty() || !fs::exists(controls + "/controlnet/config.json")) {
    if (std::getenv("SPRITEFORGE_REQUIRE_GOLDEN")) FAIL() << "golden folders missing";
    GTEST_SKIP() << "golden folders missing: set SPRITEFORGE_GOLDEN";
  }
  Cluster cluster(TempDir("controls"));
  const std::string dir = cluster.dir();
  fs::create_directories(dir + "/job/files");
  fs::create_directories(dir + "/controlnets");
  fs::copy(controls + "/controlnet", dir + "/job/files/controlnet", fs::copy_options::recursive);
  fs::copy(controls + "/controlnet", dir + "/controlnets/posing", fs::copy_options::recursive);
  fs::copy(controls + "/image_encoder", dir + "/job/files/image_encoder", fs::copy_options::recursive);
  fs::copy_file(controls + "/ip-adapter-plus.safetensors", dir + "/job/files/ip-adapter-plus.safetensors");
  fs::copy_file(controls + "/reference.png", dir + "/job/files/reference.png");
  fs::copy_file(controls + "/pose_and_identity.euler_a.control0.png", dir + "/job/files/pose.png");
  const std::string manifest = dir + "/job/controls.yaml";
  std::ofstream(manifest) << kControlsManifest;

  cluster.StartCoordinator();
  cluster.StartWorker("w1", {"--controlnet-dir", dir + "/controlnets", "--cache-dir", dir + "/cache"});
  auto submitted = cluster.Client({"submit", manifest, "--wait"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = Trim(submitted.out);
  ASSERT_EQ(cluster.Job(job).job().state(), v1::JOB_DONE) << Slurp(dir + "/worker-w1.log");
  const std::string out = cluster.output() + "/" + job;
  const std::string pose = controls + "/pose_and_identity.euler_a.control0.png";
  // Both seeds in one engine call, as the worker's batch of two.
  const std::string ref = dir + "/ref";
  Generate(ref, {"--prompt", kKnight, "--prompt", kKnight, "--negative", "blurry", "--negative", "blurry", "--seed",
                 "11", "--seed", "12",
                 "--width", "128", "--height", "128", "--steps", "4", "--cfg", "5", "--sampler", "euler_ancestral",
                 "--controlnet", controls + "/controlnet:" + pose + ":0.5:0:0.75", "--controlnet",
                 controls + "/controlnet:" + pose + ":0.4", "--ip-adapter", controls + "/ip-adapter-plus.safetensors",
                 "--image-encoder", controls + "/image_encoder", "--reference", controls + "/reference.png:0.6"});
  EXPECT_EQ(WorstDifference(out + "/0_11.png", ref + "/0_11.png"), 0);
  EXPECT_EQ(WorstDifference(out + "/1_12.png", ref + "/1_12.png"), 0);
}

// A set whose first image is the others' reference (`reference: {first: true}`): the second
// pose equals the same pose made with the first image's PNG given as `reference.images`.
const char* kFirstReferenceSet = R"(name: sheet
model: tiny-sdxl
defaults: {width: 128, height: 128, steps: 4, cfg: 5.0, sampler: euler, schedule: normal}
items:
  - prompt: "a pixel art knight with a sword, 16-bit sprite"
    name: hero
    seed: 11
    set:
      poses: [walk_s_0, walk_w_0]
      model: files/controlnet
      scale: 0.5
      reference: {first: true, adapter: files/ip-adapter-plus.safetensors, scale: 0.6}
)";

TEST(WorkflowServiceTest, ASetsFirstImageIsTheReferenceOfTheOthers) {
  const std::string controls = Controls();
  if (GoldenModel().empty() || !fs::exists(controls + "/controlnet/config.json")) {
    if (std::getenv("SPRITEFORGE_REQUIRE_GOLDEN")) FAIL() << "golden folders missing";
    GTEST_SKIP() << "golden folders missing: set SPRITEFORGE_GOLDEN";
  }
  Cluster cluster(TempDir("first_reference"));
  const std::string dir = cluster.dir();
  fs::create_directories(dir + "/job/files");
  fs::copy(controls + "/controlnet", dir + "/job/files/controlnet", fs::copy_options::recursive);
  fs::copy(controls + "/image_encoder", dir + "/job/files/image_encoder", fs::copy_options::recursive);
  fs::copy_file(controls + "/ip-adapter-plus.safetensors", dir + "/job/files/ip-adapter-plus.safetensors");
  std::ofstream(dir + "/job/sheet.yaml") << kFirstReferenceSet;
  cluster.StartCoordinator();
  cluster.StartWorker("w1", {"--cache-dir", dir + "/cache"});
  auto submitted = cluster.Client({"submit", dir + "/job/sheet.yaml", "--wait"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = Trim(submitted.out);
  ASSERT_EQ(cluster.Job(job).job().state(), v1::JOB_DONE) << Slurp(dir + "/worker-w1.log");
  const std::string out = cluster.output() + "/" + job;
  // The second image names the first's PNG, which the coordinator served as a blob.
  const auto sidecar = nlohmann::json::parse(Slurp(out + "/1_11.json"));
  const auto& refs = sidecar["parameters"]["ip_adapter"]["reference_sha256"];
  ASSERT_EQ(refs.size(), 1u) << sidecar.dump();
  const std::string blob = fs::path(cluster.output()).parent_path().string() + "/blobs/" + refs[0].get<std::string>();
  EXPECT_EQ(Slurp(blob), Slurp(out + "/0_11.png"));

  // The same pose with that PNG as an ordinary reference image: the same pixels.
  fs::copy_file(out + "/0_11.png", dir + "/job/files/first.png");
  std::string given = kFirstReferenceSet;
  given.replace(given.find("[walk_s_0, walk_w_0]"), 20, "[walk_w_0]");
  given.replace(given.find("first: true"), 11, "images: [files/first.png]");
  std::ofstream(dir + "/job/given.yaml") << given;
  auto again = cluster.Client({"submit", dir + "/job/given.yaml", "--wait"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(WorstDifference(out + "/1_11.png", cluster.output() + "/" + Trim(again.out) + "/0_11.png"), 0);
}

TEST(WorkflowServiceTest, FilesThatAreMissingOrNotUploadedAreRefusedWithFileLineAndField) {
  Cluster cluster(TempDir("workflow_refusals"));
  cluster.StartCoordinator();
  const std::string manifest = cluster.dir() + "/missing.yaml";
  std::ofstream(manifest) << "name: m\nmodel: tiny-sdxl\nitems:\n  - prompt: knight\n    init_image: nowhere.png\n";
  auto r = cluster.Client({"submit", manifest});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(manifest + ":5: items[0].init_image: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nowhere.png: no such file"), std::string::npos) << r.err;

  // A request that names a path without uploading it: the coordinator never reads paths.
  v1::SubmitJobRequest request;
  request.set_manifest("name: m\nmodel: tiny-sdxl\nitems:\n  - prompt: knight\n    lora: [{path: /etc/passwd}]\n");
  request.set_manifest_name("direct.yaml");
  v1::SubmitJobResponse response;
  grpc::ClientContext ctx;
  const grpc::Status status = cluster.Stub().SubmitJob(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("direct.yaml:5: items[0].lora[0].path: /etc/passwd was not uploaded"),
            std::string::npos)
      << status.error_message();
}

}  // namespace
}  // namespace spriteforge::testing
