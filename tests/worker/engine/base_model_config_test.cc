// SDXL architecture configs: diffusers config.json files override the built-in SDXL base.
#include "worker/engine/base/model_config.h"

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/worker/engine/golden.h"

namespace spriteforge::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A scratch folder laid out like a diffusers model: <dir>/<sub>/<file>.
class ConfigDir {
 public:
  ConfigDir() : dir_(std::filesystem::temp_directory_path() /
                     ("model_config_test_" + std::to_string(::getpid()) + "_" +
                      ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::filesystem::create_directories(dir_);
  }
  ~ConfigDir() { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& rel, const std::string& text) {
    const auto path = dir_ / rel;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path.string();
  }
  std::string path() const { return dir_.string(); }

 private:
  std::filesystem::path dir_;
};

TEST(ModelConfig, GoldenDiffusersFolderGivesTheTinyArchitecture) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  auto config = LoadSdxlConfig(testing::GoldenDir() + "/diffusers", SdxlBaseConfig());
  ASSERT_TRUE(config.ok()) << config.status();

  EXPECT_EQ(config->text_encoder.hidden_size, 32);
  EXPECT_EQ(config->text_encoder.num_attention_heads, 4);
  EXPECT_EQ(config->text_encoder.hidden_act, "quick_gelu");
  EXPECT_EQ(config->text_encoder_2.hidden_size, 32);
  EXPECT_EQ(config->text_encoder_2.intermediate_size, 96);
  EXPECT_EQ(config->text_encoder_2.hidden_act, "gelu");
  EXPECT_THAT(config->unet.block_out_channels, ElementsAre(32, 64, 64));
  EXPECT_THAT(config->unet.attention_head_dim, ElementsAre(2, 4, 4));
  EXPECT_THAT(config->unet.transformer_layers_per_block, ElementsAre(1, 1, 2));
  EXPECT_EQ(config->unet.cross_attention_dim, 64);
  EXPECT_EQ(config->unet.projection_class_embeddings_input_dim, 80);
  EXPECT_THAT(config->vae.block_out_channels, ElementsAre(32, 32, 64, 64));
  EXPECT_DOUBLE_EQ(config->vae.scaling_factor, 0.13025);
  EXPECT_DOUBLE_EQ(config->scheduler.beta_start, 0.00085);
  EXPECT_EQ(config->scheduler.beta_schedule, "scaled_linear");

  // The built-in tiny config describes the same model.
  const SdxlConfig tiny = TinySdxlConfig();
  EXPECT_EQ(tiny.text_encoder.intermediate_size, config->text_encoder.intermediate_size);
  EXPECT_EQ(tiny.text_encoder_2.num_attention_heads, config->text_encoder_2.num_attention_heads);
  EXPECT_EQ(tiny.unet.block_out_channels, config->unet.block_out_channels);
  EXPECT_EQ(tiny.unet.addition_time_embed_dim, config->unet.addition_time_embed_dim);
  EXPECT_EQ(tiny.vae.block_out_channels, config->vae.block_out_channels);
}

TEST(ModelConfig, SdxlBaseHasTheReleasedArchitecture) {
  const SdxlConfig base = SdxlBaseConfig();
  EXPECT_EQ(base.text_encoder.hidden_size, 768);
  EXPECT_EQ(base.text_encoder_2.hidden_size, 1280);
  EXPECT_EQ(base.text_encoder_2.num_hidden_layers, 32);
  EXPECT_THAT(base.unet.block_out_channels, ElementsAre(320, 640, 1280));
  EXPECT_THAT(base.unet.transformer_layers_per_block, ElementsAre(1, 2, 10));
  EXPECT_EQ(base.unet.cross_attention_dim, 768 + 1280);
  EXPECT_EQ(base.unet.projection_class_embeddings_input_dim, 1280 + 6 * 256);
}

TEST(ModelConfig, AFolderOverridesOnlyWhatItContains) {
  ConfigDir dir;
  dir.Write("vae/config.json", R"({"scaling_factor": 0.5, "block_out_channels": [8, 16]})");
  auto config = LoadSdxlConfig(dir.path(), SdxlBaseConfig());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_DOUBLE_EQ(config->vae.scaling_factor, 0.5);
  EXPECT_THAT(config->vae.block_out_channels, ElementsAre(8, 16));
  EXPECT_EQ(config->unet.cross_attention_dim, 2048);  // untouched SDXL base
}

TEST(ModelConfig, OneNumberAppliesToEveryUNetLevel) {
  auto unet = ParseUNetConfig(R"({"attention_head_dim": 8, "transformer_layers_per_block": 1})",
                              "unet/config.json");
  ASSERT_TRUE(unet.ok()) << unet.status();
  EXPECT_THAT(unet->attention_head_dim, ElementsAre(8, 8, 8));
  EXPECT_THAT(unet->transformer_layers_per_block, ElementsAre(1, 1, 1));
}

TEST(ModelConfig, ErrorsNameTheFileAndField) {
  ConfigDir dir;
  const std::string bad = dir.Write("unet/config.json", "{ not json");
  auto config = LoadSdxlConfig(dir.path(), SdxlBaseConfig());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr(bad));
  EXPECT_THAT(config.status().message(), HasSubstr("not a JSON object"));

  auto wrong_type = ParseVaeConfig(R"({"latent_channels": "four"})", "vae/config.json");
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_THAT(wrong_type.status().message(), HasSubstr("vae/config.json"));
  EXPECT_THAT(wrong_type.status().message(), HasSubstr("latent_channels"));

  auto short_list = ParseUNetConfig(R"({"attention_head_dim": [2, 4]})", "unet/config.json");
  ASSERT_FALSE(short_list.ok());
  EXPECT_THAT(short_list.status().message(), HasSubstr("attention_head_dim"));

  auto act = ParseClipTextConfig(R"({"hidden_act": "relu"})", "text_encoder/config.json");
  ASSERT_FALSE(act.ok());
  EXPECT_THAT(act.status().message(), HasSubstr("hidden_act"));

  auto prediction = ParseSchedulerConfig(R"({"prediction_type": "v_prediction"})",
                                         "scheduler/scheduler_config.json");
  ASSERT_FALSE(prediction.ok());
  EXPECT_THAT(prediction.status().message(), HasSubstr("v_prediction"));

  auto missing = LoadSdxlConfig(dir.path() + "/nowhere", SdxlBaseConfig());
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("nowhere"));
}

}  // namespace
}  // namespace spriteforge::engine
