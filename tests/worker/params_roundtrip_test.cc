// Image parameters end to end in one process: a manifest submitted to the coordinator's core
// (a real SQLite store, reopened by a second core before any worker connects), the
// assignment it sends, and the engine request the worker's BatchRunner makes of it. A
// RecordingEngine stands in for the SDXL engine (it keeps the request and returns flat
// images); a FakeChannel stands in for the worker's gRPC stream.
#include <filesystem>
#include <fstream>

#include "common/sampling.h"
#include "coordinator/scheduling/planner.h"
#include "tests/coordinator/service/coordinator_fixture.h"
#include "worker/batch_runner.h"
#include "worker/blob_cache.h"

namespace spriteforge::coordinator {
namespace {

using testing::CoordinatorTest;
using testing::FakeChannel;

class RecordingEngine : public engine::Engine {
 public:
  absl::StatusOr<engine::BatchResult> Generate(const engine::BatchRequest& request, const engine::ProgressFn&,
                                               const engine::PreviewFn&) override {
    if (auto s = engine::ValidateRequest(request); !s.ok()) return s;
    requests.push_back(request);
    engine::BatchResult out;
    for (size_t i = 0; i < request.images.size(); ++i) {
      engine::Image image;
      image.width = request.width;
      image.height = request.height;
      image.rgb.assign(static_cast<size_t>(request.width) * request.height * 3, 200);
      out.images.push_back(std::move(image));
    }
    return out;
  }
  absl::StatusOr<engine::MemoryStats> Calibrate(int, int, int) override { return Memory(); }
  engine::MemoryStats Memory() const override { return {}; }
  engine::DeviceInfo Device() const override { return {"recording", "", false, 0}; }
  std::vector<engine::BatchRequest> requests;
};

class ParamsTest : public CoordinatorTest {
 protected:
  // Stores `bytes` as an upload; returns its sha256.
  std::string Upload(ManifestFileKind kind, const std::string& bytes) {
    auto upload = core_->blobs()->Begin(kind, bytes.size());
    EXPECT_TRUE(upload.ok()) << upload.status();
    EXPECT_TRUE((*upload)->Append(bytes).ok());
    auto ref = (*upload)->Finish();
    EXPECT_TRUE(ref.ok()) << ref.status();
    return ref->sha256;
  }
  std::string StartImage(int width, int height, uint8_t value) {
    RasterImage image{width, height, 3, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3, value)};
    return *EncodePng(image);
  }
  // A second core over the same database and folders: what the first stored is all it has.
  void Reopen() {
    core_.reset();
    auto store = Store::Open(dir_ + "/db.sqlite");
    ASSERT_TRUE(store.ok()) << store.status();
    CoordinatorOptions options;
    options.output_dir = dir_ + "/out";
    auto core = Coordinator::Create(std::move(*store), options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }
  // The worker's side: a LoRA folder with pixel.safetensors, and uploads copied from the
  // coordinator's blob folder (what FetchBlob would send).
  worker::InputFiles WorkerFiles() {
    const std::string lora_dir = dir_ + "/loras";
    std::filesystem::create_directories(lora_dir);
    std::ofstream(lora_dir + "/pixel.safetensors") << "stand-in";
    cache_ = std::make_unique<worker::BlobCache>(dir_ + "/cache", [this](const std::string& sha, const std::string& dest) {
      auto path = core_->blobs()->Path(sha);
      if (!path.ok()) return path.status();
      std::error_code ec;
      std::filesystem::copy_file(*path, dest, std::filesystem::copy_options::overwrite_existing, ec);
      return ec ? absl::InternalError(ec.message()) : absl::OkStatus();
    });
    std::filesystem::create_directories(dir_ + "/cache");
    return {lora_dir, cache_.get()};
  }
  std::unique_ptr<worker::BlobCache> cache_;
};

TEST_F(ParamsTest, EveryImageParameterArrivesInTheEngineRequest) {
  const std::string lora_sha = Upload(ManifestFileKind::kLora, std::string("\x02\0\0\0\0\0\0\0{}", 10));
  const std::string start_sha = Upload(ManifestFileKind::kImage, StartImage(192, 128, 90));
  v1::SubmitJobRequest request;
  request.set_manifest_name("all.yaml");
  request.set_manifest(R"(name: all
model: tiny-sdxl
defaults: {width: 192, height: 128, steps: 6, cfg: 6.5, sampler: tcd, schedule: normal, tileable: true,
           negative: blurry}
items:
  - prompt: "a (knight:1.2), BREAK pixel art"
    seed: 77
    count: 2
    tcd_gamma: 0.4
    init_image: start.png
    strength: 0.5
    lora: [{name: pixel, strength: 0.75}, {path: style.safetensors, strength: -0.5}]
postprocess: {pixelate: 32x32, palette: gameboy, crop: false}
)");
  (*request.mutable_files())["start.png"] = start_sha;
  (*request.mutable_files())["style.safetensors"] = lora_sha;
  auto submitted = core_->Submit(request);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  Reopen();

  auto w = Connect("w1", 4);
  const v1::Assignment a = w->NextAssignment();
  ASSERT_EQ(a.items_size(), 2);
  EXPECT_EQ(a.model(), "tiny-sdxl");
  ASSERT_EQ(a.postprocess_size(), 1);  // once for the job, not per image
  EXPECT_EQ(a.postprocess(0).job_id(), submitted->job().id());
  EXPECT_EQ(a.postprocess(0).spec().palette_name(), "gameboy");

  RecordingEngine engine;
  worker::BatchRunner runner(&engine, "tiny-sdxl", nullptr, WorkerFiles());
  std::atomic<bool> cancel{false};
  worker::BatchOutcome outcome = runner.Run(a, nullptr, cancel);
  ASSERT_TRUE(outcome.ok) << outcome.failure.message();
  ASSERT_EQ(engine.requests.size(), 1u);
  const engine::BatchRequest& r = engine.requests[0];
  EXPECT_EQ(r.width, 192);
  EXPECT_EQ(r.height, 128);
  EXPECT_EQ(r.steps, 6);
  EXPECT_EQ(r.cfg, 6.5);
  EXPECT_EQ(r.sampler, engine::SamplerKind::kTcd);
  EXPECT_EQ(r.schedule, engine::ScheduleKind::kNormal);
  EXPECT_EQ(r.tcd_gamma, 0.4);
  EXPECT_TRUE(r.tileable);
  EXPECT_EQ(r.strength, 0.5);
  ASSERT_EQ(r.loras.size(), 2u);
  EXPECT_EQ(r.loras[0].path, dir_ + "/loras/pixel.safetensors");
  EXPECT_EQ(r.loras[0].strength, 0.75);
  EXPECT_EQ(r.loras[1].path, *cache_->Path(lora_sha));
  EXPECT_EQ(r.loras[1].strength, -0.5);
  ASSERT_EQ(r.images.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const engine::ImageRequest& image = r.images[i];
    EXPECT_EQ(image.prompt, "a (knight:1.2), BREAK pixel art");  // weighting syntax, verbatim
    EXPECT_EQ(image.negative, "blurry");
    EXPECT_EQ(image.seed, 77u + i);
    ASSERT_TRUE(image.init_image.has_value());
    EXPECT_EQ(image.init_image->width, 192);
    EXPECT_EQ(image.init_image->rgb, std::vector<uint8_t>(192 * 128 * 3, 90));
  }
  // The worker's outputs carry the same parameters: the PNG text and the sprite.
  ASSERT_EQ(outcome.result.items_size(), 2);
  PngText text;
  ASSERT_TRUE(DecodePng(outcome.result.items(0).png(), &text).ok());
  ASSERT_EQ(text.size(), 1u);
  EXPECT_EQ(text[0].second,
            "a (knight:1.2), BREAK pixel art <lora:pixel:0.75> <lora:style:-0.5>\nNegative prompt: blurry\n"
            "Steps: 6, Sampler: TCD, Schedule type: Automatic, CFG scale: 6.5, Seed: 77, Size: 192x128, "
            "Model: tiny-sdxl, Denoising strength: 0.5, Tiling: True");
  auto sprite = DecodePng(outcome.result.items(0).sprite_png());
  ASSERT_TRUE(sprite.ok()) << outcome.result.items(0).postprocess_error();
  EXPECT_EQ(sprite->width, 32);
  EXPECT_EQ(sprite->height, 32);
}

// An engine that refuses every LoRA file as the SDXL engine refuses a bad one: by its path.
class LoraRefusingEngine : public RecordingEngine {
 public:
  absl::StatusOr<engine::BatchResult> Generate(const engine::BatchRequest& request, const engine::ProgressFn&,
                                               const engine::PreviewFn&) override {
    std::string message;
    for (const auto& lora : request.loras) message += lora.path + ": not a safetensors file; ";
    return absl::InvalidArgumentError(message);
  }
};

TEST_F(ParamsTest, AFailureNamesUploadedFilesByHashNotByTheWorkersPaths) {
  const std::string lora_sha = Upload(ManifestFileKind::kLora, std::string("\x02\0\0\0\0\0\0\0{}", 10));
  v1::SubmitJobRequest request;
  request.set_manifest(
      "name: l\nmodel: tiny-sdxl\nitems: [{prompt: a, lora: [{name: pixel}, {path: style.safetensors}]}]\n");
  (*request.mutable_files())["style.safetensors"] = lora_sha;
  ASSERT_TRUE(core_->Submit(request).ok());
  auto w = Connect("w1", 1);
  LoraRefusingEngine engine;
  worker::BatchRunner runner(&engine, "tiny-sdxl", nullptr, WorkerFiles());
  std::atomic<bool> cancel{false};
  const worker::BatchOutcome outcome = runner.Run(w->NextAssignment(), nullptr, cancel);
  ASSERT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.failure.message(), "LoRA 'pixel': not a safetensors file; uploaded file " + lora_sha +
                                           ": not a safetensors file; ");
}

// The batching rule is written once (common/sampling.h, BatchKeyOf): the planner groups
// items by it and the worker refuses an assignment whose items it separates.
TEST_F(ParamsTest, ThePlannerAndTheWorkerAgreeOnWhatBatchesTogether) {
  const std::string start_a = Upload(ManifestFileKind::kImage, StartImage(128, 128, 10));
  const std::string start_b = Upload(ManifestFileKind::kImage, StartImage(128, 128, 20));
  v1::SubmitJobRequest request;
  request.set_manifest(R"(name: mix
model: tiny-sdxl
defaults: {width: 128, height: 128, steps: 4}
items:
  - {prompt: plain, count: 2, seed: 1}
  - {prompt: guided, count: 2, seed: 3, overrides: {cfg: 7}}
  - {prompt: sketch a, count: 2, seed: 5, init_image: a.png}
  - {prompt: sketch b, count: 2, seed: 7, init_image: b.png}
)");
  (*request.mutable_files())["a.png"] = start_a;
  (*request.mutable_files())["b.png"] = start_b;
  ASSERT_TRUE(core_->Submit(request).ok());
  auto w = Connect("w1", 8);
  RecordingEngine engine;
  worker::BatchRunner runner(&engine, "tiny-sdxl", nullptr, WorkerFiles());
  std::atomic<bool> cancel{false};
  std::vector<std::vector<uint64_t>> batches;
  v1::Assignment img2img;
  for (int n = 0; n < 3; ++n) {
    const v1::Assignment a = w->NextAssignment();
    std::vector<uint64_t> seeds;
    for (const auto& item : a.items()) seeds.push_back(item.params().seed());
    batches.push_back(seeds);
    // The worker accepts every batch the planner made.
    worker::Rendered rendered = runner.Render(a, nullptr, cancel);
    EXPECT_TRUE(rendered.ok) << rendered.failure.failure.message();
    if (!a.items(0).params().init_image_sha256().empty()) img2img = a;
    core_->OnMessage(w.get(), Result(a));
  }
  // Different start images batch together; a different cfg or img2img does not.
  EXPECT_EQ(batches, (std::vector<std::vector<uint64_t>>{{1, 2}, {3, 4}, {5, 6, 7, 8}}));

  // An item the planner keeps apart (txt2img) in the img2img batch: the worker refuses it,
  // and both sides compute the same keys for the pair.
  ASSERT_EQ(img2img.items_size(), 4);
  v1::Assignment mixed = img2img;
  mixed.mutable_items(3)->mutable_params()->clear_init_image_sha256();
  worker::Rendered refused = runner.Render(mixed, nullptr, cancel);
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.failure.failure.message(), "batch mixes incompatible parameters");
  EXPECT_NE(KeyOf(mixed.model(), mixed.sampling(), mixed.items(0).params()).id,
            KeyOf(mixed.model(), mixed.sampling(), mixed.items(3).params()).id);
  EXPECT_EQ(KeyOf(mixed.model(), mixed.sampling(), mixed.items(0).params()).id,
            BatchKeyOf(mixed.model(), mixed.sampling(), mixed.items(0).params()));
}

}  // namespace
}  // namespace spriteforge::coordinator
