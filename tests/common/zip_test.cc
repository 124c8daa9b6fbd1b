// Archives as Python's zipfile reads them: names, contents and CRCs checked by testzip().
#include "common/zip.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace spriteforge {
namespace {

std::string WriteTemp(const std::string& bytes) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("zip_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".zip"))
                               .string();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(ZipWriterTest, PythonsZipfileReadsTheFilesBack) {
  ZipWriter zip;
  ASSERT_TRUE(zip.Add("job-1/0_7.png", std::string("\x89PNG\r\n\x1a\n\0\xff", 10)).ok());
  ASSERT_TRUE(zip.Add("job-1/0_7.json", R"({"seed": 7})").ok());
  ASSERT_TRUE(zip.Add("job-1/empty.txt", "").ok());
  const std::string path = WriteTemp(zip.Finish());
  const std::string check =
      "/usr/bin/python3 -c \"import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); "
      "assert z.testzip() is None; "
      "assert z.namelist() == ['job-1/0_7.png', 'job-1/0_7.json', 'job-1/empty.txt'], z.namelist(); "
      "assert z.read('job-1/0_7.json') == b'{\\\"seed\\\": 7}'; "
      "assert z.read('job-1/0_7.png') == bytes([0x89]) + b'PNG\\r\\n\\x1a\\n\\x00\\xff'\" " + path;
  EXPECT_EQ(std::system(check.c_str()), 0);
  std::filesystem::remove(path);
}

TEST(ZipWriterTest, AnEmptyArchiveIsTheEndRecordAlone) {
  ZipWriter zip;
  EXPECT_EQ(zip.Finish().size(), 22u);
}

TEST(ZipWriterTest, ANamelessFileIsRefused) {
  ZipWriter zip;
  EXPECT_FALSE(zip.Add("", "x").ok());
}

}  // namespace
}  // namespace spriteforge
