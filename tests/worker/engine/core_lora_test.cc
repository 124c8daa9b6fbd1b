// LoRA merging on the golden tiny model: weights change where the file says, go back bit
// for bit, and fused projections see the merge like separate ones do.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include <torch/torch.h>

#include "tests/worker/engine/golden.h"
#include "worker/engine/src/checkpoint.h"
#include "worker/engine/src/lora.h"

namespace spriteforge::engine {
namespace {

SdxlModels LoadTiny() {
  const std::string dir = testing::GoldenDir();
  auto config = ResolveConfig(dir + "/tiny-sdxl.safetensors", dir + "/diffusers");
  EXPECT_TRUE(config.ok()) << config.status();
  SdxlModels models = BuildSdxl(*config);
  auto status = LoadWeights(dir + "/tiny-sdxl.safetensors", models);
  EXPECT_TRUE(status.ok()) << status;
  return models;
}

std::map<std::string, torch::Tensor> Snapshot(SdxlModels& m) {
  std::map<std::string, torch::Tensor> out;
  const std::pair<const char*, torch::nn::Module*> parts[] = {
      {"text_encoder", m.text_encoder.get()}, {"text_encoder_2", m.text_encoder_2.get()}, {"unet", m.unet.get()}};
  for (const auto& [part, module] : parts) {
    for (const auto& p : module->named_parameters()) out[std::string(part) + "/" + p.key()] = p.value().clone();
  }
  return out;
}

int CountChanged(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  int changed = 0;
  for (const auto& [name, tensor] : a) changed += !torch::equal(tensor, b.at(name));
  return changed;
}

TEST(LoraMerge, UnmergeRestoresEveryWeightBitForBit) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  torch::NoGradGuard no_grad;
  SdxlModels models = LoadTiny();
  const auto original = Snapshot(models);
  LoraMerger merger(models, torch::kCPU);
  const std::string dir = testing::WorkflowsDir();
  ASSERT_TRUE(merger.Activate({{dir + "/lora-kohya.safetensors", 0.75}}).ok());
  // 228 layers: 12 per UNet transformer (q, k, v, out of two attentions, ff in/out) plus
  // proj_in/out, and 6 per text encoder layer (q, k, v, out, fc1, fc2).
  EXPECT_EQ(CountChanged(original, Snapshot(models)), 228);
  ASSERT_TRUE(merger.Activate({{dir + "/lora-diffusers.safetensors", 0.3}, {dir + "/lora-kohya.safetensors", -1.0}}).ok());
  EXPECT_EQ(CountChanged(original, Snapshot(models)), 228);
  ASSERT_TRUE(merger.Activate({}).ok());
  EXPECT_EQ(CountChanged(original, Snapshot(models)), 0);
  EXPECT_TRUE(merger.active().empty());
}

// The worker's heartbeat thread reports the engine's memory (LoRA bytes included) while
// its render thread switches LoRA sets: the count is read safely from any thread and
// says what is held once the switching stops.
TEST(LoraMerge, ItsBytesCanBeReadWhileAnotherThreadSwitchesSets) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  torch::NoGradGuard no_grad;
  SdxlModels models = LoadTiny();
  LoraMerger merger(models, torch::kCPU);
  const std::string dir = testing::WorkflowsDir();
  const std::vector<LoraSpec> kohya = {{dir + "/lora-kohya.safetensors", 0.75}};
  const std::vector<LoraSpec> diffusers = {{dir + "/lora-diffusers.safetensors", 0.3}};
  const std::vector<LoraSpec> empty;
  std::atomic<bool> done{false};
  std::atomic<int64_t> reads{0};
  std::thread reader([&] {
    while (!done) {
      if (merger.cached_bytes() > 0) ++reads;
    }
  });
  bool switched = true;
  for (int i = 0; i < 60 && switched; ++i) {
    for (const auto* set : {&kohya, &empty, &diffusers}) {
      const absl::Status s = merger.Activate(*set);
      EXPECT_TRUE(s.ok()) << s;
      switched = switched && s.ok();
    }
  }
  done = true;
  reader.join();  // before any assertion can leave the test
  ASSERT_TRUE(switched);
  ASSERT_TRUE(merger.Activate({}).ok());
  EXPECT_GT(reads.load(), 0);
  // Nothing merged: only the two cached files' factors are held.
  const uint64_t files_only = merger.cached_bytes();
  ASSERT_TRUE(merger.Activate(kohya).ok());
  EXPECT_GT(merger.cached_bytes(), files_only) << "the merged layers' original weights count too";
  ASSERT_TRUE(merger.Activate({}).ok());
  EXPECT_EQ(merger.cached_bytes(), files_only);
}

TEST(LoraMerge, FusedSelfAttentionSeesTheMerge) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  torch::NoGradGuard no_grad;
  SdxlModels separate = LoadTiny(), fused = LoadTiny();
  fused.unet->FuseSelfAttentionProjections();
  const std::string lora = testing::WorkflowsDir() + "/lora-kohya.safetensors";
  LoraMerger a(separate, torch::kCPU), b(fused, torch::kCPU);
  ASSERT_TRUE(a.Activate({{lora, 1.0}}).ok());
  ASSERT_TRUE(b.Activate({{lora, 1.0}}).ok());
  torch::manual_seed(0);
  const auto& c = separate.config.unet;
  torch::Tensor x = torch::randn({1, c.in_channels, 8, 8});
  torch::Tensor t = torch::full({1}, 500.0);
  torch::Tensor context = torch::randn({1, 77, c.cross_attention_dim});
  torch::Tensor pooled = torch::randn({1, separate.config.text_encoder_2.projection_dim});
  torch::Tensor time_ids = torch::tensor({{64.0f, 64.0f, 0.0f, 0.0f, 64.0f, 64.0f}});
  torch::Tensor want = separate.unet->forward(x, t, context, pooled, time_ids);
  torch::Tensor got = fused.unet->forward(x, t, context, pooled, time_ids);
  EXPECT_LT((want - got).abs().max().item<double>(), 1e-5);
}

TEST(LoraMerge, OriginalsStayOnTheDeviceOnlyWhileHalfOfItStaysFree) {
  const torch::Device gpu(torch::kCUDA, 0), cpu(torch::kCPU);
  MemoryStats memory;
  memory.total_bytes = 100;
  memory.free_bytes = 80;
  EXPECT_EQ(SavedOriginalsPlace(gpu, 30, memory), gpu);  // 50 of 100 left
  EXPECT_EQ(SavedOriginalsPlace(gpu, 31, memory), cpu);
  EXPECT_EQ(SavedOriginalsPlace(gpu, 90, memory), cpu);  // more than is free
  EXPECT_EQ(SavedOriginalsPlace(cpu, 90, memory), cpu);  // a CPU engine keeps them where it runs
}

}  // namespace
}  // namespace spriteforge::engine
