// The planner and LoRAs: only items with the same LoRA set, strengths and img2img setting
// share a batch, and a LoRA's file counts against the worker's memory.
#include <gtest/gtest.h>

#include "absl/strings/str_split.h"
#include "coordinator/scheduling/planner.h"

namespace spriteforge::coordinator {
namespace {

constexpr uint64_t GB = 1'000'000'000ull;

// `loras`: "name:strength" for a LoRA in the workers' folder, "sha:strength" for an upload
// ("aa" stands for its hash), comma-separated.
BatchKey Key(const std::string& loras = "", bool img2img = false, double strength = 0) {
  v1::SamplingParams sampling;
  sampling.set_width(1024);
  sampling.set_height(1024);
  sampling.set_steps(4);
  sampling.set_cfg(1.0);
  sampling.set_sampler(v1::SAMPLER_EULER);
  sampling.set_schedule(v1::SCHEDULE_TRAILING);
  sampling.set_strength(strength);
  for (const absl::string_view part : absl::StrSplit(loras, ',', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(part, ':');
    v1::LoraRef* lora = sampling.add_loras();
    if (fields[0] == "name") {
      lora->set_name(fields[1]);
      lora->set_strength(std::stod(fields[2]));
    } else {
      lora->set_name("uploaded");
      lora->set_sha256(fields[0]);
      lora->set_strength(std::stod(fields[1]));
    }
  }
  v1::ImageParams image;
  if (img2img) image.set_init_image_sha256("start");
  return KeyOf("sdxl", sampling, image);
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
  EXPECT_EQ(named.named_loras, std::vector<std::string>{"style"});  // KeyOf lists the folder's LoRAs
  EXPECT_EQ(LoraBytes(named, worker), 1 * GB);
  EXPECT_EQ(planned(named), 4);
  BatchKey both = Key("aa:1,name:style:1");
  both.uploaded_lora_bytes = 1 * GB;
  EXPECT_EQ(planned(both), 1);
}

}  // namespace
}  // namespace spriteforge::coordinator
