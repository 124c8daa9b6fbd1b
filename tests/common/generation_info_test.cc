#include "common/generation_info.h"

#include <gtest/gtest.h>

namespace spriteforge {
namespace {

v1::SamplingParams Sampling(int width, int height, int steps, double cfg, v1::Sampler sampler, v1::Schedule schedule) {
  v1::SamplingParams s;
  s.set_width(width);
  s.set_height(height);
  s.set_steps(steps);
  s.set_cfg(cfg);
  s.set_sampler(sampler);
  s.set_schedule(schedule);
  return s;
}

v1::ImageParams Image(const std::string& prompt, uint64_t seed) {
  v1::ImageParams image;
  image.set_prompt(prompt);
  image.set_seed(seed);
  return image;
}

TEST(GenerationInfo, FormatsA1111ParametersChunk) {
  v1::ImageParams image = Image("red potion\nicon", 42);
  image.set_negative("blurry");
  EXPECT_EQ(FormatParametersText("tiny-sdxl", image,
                                 Sampling(128, 192, 4, 5.5, v1::SAMPLER_EULER_ANCESTRAL, v1::SCHEDULE_KARRAS)),
            "red potion icon\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, "
            "Schedule type: Karras, CFG scale: 5.5, Seed: 42, Size: 128x192, Model: tiny-sdxl");
}

TEST(GenerationInfo, CarriesLorasAndDenoisingStrengthAsA1111WritesThem) {
  v1::SamplingParams s = Sampling(128, 128, 10, 5, v1::SAMPLER_EULER, v1::SCHEDULE_NORMAL);
  v1::LoraRef* pixel = s.add_loras();
  pixel->set_name("pixel-art-xl");
  pixel->set_strength(0.75);
  v1::LoraRef* lightning = s.add_loras();
  lightning->set_name("lightning");
  lightning->set_strength(1);
  s.set_strength(0.6);
  v1::ImageParams image = Image("knight", 7);
  image.set_init_image_sha256("bb");
  EXPECT_EQ(FormatParametersText("tiny-sdxl", image, s),
            "knight <lora:pixel-art-xl:0.75> <lora:lightning:1>\nSteps: 10, Sampler: Euler, "
            "Schedule type: Automatic, CFG scale: 5, Seed: 7, Size: 128x128, Model: tiny-sdxl, "
            "Denoising strength: 0.6");
  nlohmann::json j = ToJson("tiny-sdxl", image, s);
  EXPECT_EQ(j["loras"][0]["name"], "pixel-art-xl");
  EXPECT_EQ(j["loras"][1]["strength"], 1.0);
  EXPECT_EQ(j["denoising_strength"], 0.6);
  EXPECT_EQ(j["init_image_sha256"], "bb");
  EXPECT_EQ(j["sampler"], "euler");
  EXPECT_EQ(j["schedule"], "normal");
  EXPECT_FALSE(j.contains("tcd_gamma"));
  EXPECT_FALSE(ToJson("m", v1::ImageParams(), v1::SamplingParams()).contains("loras"));
}

TEST(GenerationInfo, JsonKeepsMissingNegativeDistinctFromEmpty) {
  v1::ImageParams image = Image("x", 1);
  EXPECT_TRUE(ToJson("m", image, v1::SamplingParams())["negative"].is_null());
  image.set_negative("");
  EXPECT_EQ(ToJson("m", image, v1::SamplingParams())["negative"], "");
}

// A pose from the library and Canny edges of an uploaded picture steer the image, and an
// uploaded IP-Adapter keeps the character: each is a "ControlNet N" unit A1111 reads back.
TEST(GenerationInfo, ControlNetsAndTheIpAdapterAreA1111ControlNetUnits) {
  v1::SamplingParams s = Sampling(128, 128, 4, 5, v1::SAMPLER_EULER, v1::SCHEDULE_NORMAL);
  v1::ControlNetRef* pose = s.add_controlnets();
  pose->set_name("openpose-sdxl");
  pose->set_scale(0.8);
  pose->set_end(0.75);
  v1::ControlNetRef* edges = s.add_controlnets();
  edges->set_name("canny-sdxl");
  edges->set_sha256("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  edges->set_scale(1);
  edges->set_end(1);
  v1::IpAdapterRef* adapter = s.mutable_ip_adapter();
  adapter->set_name("ip-adapter-plus_sdxl_vit-h");
  adapter->set_scale(0.6);
  v1::ImageParams image = Image("knight", 7);
  image.set_name("hero_walk_s_0");
  image.add_controls()->set_pose("walk-8dir/s_0");
  v1::ControlImage::Canny* canny = image.add_controls()->mutable_canny();
  canny->set_image_sha256("cc");
  canny->set_low(100);
  canny->set_high(200);
  image.add_reference_sha256("rr");
  EXPECT_EQ(FormatParametersText("tiny-sdxl", image, s),
            "knight\nSteps: 4, Sampler: Euler, Schedule type: Automatic, CFG scale: 5, Seed: 7, Size: 128x128, "
            "Model: tiny-sdxl, "
            "ControlNet 0: \"Module: none, Model: openpose-sdxl, Weight: 0.8, Resize Mode: Crop and Resize, "
            "Low Vram: False, Guidance Start: 0.0, Guidance End: 0.75, Pixel Perfect: False, Control Mode: "
            "Balanced\", "
            "ControlNet 1: \"Module: canny, Model: canny-sdxl [01234567], Weight: 1.0, Resize Mode: Crop and "
            "Resize, Low Vram: False, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance End: "
            "1.0, Pixel Perfect: False, Control Mode: Balanced\", "
            "ControlNet 2: \"Module: ip-adapter_clip_sdxl_plus_vith, Model: ip-adapter-plus_sdxl_vit-h, Weight: "
            "0.6, Resize Mode: Crop and Resize, Low Vram: False, Guidance Start: 0.0, Guidance End: 1.0, Pixel "
            "Perfect: False, Control Mode: Balanced\"");
  nlohmann::json j = ToJson("tiny-sdxl", image, s);
  EXPECT_EQ(j["name"], "hero_walk_s_0");
  EXPECT_EQ(j["controlnets"][0]["control"]["pose"], "walk-8dir/s_0");
  EXPECT_EQ(j["controlnets"][0]["end"], 0.75);
  EXPECT_EQ(j["controlnets"][1]["sha256"], edges->sha256());
  EXPECT_EQ(j["controlnets"][1]["control"]["canny"]["high"], 200.0);
  EXPECT_EQ(j["ip_adapter"]["name"], "ip-adapter-plus_sdxl_vit-h");
  EXPECT_EQ(j["ip_adapter"]["encoder"], "image_encoder");
  EXPECT_EQ(j["ip_adapter"]["reference_sha256"], nlohmann::json::array({"rr"}));
  EXPECT_FALSE(ToJson("m", Image("x", 1), v1::SamplingParams()).contains("controlnets"));
}

// Names are the user's: one holding the unit syntax cannot break the unit apart.
TEST(GenerationInfo, AUnitNameCannotAddFieldsToItsUnit) {
  v1::SamplingParams s;
  s.add_controlnets()->set_name("pose, Weight: 2\"");
  const std::vector<std::string> units = ControlNetUnits(v1::ImageParams(), s);
  ASSERT_EQ(units.size(), 1u);
  EXPECT_NE(units[0].find("Model: pose_ Weight_ 2', Weight: 0.0"), std::string::npos) << units[0];
  EXPECT_EQ(ControlNetUnits(v1::ImageParams(), v1::SamplingParams()).size(), 0u);
}

}  // namespace
}  // namespace spriteforge
