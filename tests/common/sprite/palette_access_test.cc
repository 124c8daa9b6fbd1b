// Which palettes a manifest may use. Its `postprocess` section runs on a worker for
// whoever submitted the job, so a palette is a built-in name, a list of colours, or a file
// name inside the worker's --palette-dir; a path would let anyone read the worker's files
// (the first line of a secret came back in the item's error message).
#include <gtest/gtest.h>

#include <filesystem>

#include "common/files.h"
#include "common/sprite/postprocess.h"

namespace spriteforge::postprocess {
namespace {

class PaletteAccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One folder per test: ctest may run them at once.
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("palette_access_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "palettes");
    ASSERT_TRUE(WriteFileAtomic((dir_ / "secret.hex").string(), "ff0000\n00ff00\n").ok());
    ASSERT_TRUE(WriteFileAtomic((dir_ / "palettes" / "forest.hex").string(), "0f380f\n9bbc0f\n306230\n").ok());
    worker_.folder = (dir_ / "palettes").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  absl::StatusOr<PostprocessOptions> Parse(const nlohmann::json& palette, const PaletteAccess& access) {
    return ParsePostprocessOptions({{"palette", palette}}, access);
  }

  std::filesystem::path dir_;
  PaletteAccess worker_;
};

TEST_F(PaletteAccessTest, PathsInAManifestAreRefusedWithoutReadingThem) {
  for (const std::string& path : {(dir_ / "secret.hex").string(), std::string("../secret.hex"),
                                  std::string("palettes/../../secret.hex"), std::string("..\\secret.hex")}) {
    for (const PaletteAccess& access : {worker_, PaletteAccess{}}) {
      auto options = Parse(path, access);
      ASSERT_FALSE(options.ok()) << path;
      EXPECT_EQ(std::string(options.status().message()).rfind("postprocess.palette: palette paths are not allowed", 0), 0u)
          << options.status();
    }
  }
  PaletteAccess submit;
  submit.read_files = false;
  EXPECT_FALSE(Parse((dir_ / "secret.hex").string(), submit).ok());
}

TEST_F(PaletteAccessTest, FileNamesComeFromTheWorkersPaletteFolder) {
  auto options = Parse("forest.hex", worker_);
  ASSERT_TRUE(options.ok()) << options.status();
  ASSERT_TRUE(options->palette);
  EXPECT_EQ(options->palette->colors.size(), 3u);
  EXPECT_EQ(options->palette->colors[0], (Rgb{0x0f, 0x38, 0x0f}));
  auto missing = Parse("secret.hex", worker_);  // exists beside the folder, not in it
  EXPECT_FALSE(missing.ok());
  auto no_folder = Parse("forest.hex", PaletteAccess{});
  ASSERT_FALSE(no_folder.ok());
  EXPECT_EQ(no_folder.status().message(),
            "postprocess.palette: \"forest.hex\" names a palette file, but this worker has no --palette-dir");
}

TEST_F(PaletteAccessTest, TheCoordinatorChecksNamesWithoutReadingFiles) {
  PaletteAccess submit;
  submit.read_files = false;
  EXPECT_TRUE(Parse("forest.hex", submit).ok());
  EXPECT_TRUE(Parse("nowhere.gpl", submit).ok()) << "the worker's folder is not the coordinator's to read";
  EXPECT_TRUE(Parse("pico8", submit).ok());
  auto unknown = Parse("c64", submit);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(std::string(unknown.status().message()).rfind("postprocess.palette: unknown palette \"c64\"", 0), 0u);
  auto both = ParsePostprocessOptions({{"palette", "forest.hex"}, {"colors", 4}}, submit);
  EXPECT_FALSE(both.ok());
}

TEST_F(PaletteAccessTest, InlineColoursNeedNoFiles) {
  auto options = Parse({"#0f380f", "9bbc0f"}, PaletteAccess{});
  ASSERT_TRUE(options.ok()) << options.status();
  ASSERT_EQ(options->palette->colors.size(), 2u);
  EXPECT_EQ(options->palette->colors[1], (Rgb{0x9b, 0xbc, 0x0f}));
  auto bad = Parse({"#0f380f", "green-ish"}, PaletteAccess{});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(std::string(bad.status().message()).rfind("postprocess.palette[1]: ", 0), 0u) << bad.status();
  EXPECT_FALSE(Parse(nlohmann::json::array(), PaletteAccess{}).ok());
  EXPECT_FALSE(Parse(7, PaletteAccess{}).ok());
}

TEST_F(PaletteAccessTest, TheLocalCommandStillReadsTheUsersOwnFiles) {
  PaletteAccess local;
  local.any_path = true;
  auto options = Parse((dir_ / "secret.hex").string(), local);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->palette->colors.size(), 2u);
}

}  // namespace
}  // namespace spriteforge::postprocess
