// A --model that is not a checkpoint of the configured architecture is refused from its
// headers alone, in milliseconds, with one line naming the file and what is wrong.
#include "worker/engine/base/checkpoint_check.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "tests/worker/engine/golden.h"

namespace spriteforge::engine {
namespace {

namespace fs = std::filesystem;

class CheckpointCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("checkpoint-check-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path.string();
  }

  // Checks and expects a refusal within a second whose message names `path` and `reason`.
  void ExpectRefused(const std::string& path, const SdxlConfig& config, const std::string& reason) {
    const auto start = std::chrono::steady_clock::now();
    absl::Status status = CheckCheckpoint(path, config);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
    ASSERT_FALSE(status.ok()) << path;
    const std::string message(status.message());
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(reason), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }

  fs::path dir_;
};

TEST_F(CheckpointCheck, ATextFileIsNotASafetensorsFile) {
  ExpectRefused(Write("notes.txt", "these are my prompts, not a model\n"), SdxlBaseConfig(),
                "not a safetensors file");
}

TEST_F(CheckpointCheck, OneKilobyteOfGarbageIsNotASafetensorsFile) {
  std::mt19937 random(7);
  std::string garbage(1024, '\0');
  for (char& c : garbage) c = static_cast<char>(random());
  ExpectRefused(Write("model.safetensors", garbage), SdxlBaseConfig(), "not a safetensors file");
}

TEST_F(CheckpointCheck, AHeaderLongerThanTheFileSaysBoth) {
  std::string bytes(8, '\0');
  bytes[0] = 100;  // a 100-byte header in a 10-byte file
  ExpectRefused(Write("cut.safetensors", bytes + "{}"), SdxlBaseConfig(), "header says 100 bytes but the file is 10 bytes");
}

TEST_F(CheckpointCheck, AnEmptyFolderIsNotADiffusersModel) {
  fs::create_directories(dir_ / "empty");
  ExpectRefused((dir_ / "empty").string(), SdxlBaseConfig(), "not a diffusers model folder");
}

TEST_F(CheckpointCheck, ASafetensorsFileWithoutTheUNetIsNotACheckpoint) {
  const std::string header = R"({"lora_unet_a.lora_down.weight":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})";
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(header.size());
  ExpectRefused(Write("lora.safetensors", bytes + header + "xx"), SdxlBaseConfig(), "holds no unet tensors");
}

TEST_F(CheckpointCheck, TheTinyModelWithSdxlBasesConfigNamesTheTensorAndTheShapes) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  ExpectRefused(testing::GoldenDir() + "/tiny-sdxl.safetensors", SdxlBaseConfig(),
                "tensor model.diffusion_model.input_blocks.0.0.weight has shape [32, 4, 3, 3], "
                "the config expects [320, 4, 3, 3] (is --config right?)");
}

TEST_F(CheckpointCheck, AConfigWithMoreLayersThanTheFileNamesTheMissingTensor) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  SdxlConfig deeper = TinySdxlConfig();
  deeper.text_encoder.num_hidden_layers = 4;
  ExpectRefused(testing::GoldenDir() + "/tiny-sdxl.safetensors", deeper,
                "missing tensor conditioner.embedders.0.transformer.text_model.encoder.layers.3.mlp.fc1.weight");
}

TEST_F(CheckpointCheck, TheTinyModelPassesInBothLayoutsWithItsConfig) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  auto config = LoadSdxlConfig(testing::GoldenDir() + "/diffusers", SdxlBaseConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(CheckCheckpoint(testing::GoldenDir() + "/tiny-sdxl.safetensors", *config).ok())
      << CheckCheckpoint(testing::GoldenDir() + "/tiny-sdxl.safetensors", *config);
  EXPECT_TRUE(CheckCheckpoint(testing::GoldenDir() + "/diffusers", *config).ok())
      << CheckCheckpoint(testing::GoldenDir() + "/diffusers", *config);
}

}  // namespace
}  // namespace spriteforge::engine
