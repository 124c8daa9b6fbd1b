// LoRA tensor names resolve to the model's layers in every naming SDXL LoRAs ship with;
// anything else is an error naming the tensor.
#include "worker/engine/base/lora_keys.h"

#include <gtest/gtest.h>

namespace spriteforge::engine {
namespace {

// A few layers of the tiny model (golden tiny-sdxl's configs: two resnets per level,
// attention from level 1 on).
LoraModuleIndex Index() {
  LoraModuleIndex index;
  index.Add(Component::kUNet, "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", true);
  index.Add(Component::kUNet, "down_blocks.1.attentions.0.proj_in", true);
  index.Add(Component::kUNet, "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj", true);
  index.Add(Component::kUNet, "up_blocks.0.attentions.2.transformer_blocks.1.attn2.to_out.0", true);
  index.Add(Component::kUNet, "down_blocks.0.resnets.0.conv1", false);
  index.Add(Component::kUNet, "down_blocks.0.resnets.0.time_emb_proj", true);
  index.Add(Component::kUNet, "time_embedding.linear_1", true);
  index.Add(Component::kTextEncoder, "text_model.encoder.layers.0.self_attn.q_proj", true);
  index.Add(Component::kTextEncoder2, "text_model.encoder.layers.0.mlp.fc2", true);
  return index;
}

SdxlConfig Tiny() {
  SdxlConfig c = SdxlBaseConfig();
  c.unet.layers_per_block = 2;
  c.unet.down_block_types = {"DownBlock2D", "CrossAttnDownBlock2D"};
  c.unet.up_block_types = {"CrossAttnUpBlock2D", "UpBlock2D"};
  return c;
}

absl::StatusOr<std::vector<LoraLayerKeys>> Resolve(const std::vector<std::string>& names) {
  return ResolveLoraKeys(names, Index(), Tiny(), "test.safetensors");
}

std::string ModuleOf(const std::string& stem, const std::string& down, const std::string& up) {
  auto layers = Resolve({stem + down, stem + up});
  EXPECT_TRUE(layers.ok()) << layers.status();
  if (!layers.ok() || layers->size() != 1) return "";
  return (*layers)[0].module;
}

TEST(LoraKeys, KohyaSgmNames) {
  const char* kDown = ".lora_down.weight";
  const char* kUp = ".lora_up.weight";
  EXPECT_EQ(ModuleOf("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", kDown, kUp),
            "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q");
  EXPECT_EQ(ModuleOf("lora_unet_input_blocks_4_1_proj_in", kDown, kUp), "down_blocks.1.attentions.0.proj_in");
  EXPECT_EQ(ModuleOf("lora_unet_middle_block_1_transformer_blocks_0_ff_net_0_proj", kDown, kUp),
            "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj");
  EXPECT_EQ(ModuleOf("lora_unet_output_blocks_2_1_transformer_blocks_1_attn2_to_out_0", kDown, kUp),
            "up_blocks.0.attentions.2.transformer_blocks.1.attn2.to_out.0");
  EXPECT_EQ(ModuleOf("lora_unet_input_blocks_1_0_emb_layers_1", kDown, kUp), "down_blocks.0.resnets.0.time_emb_proj");
  EXPECT_EQ(ModuleOf("lora_unet_time_embed_0", kDown, kUp), "time_embedding.linear_1");
}

TEST(LoraKeys, KohyaDiffusersNamesAndTextEncoders) {
  auto layers = Resolve({"lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight",
                         "lora_unet_down_blocks_1_attentions_0_proj_in.lora_up.weight",
                         "lora_unet_down_blocks_1_attentions_0_proj_in.alpha",
                         "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
                         "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight",
                         "lora_te2_text_model_encoder_layers_0_mlp_fc2.lora_down.weight",
                         "lora_te2_text_model_encoder_layers_0_mlp_fc2.lora_up.weight"});
  ASSERT_TRUE(layers.ok()) << layers.status();
  ASSERT_EQ(layers->size(), 3u);
  for (const LoraLayerKeys& l : *layers) {
    if (l.component == Component::kUNet) {
      EXPECT_EQ(l.module, "down_blocks.1.attentions.0.proj_in");
      EXPECT_EQ(l.alpha, "lora_unet_down_blocks_1_attentions_0_proj_in.alpha");
    } else if (l.component == Component::kTextEncoder) {
      EXPECT_EQ(l.module, "text_model.encoder.layers.0.self_attn.q_proj");
      EXPECT_TRUE(l.alpha.empty());
    } else {
      EXPECT_EQ(l.module, "text_model.encoder.layers.0.mlp.fc2");
      EXPECT_EQ(l.down, "lora_te2_text_model_encoder_layers_0_mlp_fc2.lora_down.weight");
      EXPECT_EQ(l.up, "lora_te2_text_model_encoder_layers_0_mlp_fc2.lora_up.weight");
    }
  }
}

TEST(LoraKeys, DiffusersPeftNames) {
  auto layers = Resolve({"unet.mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.lora_A.weight",
                         "unet.mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.lora_B.weight",
                         "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight",
                         "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight",
                         "text_encoder_2.text_model.encoder.layers.0.mlp.fc2.lora_A.weight",
                         "text_encoder_2.text_model.encoder.layers.0.mlp.fc2.lora_B.weight"});
  ASSERT_TRUE(layers.ok()) << layers.status();
  ASSERT_EQ(layers->size(), 3u);
  EXPECT_EQ((*layers)[0].component, Component::kTextEncoder);
  EXPECT_EQ((*layers)[1].component, Component::kTextEncoder2);
  EXPECT_EQ((*layers)[2].module, "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj");
}

TEST(LoraKeys, ErrorsNameTheTensor) {
  struct Case {
    std::vector<std::string> names;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{"lora_unet_input_blocks_1_0_in_layers_2.lora_down.weight"}, "convolution 'down_blocks.0.resnets.0.conv1' (a LoCon"},
      {{"lora_unet_input_blocks_9_1_proj_in.lora_down.weight"}, "names no layer of the model's unet"},
      {{"unet.down_blocks.1.attentions.0.proj_in.lora_magnitude_vector"}, "DoRA"},
      {{"lora_unet_input_blocks_4_1_proj_in.hada_w1_a"}, "LyCORIS"},
      {{"model.diffusion_model.input_blocks.4.1.proj_in.weight"}, "not a LoRA tensor"},
      {{"lora_unet_input_blocks_4_1_proj_in.lora_down.weight"}, "lacks its up"},
      {{"unet.down_blocks.1.attentions.0.proj_in.lora_B.weight"}, "lacks its down"},
      {{"lora_unet_input_blocks_4_1_proj_in.lora_down.weight", "lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight"},
       "both name layer"},
  };
  for (const Case& c : cases) {
    auto layers = Resolve(c.names);
    ASSERT_FALSE(layers.ok()) << c.expect;
    EXPECT_NE(layers.status().message().find(c.expect), std::string::npos) << layers.status();
    EXPECT_NE(layers.status().message().find("test.safetensors"), std::string::npos) << layers.status();
  }
}

}  // namespace
}  // namespace spriteforge::engine
