// The planner and LoRAs: only items with the same LoRA set, strengths and img2img setting
// share a batch, and a LoRA's file counts against the worker's memory.
#include <gtest/gtest.h>

#include "coordinator/scheduling/planner.h"

namespace spriteforge::coordinator {
namespace {

constexpr uint64_t GB = 1'000'000'000ull;

BatchKey Key(const std::string& loras = "", bool img2img = false, double strength = 0) {
  BatchKey key{"sdxl", 1024, 1024, 4, "euler", "trailing", false, 1.0};
  key.loras = loras;
  key.img2img = img2img;
  key.strength = strength;
  return key;
}

TEST(PlannerLora, BatchesOnlyTheSameLoraSetStrengthsAndImg2Img) {
  MemoryModel memory(kSdxlFp16Prior);
  std::vector<PendingItem> pending;
  const BatchKey keys[] = {Key("name:pixel:0.75"), Key("name:pixel:1"), Key("name:pixel:0.75,name:lightning:1"),
                           Key(), Key("", true, 0.6), Key("", true, 0.5)};
  int index = 0;
  for (const BatchKey& key : keys) {
    for (int i = 0; i < 2; ++i) pending.push_back({"job", index++, 0, 0, key});
  }
  std::vector<WorkerView> workers;
  for (int w = 0; w < 6; ++w) workers.push_back({"w" + std::to_string(w), {"sdxl"}, 80 * GB, 8, true, &memory});
  auto plan = Plan(pending, workers, {});
  ASSERT_EQ(plan.size(), 6u);
  for (const Assignment& a : plan) {
    ASSERT_EQ(a.items.size(), 2u);
    for (const PendingItem& item : a.items) EXPECT_EQ(item.key, a.key);
  }
}

TEST(PlannerLora, LoraFilesShrinkTheBatchThatFits) {
  // fixed 7.4 GB + 0.35 GB per image: a 10 GB budget fits 7 images without LoRAs.
  MemoryModel memory(kSdxlFp16Prior);
  WorkerView worker{"w", {"sdxl"}, 10 * GB, 64, true, &memory};
  worker.lora_bytes["style"] = 1 * GB;  // in the worker's --lora-dir
  auto planned = [&](const BatchKey& key) {
    std::vector<PendingItem> pending;
    for (int i = 0; i < 20; ++i) pending.push_back({"job", i, 0, 0, key});
    auto plan = Plan(pending, {worker}, {});
    return plan.empty() ? 0 : static_cast<int>(plan[0].items.size());
  };
  EXPECT_EQ(planned(Key()), 7);
  BatchKey uploaded = Key("aa:1");
  uploaded.uploaded_lora_bytes = 1 * GB;
  EXPECT_EQ(planned(uploaded), 4);
  BatchKey named = Key("name:style:1");
  named.named_loras = {"style"};
  EXPECT_EQ(LoraBytes(named, worker), 1 * GB);
  EXPECT_EQ(planned(named), 4);
  BatchKey both = Key("aa:1,name:style:1");
  both.uploaded_lora_bytes = 1 * GB;
  both.named_loras = {"style"};
  EXPECT_EQ(planned(both), 1);
}

}  // namespace
}  // namespace spriteforge::coordinator
