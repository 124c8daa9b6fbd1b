#include "common/files.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace spriteforge {
namespace {

TEST(Files, AtomicWriteReplacesWholeFile) {
  auto dir = std::filesystem::path(::testing::TempDir()) / "files_test";
  std::filesystem::create_directories(dir);
  std::string path = (dir / "a.txt").string();
  ASSERT_TRUE(WriteFileAtomic(path, "first").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "second").ok());
  EXPECT_EQ(*ReadFile(path), "second");
  for (auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().filename(), "a.txt") << "temporary file left behind";
}

TEST(Files, ErrorsNameThePath) {
  auto r = ReadFile("/nonexistent/x.bin");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/x.bin"), std::string::npos);
  auto w = WriteFileAtomic("/nonexistent/dir/y.bin", "z");
  EXPECT_FALSE(w.ok());
  EXPECT_NE(w.message().find("/nonexistent/dir/y.bin"), std::string::npos);
}

}  // namespace
}  // namespace spriteforge
