// The client's local commands on real files: spriteforge pixelate and spriteforge sheet.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/sprite/palette.h"
#include "tests/common/sprite/fixtures.h"

#ifdef SPRITEFORGE_CLIENT_BIN
namespace spriteforge::postprocess {
namespace {

namespace fs = std::filesystem;

struct Run {
  int code;
  std::string err;
};

Run Client(const std::string& args, const fs::path& dir) {
  const std::string err = (dir / "stderr.txt").string();
  const int status = std::system((std::string(SPRITEFORGE_CLIENT_BIN) + " " + args + " >/dev/null 2>" + err).c_str());
  return {WEXITSTATUS(status), *ReadFile(err)};
}

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("commands_test_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "frames");
    ASSERT_TRUE(WritePngFile((dir_ / "render.png").string(), testing::Disc(256, 64),
                             {{"parameters", "red potion\nSteps: 30, Seed: 7"}}).ok());
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CommandsTest, PixelateMakesATransparentPaletteSpriteAndKeepsTheParameters) {
  auto r = Client("pixelate " + (dir_ / "render.png").string() + " --size 32x32 --palette gameboy --dither fs" +
                      " --transparent --out " + (dir_ / "sprite.png").string(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  PngText text;
  auto sprite = ReadPngFile((dir_ / "sprite.png").string(), &text);
  ASSERT_TRUE(sprite.ok());
  EXPECT_EQ(sprite->width, 32);
  EXPECT_EQ(sprite->channels, 4);
  EXPECT_EQ(sprite->at(0, 0)[3], 0);
  ASSERT_EQ(text.size(), 1u);
  EXPECT_EQ(text[0].second, "red potion\nSteps: 30, Seed: 7");
  const auto gb = BuiltinPalette("gameboy")->colors;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      if (sprite->at(x, y)[3]) EXPECT_NE(std::find(gb.begin(), gb.end(), Rgb{sprite->at(x, y)[0], sprite->at(x, y)[1], sprite->at(x, y)[2]}), gb.end());
}

TEST_F(CommandsTest, PixelateRejectsBadInputWithOneLine) {
  for (const std::string& args : {std::string("pixelate ") + (dir_ / "missing.png").string() + " --size 8 --out x.png",
                                  std::string("pixelate ") + (dir_ / "render.png").string() + " --size 8 --palette c64 --out x.png",
                                  std::string("pixelate ") + (dir_ / "render.png").string() + " --out x.png"}) {
    auto r = Client(args, dir_);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.rfind("spriteforge pixelate: ", 0), 0u) << r.err;
  }
}

TEST_F(CommandsTest, SheetPacksAFolderAndWritesItsAtlasBeside) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(WritePngFile((dir_ / "frames" / ("walk_" + std::to_string(i) + ".png")).string(),
                             testing::Disc(16, 3 + i)).ok());
  }
  auto r = Client("sheet " + (dir_ / "frames").string() + " --out " + (dir_ / "sheet.png").string(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  auto atlas = nlohmann::json::parse(*ReadFile((dir_ / "sheet.json").string()));
  EXPECT_EQ(atlas["frames"].size(), 5u);
  EXPECT_EQ(atlas["meta"]["image"], "sheet.png");
  auto sheet = ReadPngFile((dir_ / "sheet.png").string());
  EXPECT_EQ(sheet->width, atlas["meta"]["size"]["w"].get<int>());
  EXPECT_EQ(atlas["frames"]["walk_4"]["frame"]["w"], 16);
  auto empty = Client("sheet " + (dir_ / "nothing").string() + " --out " + (dir_ / "s.png").string(), dir_);
  EXPECT_EQ(empty.code, 1);
}

TEST_F(CommandsTest, SheetPlacesFramesInTheOrderOfTheirItemIndex) {
  // Result files are <index>_<seed>.png: frame 2 must come before frame 10.
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(WritePngFile((dir_ / "frames" / (std::to_string(i) + "_" + std::to_string(100 + i) + ".png")).string(),
                             testing::Disc(16, 3)).ok());
  }
  auto r = Client("sheet " + (dir_ / "frames").string() + " --columns 12 --out " + (dir_ / "walk.png").string(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  auto atlas = nlohmann::json::parse(*ReadFile((dir_ / "walk.json").string()));
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(atlas["frames"][std::to_string(i) + "_" + std::to_string(100 + i)]["frame"]["x"], 16 * i) << i;
  }
}

}  // namespace
}  // namespace spriteforge::postprocess
#endif
