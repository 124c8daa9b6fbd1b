// spriteforge-generate as a user runs it: golden cases reproduce the reference PNGs within
// one 8-bit level, sidecars hold the parameters, and bad input exits 2 with one line.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/png.h"
#include "tests/worker/engine/golden.h"

namespace spriteforge::engine {
namespace {

struct CliRun {
  int exit_code;
  std::string output;  // stdout and stderr
};

CliRun RunCli(const std::string& binary, const std::string& args) {
  std::string command = binary + " " + args + " 2>&1";
  CliRun run{0, ""};
  FILE* pipe = popen(command.c_str(), "r");
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) run.output.append(buffer.data(), n);
  int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

CliRun Generate(const std::string& args) {
  const char* binary = std::getenv("SPRITEFORGE_GENERATE");
  return RunCli(binary ? binary : SPRITEFORGE_GENERATE_PATH, args);
}

int MaxLevelDifference(const std::string& a, const std::string& b) {
  auto x = ReadPngFile(a), y = ReadPngFile(b);
  EXPECT_TRUE(x.ok() && y.ok()) << a << " / " << b;
  if (!x.ok() || !y.ok() || x->pixels.size() != y->pixels.size()) return 256;
  int worst = 0;
  for (size_t i = 0; i < x->pixels.size(); ++i) worst = std::max(worst, std::abs(int(x->pixels[i]) - int(y->pixels[i])));
  return worst;
}

std::string TempDir(const std::string& name) {
  auto dir = std::filesystem::path(::testing::TempDir()) / name;
  std::filesystem::remove_all(dir);
  return dir.string();
}

TEST(GenerateCli, ReproducesGoldenImagesFromBothLayouts) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const std::string g = testing::GoldenDir();
  const std::string single = "--model " + g + "/tiny-sdxl.safetensors --config " + g + "/diffusers --tokenizer " + g + "/tokenizer";
  const std::string folder = "--model " + g + "/diffusers";
  for (const std::string& model : {single, folder}) {
    const std::string out = TempDir("generate_cli");
    CliRun run = Generate(model + " --prompt 'a pixel art knight with a sword, 16-bit sprite' --seed 42"
                       " --prompt 'red potion bottle icon' --seed 7 --steps 4 --cfg 5 --width 128 --height 128"
                       " --sampler euler --out " + out);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_LE(MaxLevelDifference(out + "/0_42.png", g + "/e2e.euler_cfg_0.png"), 1);
    EXPECT_LE(MaxLevelDifference(out + "/1_7.png", g + "/e2e.euler_cfg_1.png"), 1);
    CliRun neg = Generate(model + " --prompt 'treasure chest, game asset' --negative 'blurry, lowres' --seed 1234"
                       " --steps 5 --cfg 7 --width 192 --height 128 --sampler euler_ancestral --out " + out);
    ASSERT_EQ(neg.exit_code, 0) << neg.output;
    EXPECT_LE(MaxLevelDifference(out + "/0_1234.png", g + "/e2e.euler_a_neg_0.png"), 1);
    CliRun karras = Generate(model + " --prompt 'green slime monster' --seed 2024 --steps 6 --cfg 6 --width 128"
                          " --height 128 --sampler dpmpp_2m --schedule karras --out " + out);
    ASSERT_EQ(karras.exit_code, 0) << karras.output;
    EXPECT_LE(MaxLevelDifference(out + "/0_2024.png", g + "/e2e.dpmpp_2m_karras_0.png"), 1);
    CliRun plain = Generate(model + " --prompt 'stone wall tile' --seed 5 --steps 3 --cfg 1 --width 128 --height 128"
                         " --out " + out);
    ASSERT_EQ(plain.exit_code, 0) << plain.output;
    EXPECT_LE(MaxLevelDifference(out + "/0_5.png", g + "/e2e.no_cfg_0.png"), 1);

    auto sidecar = nlohmann::json::parse(*ReadFile(out + "/0_1234.json"));
    EXPECT_EQ(sidecar["negative"], "blurry, lowres");
    EXPECT_EQ(sidecar["sampler"], "euler_ancestral");
    EXPECT_EQ(sidecar["width"], 192);
    PngText text;
    ASSERT_TRUE(ReadPngFile(out + "/0_1234.png", &text).ok());
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text[0].first, "parameters");
    EXPECT_NE(text[0].second.find("Seed: 1234"), std::string::npos);
  }
}

// A single-file checkpoint alone in its folder, no --tokenizer: the CLIP vocabulary shipped
// with the engine gives the golden images.
TEST(GenerateCli, ASingleFileWithoutTokenizerUsesTheShippedVocabulary) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const std::string g = testing::GoldenDir();
  const std::string models = TempDir("generate_cli_alone");
  std::filesystem::create_directories(models);
  std::filesystem::create_symlink(g + "/tiny-sdxl.safetensors", models + "/sdxl.safetensors");
  const std::string out = models + "/out";
  CliRun run = Generate("--model " + models + "/sdxl.safetensors --config " + g + "/diffusers" +
                        " --prompt 'a pixel art knight with a sword, 16-bit sprite' --seed 42 --steps 4 --cfg 5"
                        " --width 128 --height 128 --sampler euler --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("using the CLIP vocabulary in"), std::string::npos) << run.output;
  EXPECT_LE(MaxLevelDifference(out + "/0_42.png", g + "/e2e.euler_cfg_0.png"), 1);
  // An explicit folder still wins, and a wrong one is an error, not a silent fallback.
  CliRun wrong = Generate("--model " + models + "/sdxl.safetensors --config " + g + "/diffusers --tokenizer " +
                          models + "/nope --prompt x --steps 1 --width 64 --height 64 --out " + out);
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.output.find("no vocab.json"), std::string::npos) << wrong.output;
}

// The workflow cases as a user types them: a LoRA in either file format, and img2img
// from init.png (whose size becomes the image size).
TEST(GenerateCli, ReproducesGoldenWorkflowCases) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const std::string g = testing::GoldenDir(), w = testing::WorkflowsDir();
  const std::string model = "--model " + g + "/tiny-sdxl.safetensors --config " + g + "/diffusers --tokenizer " + g + "/tokenizer";
  const std::string out = TempDir("generate_cli_workflows");
  for (const char* lora : {"lora-kohya.safetensors", "lora-diffusers.safetensors"}) {
    CliRun run = Generate(model + " --prompt 'a pixel art knight with a sword, 16-bit sprite' --negative blurry --seed 42"
                       " --steps 4 --cfg 5 --width 128 --height 128 --lora " + w + "/" + lora + ":0.75 --out " + out);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    EXPECT_LE(MaxLevelDifference(out + "/0_42.png", w + "/lora.euler_0.png"), 1) << lora;
  }
  auto sidecar = nlohmann::json::parse(*ReadFile(out + "/0_42.json"));
  EXPECT_EQ(sidecar["loras"][0]["name"], "lora-diffusers");
  EXPECT_EQ(sidecar["loras"][0]["strength"], 0.75);
  EXPECT_EQ(sidecar["loras"][0]["path"], w + "/lora-diffusers.safetensors");
  PngText text;
  ASSERT_TRUE(ReadPngFile(out + "/0_42.png", &text).ok());
  EXPECT_NE(text[0].second.find("16-bit sprite <lora:lora-diffusers:0.75>\n"), std::string::npos) << text[0].second;

  CliRun img2img = Generate(model + " --prompt 'red potion bottle icon, pixel art' --seed 99 --steps 10 --cfg 5"
                         " --init-image " + w + "/init.png --strength 0.6 --out " + out);
  ASSERT_EQ(img2img.exit_code, 0) << img2img.output;
  EXPECT_LE(MaxLevelDifference(out + "/0_99.png", w + "/img2img.euler_0.png"), 1);
  sidecar = nlohmann::json::parse(*ReadFile(out + "/0_99.json"));
  EXPECT_EQ(sidecar["denoising_strength"], 0.6);
  EXPECT_EQ(sidecar["width"], 128);
  EXPECT_EQ(sidecar["init_image"], w + "/init.png");
  text.clear();
  ASSERT_TRUE(ReadPngFile(out + "/0_99.png", &text).ok());
  EXPECT_NE(text[0].second.find(", Denoising strength: 0.6"), std::string::npos) << text[0].second;
}

// A sprite set's frame as a user types it: a pose for the ControlNet (full strength until
// three quarters of the steps) and the hero's picture for the IP-Adapter, whose image encoder
// is found beside the adapter file. Two seeds reproduce the golden pose_and_identity case.
TEST(GenerateCli, ReproducesTheGoldenPoseAndIdentityCase) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const std::string g = testing::GoldenDir(), c = testing::ControlsDir();
  const std::string out = TempDir("generate_cli_controls");
  const std::string prompt = " --prompt 'a pixel art knight with a sword, 16-bit sprite' --negative blurry";
  CliRun run = Generate("--model " + g + "/diffusers" + prompt + " --seed 11" + prompt + " --seed 12" +
                        " --steps 4 --cfg 5 --sampler euler_ancestral --controlnet " + c + "/controlnet:" + c +
                        "/pose_and_identity.euler_a.control0.png:0.9:0:0.75 --ip-adapter " + c +
                        "/ip-adapter-plus.safetensors --reference " + c + "/reference.png:0.6 --out " + out);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_LE(MaxLevelDifference(out + "/0_11.png", c + "/pose_and_identity.euler_a_0.png"), 1);
  EXPECT_LE(MaxLevelDifference(out + "/1_12.png", c + "/pose_and_identity.euler_a_1.png"), 1);
  auto sidecar = nlohmann::json::parse(*ReadFile(out + "/1_12.json"));
  EXPECT_EQ(sidecar["width"], 128);  // the control image's size
  EXPECT_EQ(sidecar["controlnets"][0]["name"], "controlnet");
  EXPECT_EQ(sidecar["controlnets"][0]["end"], 0.75);
  EXPECT_EQ(sidecar["controlnets"][0]["path"], c + "/controlnet");
  EXPECT_EQ(sidecar["ip_adapter"]["scale"], 0.6);
  EXPECT_EQ(sidecar["ip_adapter"]["image_encoder_path"], c + "/image_encoder");
  EXPECT_EQ(sidecar["ip_adapter"]["references"][0], c + "/reference.png");
  PngText text;
  ASSERT_TRUE(ReadPngFile(out + "/1_12.png", &text).ok());
  EXPECT_NE(text[0].second.find(", ControlNet 0: \"Module: none, Model: controlnet, Weight: 0.9, "), std::string::npos)
      << text[0].second;
  EXPECT_NE(text[0].second.find("Guidance End: 0.75"), std::string::npos) << text[0].second;
  EXPECT_NE(text[0].second.find(", ControlNet 1: \"Module: ip-adapter_clip_sdxl, Model: ip-adapter-plus, Weight: 0.6"),
            std::string::npos) << text[0].second;
}

// Control flags are read before the model loads, so each mistake costs one line and no time
// (a few cases: each run starts LibTorch).
TEST(GenerateCli, ControlFlagMistakesExitTwoWithOneLine) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const std::string c = testing::ControlsDir();
  const std::string model = "--model " + testing::GoldenDir() + "/diffusers --prompt x --out " + TempDir("generate_bad");
  const std::string pose = c + "/pose_and_identity.euler_a.control0.png";
  struct Case { std::string args, message; };
  const Case cases[] = {
      {"--controlnet " + c + "/controlnet", "--controlnet: expected PATH:IMAGE[:SCALE[:START:END]]"},
      {"--controlnet " + c + "/controlnet:" + pose + ":0.9:0.5", "START needs END"},
      {"--controlnet " + c + "/controlnet:" + pose + " --width 128 --height 64",
       "control image is 128x128 but the image is 128x64"},
      {"--reference " + c + "/reference.png", "--reference needs --ip-adapter"},
      {"--ip-adapter " + c + "/ip-adapter.safetensors --reference " + c + "/reference.png:0.5 --reference " + c +
           "/reference.png:0.6", "scales 0.5 and 0.6: the IP-Adapter has one scale for all its references"},
  };
  for (const Case& k : cases) {
    CliRun run = Generate(model + " " + k.args);
    EXPECT_EQ(run.exit_code, 2) << k.args << "\n" << run.output;
    EXPECT_EQ(run.output.rfind("spriteforge-generate: error: ", 0), 0u) << run.output;
    EXPECT_NE(run.output.find(k.message), std::string::npos) << run.output;
    EXPECT_EQ(std::count(run.output.begin(), run.output.end(), '\n'), 1) << run.output;
  }
}

TEST(GenerateCli, TheGoldenCheckAnswersHelpAndVersionLikeEveryProgram) {
  CliRun help = RunCli(SPRITEFORGE_GOLDEN_CHECK_PATH, "--help");
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_NE(help.output.find("--golden TEXT REQUIRED"), std::string::npos) << help.output;
  CliRun version = RunCli(SPRITEFORGE_GOLDEN_CHECK_PATH, "--version");
  EXPECT_EQ(version.exit_code, 0) << version.output;
  EXPECT_NE(version.output.find("spriteforge-golden-check 0.1.0"), std::string::npos) << version.output;
  CliRun typo = RunCli(SPRITEFORGE_GOLDEN_CHECK_PATH, "--golden /g --tolerence 1");
  EXPECT_EQ(typo.exit_code, 2) << typo.output;
  EXPECT_NE(typo.output.find("did you mean --tolerance?"), std::string::npos) << typo.output;
}

TEST(GenerateCli, BadInputExitsTwoWithOneLine) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  const std::string model = "--model " + testing::GoldenDir() + "/diffusers --out " + TempDir("generate_bad");
  struct Case { std::string args, message; };
  const Case cases[] = {
      {"--model /nonexistent/m.safetensors --prompt x --out /tmp/x", "/nonexistent/m.safetensors"},
      {model + " --prompt x --width 100", "multiples of 8"},
      {model + " --prompt x --sampler ddim", "unknown sampler 'ddim'"},
      {model + " --prompt a --prompt b --seed 1", "1 --seed for 2 --prompt"},
      {model + " --prompt a --negative x --negative y", "2 --negative for 1 --prompt"},
      {model + " --prompt a --steps many", "--steps: 'many' is not an integer"},
      {model, "--prompt is required"},
      {model + " --prompt a --lora /no/such.safetensors:0.5", "--lora: /no/such.safetensors: no such file"},
      {model + " --prompt a --strength 0.5", "--strength needs --init-image"},
      {model + " --prompt a --sampler lcm --schedule karras", "uses its own timesteps"},
  };
  for (const Case& c : cases) {
    CliRun run = Generate(c.args);
    EXPECT_EQ(run.exit_code, 2) << c.args << "\n" << run.output;
    EXPECT_NE(run.output.find(c.message), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("spriteforge-generate: error: "), std::string::npos) << run.output;
  }
}

}  // namespace
}  // namespace spriteforge::engine
