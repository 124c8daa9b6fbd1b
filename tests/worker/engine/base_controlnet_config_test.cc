// A ControlNet is checked from its config.json and safetensors header before anything is
// allocated: files that are not ControlNets, ControlNets whose config does not describe
// their weights and ControlNets for another base model are refused with one line naming
// the field or tensor.
#include "worker/engine/base/controlnet_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "tests/worker/engine/golden.h"

namespace spriteforge::engine {
namespace {

namespace fs = std::filesystem;

class ControlNetCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("controlnet-check-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Golden() const { return testing::ControlsDir() + "/controlnet"; }

  nlohmann::json GoldenConfig() const { return nlohmann::json::parse(*ReadFile(Golden() + "/config.json")); }

  // A ControlNet folder of `config` beside the weights file `weights`.
  std::string Folder(const nlohmann::json& config, const std::string& weights) {
    std::ofstream(dir_ / "config.json") << config.dump();
    fs::create_symlink(weights, dir_ / "diffusion_pytorch_model.safetensors");
    return dir_.string();
  }

  std::string Refusal(const std::string& path, const UNetConfig& unet = TinySdxlConfig().unet) {
    auto checked = CheckControlNet(path, unet);
    EXPECT_FALSE(checked.ok()) << path;
    return checked.ok() ? "" : std::string(checked.status().message());
  }

  fs::path dir_;
};

TEST_F(ControlNetCheck, TheGoldenControlNetFitsTheTinyModelAsAFolderAndAsAFile) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  auto folder = CheckControlNet(Golden(), TinySdxlConfig().unet);
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(folder->conditioning_embedding_out_channels, (std::vector<int>{16, 32, 96, 256}));
  EXPECT_EQ(folder->ResidualChannels(), (std::vector<int>{32, 32, 32, 32, 64, 64, 64, 64, 64}));
  EXPECT_TRUE(CheckControlNet(Golden() + "/diffusion_pytorch_model.safetensors", TinySdxlConfig().unet).ok());
}

TEST_F(ControlNetCheck, AConfigThatDoesNotDescribeTheWeightsIsRefusedNamingTheTensor) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  nlohmann::json config = GoldenConfig();
  config["conditioning_embedding_out_channels"] = {16, 32, 96, 128};
  const std::string message = Refusal(Folder(config, Golden() + "/diffusion_pytorch_model.safetensors"));
  EXPECT_NE(message.find("controlnet_cond_embedding.blocks.5.weight has shape [256, 96, 3, 3], config.json expects [128, 96, 3, 3]"),
            std::string::npos) << message;
}

TEST_F(ControlNetCheck, FewerTransformerLayersThanTheWeightsHoldAreRefused) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  nlohmann::json config = GoldenConfig();
  config["transformer_layers_per_block"] = {1, 1, 1};  // a "small" ControlNet's config
  const std::string message = Refusal(Folder(config, Golden() + "/diffusion_pytorch_model.safetensors"));
  EXPECT_NE(message.find("down_blocks.2.attentions.0.transformer_blocks.1.attn2.to_k.weight is one layer more"), std::string::npos)
      << message;
}

TEST_F(ControlNetCheck, WeightsThatAreNotAControlNetAreRefusedNamingTheMissingTensor) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const std::string message = Refusal(Folder(GoldenConfig(), testing::ControlsDir() + "/ip-adapter.safetensors"));
  EXPECT_NE(message.find("missing tensor controlnet_cond_embedding.conv_in.weight"), std::string::npos) << message;
}

TEST_F(ControlNetCheck, AnotherModelsConfigIsRefusedNamingTheField) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  nlohmann::json unet = GoldenConfig();
  unet["_class_name"] = "UNet2DConditionModel";
  std::string message = Refusal(Folder(unet, Golden() + "/diffusion_pytorch_model.safetensors"));
  EXPECT_NE(message.find("field '_class_name' is 'UNet2DConditionModel', not a ControlNet"), std::string::npos) << message;
}

TEST_F(ControlNetCheck, ATransformersConfigIsRefused) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  // The image encoder's config names no diffusers class at all.
  const auto encoder = nlohmann::json::parse(*ReadFile(testing::ControlsDir() + "/image_encoder/config.json"));
  const std::string message = Refusal(Folder(encoder, Golden() + "/diffusion_pytorch_model.safetensors"));
  EXPECT_NE(message.find("not a ControlNet config (no _class_name, no conditioning_embedding_out_channels)"), std::string::npos)
      << message;
}

TEST_F(ControlNetCheck, AControlNetForAnotherBaseModelIsRefusedNamingTheField) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const std::string message = Refusal(Golden(), SdxlBaseConfig().unet);
  EXPECT_NE(message.find("field 'block_out_channels' is [32, 64, 64], the model's UNet has [320, 640, 1280]"), std::string::npos)
      << message;
}

TEST(ControlNetConfig, SmallVariantsAreDescribedByTheirConfig) {
  // The shape of diffusers' "small" SDXL ControlNets: fewer transformer layers, heads as
  // num_attention_heads, a different conditioning embedding.
  auto config = ParseControlNetConfig(R"({"_class_name": "ControlNetModel", "block_out_channels": [320, 640, 1280],
      "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], "layers_per_block": 2,
      "attention_head_dim": [5, 10, 20], "num_attention_heads": [5, 10, 20], "transformer_layers_per_block": [0, 0, 1],
      "conditioning_embedding_out_channels": [16, 32, 96, 256], "cross_attention_dim": 2048,
      "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
      "projection_class_embeddings_input_dim": 2816, "use_linear_projection": true,
      "controlnet_conditioning_channel_order": "bgr"})", "small/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->encoder.transformer_layers_per_block, (std::vector<int>{0, 0, 1}));
  EXPECT_EQ(config->encoder.attention_head_dim, (std::vector<int>{5, 10, 20}));
  EXPECT_TRUE(config->bgr);
  EXPECT_EQ(config->ResidualChannels().size(), 9u);
  EXPECT_TRUE(CheckControlNetFitsUNet(*config, SdxlBaseConfig().unet, "small/config.json").ok());

  auto sd15 = ParseControlNetConfig(R"({"_class_name": "ControlNetModel", "addition_embed_type": null})", "sd15/config.json");
  ASSERT_FALSE(sd15.ok());
  EXPECT_NE(sd15.status().message().find("field 'addition_embed_type'"), std::string::npos) << sd15.status();
}

}  // namespace
}  // namespace spriteforge::engine
