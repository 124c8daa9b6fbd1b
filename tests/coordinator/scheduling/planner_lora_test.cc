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

// A key whose batch needs ControlNets by name (in the workers' --controlnet-dir) and
// optionally an IP-Adapter by name.
BatchKey ControlKey(const std::vector<std::string>& controlnets, const std::string& adapter = "") {
  v1::SamplingParams sampling;
  sampling.set_width(1024);
  sampling.set_height(1024);
  for (const std::string& name : controlnets) sampling.add_controlnets()->set_name(name);
  if (!adapter.empty()) sampling.mutable_ip_adapter()->set_name(adapter);
  return KeyOf("sdxl", sampling, v1::ImageParams());
}

TEST(PlannerControls, ABatchNeedingAControlNetGoesOnlyToAWorkerThatHasIt) {
  MemoryModel memory(kSdxlFp16Prior);
  WorkerView plain{"plain", {"sdxl"}, 80 * GB, 8, true, &memory};
  WorkerView posing{"posing", {"sdxl"}, 80 * GB, 8, true, &memory};
  posing.named.controlnets["openpose"] = 2 * GB;
  std::vector<PendingItem> pending;
  for (int i = 0; i < 2; ++i) pending.push_back({"job", i, 0, 0, ControlKey({"openpose"})});
  auto plan = Plan(pending, {plain, posing}, {});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].worker_id, "posing");
  EXPECT_EQ(plan[0].items.size(), 2u);
  // Nobody has the second ControlNet, or the adapter and its default encoder: nothing is sent.
  EXPECT_TRUE(Plan({{"job", 0, 0, 0, ControlKey({"openpose", "canny"})}}, {plain, posing}, {}).empty());
  EXPECT_EQ(MissingModel(ControlKey({"openpose", "canny"}), posing.named), "ControlNet 'canny'");
  posing.named.ip_adapters["plus"] = 1 * GB;
  EXPECT_EQ(MissingModel(ControlKey({}, "plus"), posing.named), "image encoder 'image_encoder'");
  posing.named.encoders["image_encoder"] = 1 * GB;
  EXPECT_EQ(MissingModel(ControlKey({"openpose"}, "plus"), posing.named), "");
  // Uploaded ControlNets are fetched by any worker.
  v1::SamplingParams uploaded;
  uploaded.set_width(1024);
  uploaded.set_height(1024);
  uploaded.add_controlnets()->set_sha256("aa");
  auto any = Plan({{"job", 0, 0, 0, KeyOf("sdxl", uploaded, v1::ImageParams())}}, {plain}, {});
  ASSERT_EQ(any.size(), 1u);
}

TEST(PlannerControls, ControlNetWeightsAndActivationsShrinkTheBatchThatFits) {
  // fixed 7.4 GB + 0.35 GB per image: a 10 GB budget fits 7 images without controls.
  MemoryModel memory(kSdxlFp16Prior);
  WorkerView worker{"w", {"sdxl"}, 10 * GB, 64, true, &memory};
  worker.named.controlnets["openpose"] = 1 * GB;  // a "mid" variant's file
  auto planned = [&](const BatchKey& key) {
    std::vector<PendingItem> pending;
    for (int i = 0; i < 20; ++i) pending.push_back({"job", i, 0, 0, key});
    auto plan = Plan(pending, {worker}, {});
    return plan.empty() ? 0 : static_cast<int>(plan[0].items.size());
  };
  EXPECT_EQ(planned(ControlKey({})), 7);
  // 1 GB of weights and 0.09 GB more per image: (10 - 7.4 - 1) / 0.44 = 3.6.
  EXPECT_EQ(ControlBytes(ControlKey({"openpose"}), worker), 1 * GB);
  EXPECT_EQ(planned(ControlKey({"openpose"})), 3);
  // Sizes unknown (an uploaded file the coordinator could not size): the constants.
  v1::SamplingParams uploaded;
  uploaded.set_width(1024);
  uploaded.set_height(1024);
  uploaded.add_controlnets()->set_sha256("aa");
  uploaded.mutable_ip_adapter()->set_sha256("bb");
  uploaded.mutable_ip_adapter()->set_encoder_sha256("cc");
  EXPECT_EQ(ControlBytes(KeyOf("sdxl", uploaded, v1::ImageParams()), worker), kControlNetBytes + kIpAdapterBytes);
}

}  // namespace
}  // namespace spriteforge::coordinator
