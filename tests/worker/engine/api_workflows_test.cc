// LoRA and img2img through the public engine API, against the reference images of
// tiny-sdxl-workflows (float32 on the CPU).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "spriteforge/engine/engine.h"
#include "tests/worker/engine/golden.h"
#include "tests/worker/engine/golden_engine.h"
#include "worker/engine/tools/golden_cases.h"

namespace spriteforge::engine {
namespace {

namespace fs = std::filesystem;
using testing::MaxDifference;
using testing::TinyEngine;

// The reference's floats within 1e-3 and its PNGs within one 8-bit level.
void ExpectReferenceImages(const std::string& name, const BatchResult& result) {
  testing::ExpectReferenceImages(testing::WorkflowVectors(), testing::WorkflowsDir(), name, result, 1e-3);
}

BatchRequest WorkflowCase(const std::string& name, const std::string& lora_file = "lora-kohya.safetensors") {
  auto cases = LoadWorkflowCases(testing::WorkflowsDir(), lora_file);
  EXPECT_TRUE(cases.ok()) << cases.status();
  return cases.ok() ? cases->at(name) : BatchRequest{};
}

Image Generate(const BatchRequest& request) {
  auto result = TinyEngine().Generate(request);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? result->images.at(0) : Image{};
}

TEST(Lora, BothFileFormatsMatchTheReference) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  std::map<std::string, Image> images;
  for (const char* file : {"lora-kohya.safetensors", "lora-diffusers.safetensors"}) {
    auto result = TinyEngine().Generate(WorkflowCase("lora.euler", file));
    ASSERT_TRUE(result.ok()) << file << ": " << result.status();
    ExpectReferenceImages("lora.euler", *result);
    images[file] = result->images[0];
  }
  const double between = MaxDifference(images["lora-kohya.safetensors"], images["lora-diffusers.safetensors"]);
  std::printf("kohya vs diffusers file: max abs difference %.3g\n", between);
  EXPECT_LT(between, 1e-3);
}

TEST(Lora, OneModelServesDifferentSetsAndRestoresTheBase) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  BatchRequest request = WorkflowCase("lora.euler");
  const std::vector<LoraSpec> lora = request.loras;
  request.loras.clear();
  const Image base = Generate(request);
  request.loras = lora;
  const Image with_lora = Generate(request);
  EXPECT_GT(MaxDifference(base, with_lora), 1e-2) << "the LoRA changed nothing";
  request.loras.clear();
  const Image base_again = Generate(request);
  EXPECT_EQ(base.rgb_f32, base_again.rgb_f32) << "unmerging did not restore the model exactly";
}

TEST(Lora, EachFileHasItsOwnStrength) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const std::string dir = testing::WorkflowsDir();
  // A second LoRA: the first with every up factor negated, so at equal strengths they cancel.
  std::vector<testing::F32Tensor> tensors = testing::ReadSafetensors(dir + "/lora-kohya.safetensors");
  for (auto& t : tensors) {
    if (t.name.find("lora_up") != std::string::npos) for (float& v : t.values) v = -v;
  }
  const std::string negated = (fs::temp_directory_path() / "spriteforge-lora-negated.safetensors").string();
  testing::WriteSafetensors(negated, tensors);

  BatchRequest request = WorkflowCase("lora.euler");
  const std::string kohya = dir + "/lora-kohya.safetensors", diffusers = dir + "/lora-diffusers.safetensors";
  request.loras = {{kohya, 1.0}};
  const Image one_at_full = Generate(request);
  request.loras = {{kohya, 0.5}, {negated, 0.5}};
  const Image cancelled = Generate(request);
  request.loras = {};
  const Image base = Generate(request);
  request.loras = {{kohya, 0.5}, {diffusers, 0.5}};
  const Image halves_of_one = Generate(request);

  EXPECT_GT(MaxDifference(cancelled, one_at_full), 1e-2);
  EXPECT_LT(MaxDifference(cancelled, base), 1e-4) << "opposite LoRAs at equal strength should cancel";
  EXPECT_LT(MaxDifference(halves_of_one, one_at_full), 1e-3) << "two halves of one LoRA should add up to it";
  fs::remove(negated);
}

TEST(Lora, BadFilesAreErrorsNamingTheTensor) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  struct Case {
    std::string tensor, expect;
  };
  const std::vector<Case> cases = {
      {"lora_unet_input_blocks_1_0_in_layers_2.lora_down.weight", "convolution 'down_blocks.0.resnets.0.conv1'"},
      {"lora_unet_input_blocks_4_1_no_such_layer.lora_down.weight", "names no layer"},
      {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", "not a LoRA tensor of an SDXL model"},
      {"lora_unet_input_blocks_4_1_proj_in.hada_w1_a", "LyCORIS"},
  };
  const std::string path = (fs::temp_directory_path() / "spriteforge-lora-bad.safetensors").string();
  for (const Case& c : cases) {
    testing::WriteSafetensors(path, {{c.tensor, {1, 1}, {0.0f}}});
    BatchRequest request = WorkflowCase("lora.euler");
    request.loras = {{path, 1.0}};
    auto result = TinyEngine().Generate(request);
    ASSERT_FALSE(result.ok()) << c.tensor;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(result.status().message().find(c.tensor), std::string::npos) << result.status();
    EXPECT_NE(result.status().message().find(c.expect), std::string::npos) << result.status();
  }
  BatchRequest request = WorkflowCase("lora.euler");
  request.loras = {{"/no/such/lora.safetensors", 1.0}};
  auto missing = TinyEngine().Generate(request);
  EXPECT_NE(missing.status().message().find("/no/such/lora.safetensors"), std::string::npos) << missing.status();
  fs::remove(path);
}

TEST(Img2Img, MatchesTheReference) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  auto result = TinyEngine().Generate(WorkflowCase("img2img.euler"));
  ASSERT_TRUE(result.ok()) << result.status();
  ExpectReferenceImages("img2img.euler", *result);
}

TEST(Img2Img, RejectsInconsistentRequests) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  BatchRequest request = WorkflowCase("img2img.euler");
  BatchRequest wrong_size = request;
  wrong_size.width = 64;
  EXPECT_NE(ValidateRequest(wrong_size).message().find("sizes must match"), std::string::npos);
  BatchRequest mixed = request;
  mixed.images.push_back({"no init", std::nullopt, 1});
  EXPECT_NE(ValidateRequest(mixed).message().find("every image"), std::string::npos);
  BatchRequest weak = request;
  weak.strength = 0.05;  // int(10 * 0.05) = 0 steps
  EXPECT_NE(ValidateRequest(weak).message().find("runs no step"), std::string::npos);
}

}  // namespace
}  // namespace spriteforge::engine
