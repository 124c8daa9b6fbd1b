// Available memory from /proc/meminfo: what the worker's budget starts from on the CPU and on
// unified-memory GPUs (DGX Spark's GB10). Fake meminfo texts and files stand in for machines.
#include "worker/engine/base/meminfo.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace spriteforge::engine {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr uint64_t kKiB = 1024;

// A DGX Spark's 128 GB shared by CPU and GPU, part of it taken (as a 6.x kernel writes it).
constexpr const char* kSparkMeminfo =
    "MemTotal:       124590860 kB\n"
    "MemFree:        90012344 kB\n"
    "MemAvailable:   117440512 kB\n"
    "Buffers:          102400 kB\n"
    "Cached:         25165824 kB\n"
    "SwapCached:            0 kB\n"
    "Active(anon):    4194304 kB\n"
    "HugePages_Total:       0\n"
    "HugePages_Free:        0\n"
    "Hugepagesize:       2048 kB\n";

// A kernel older than 3.14 has no MemAvailable line.
constexpr const char* kOldKernelMeminfo =
    "MemTotal:       16384000 kB\n"
    "MemFree:         2000000 kB\n"
    "Buffers:          300000 kB\n"
    "Cached:          5000000 kB\n"
    "SwapCached:            0 kB\n";

std::string ErrorOf(std::string_view text) {
  auto available = AvailableBytesFromMeminfo(text, "fake-meminfo");
  EXPECT_FALSE(available.ok()) << "accepted: " << text;
  return std::string(available.status().message());
}

TEST(Meminfo, MemAvailableIsTheAnswerInBytes) {
  auto available = AvailableBytesFromMeminfo(kSparkMeminfo);
  ASSERT_TRUE(available.ok()) << available.status();
  EXPECT_EQ(*available, 117440512 * kKiB);  // 112 GiB, not MemFree's 86
}

TEST(Meminfo, WithoutMemAvailableFreeBuffersAndCachedAreSummed) {
  auto available = AvailableBytesFromMeminfo(kOldKernelMeminfo);
  ASSERT_TRUE(available.ok()) << available.status();
  EXPECT_EQ(*available, (2000000 + 300000 + 5000000) * kKiB);
}

TEST(Meminfo, TabsAndATrailingLineWithoutNewlineParse) {
  auto available = AvailableBytesFromMeminfo("MemTotal:\t1000 kB\nMemAvailable:\t512 kB");
  ASSERT_TRUE(available.ok()) << available.status();
  EXPECT_EQ(*available, 512 * kKiB);
}

TEST(Meminfo, MissingFieldsAreNamed) {
  EXPECT_THAT(ErrorOf("MemTotal: 1000 kB\nMemFree: 10 kB\n"),
              AllOf(HasSubstr("fake-meminfo"), HasSubstr("no MemAvailable"), HasSubstr("Buffers/Cached")));
  EXPECT_THAT(ErrorOf(""), HasSubstr("no MemAvailable, and no MemFree/Buffers/Cached"));
}

TEST(Meminfo, MalformedLinesSayWhichLineAndWhy) {
  EXPECT_THAT(ErrorOf("MemTotal: 1000 kB\nthis is not meminfo\n"),
              AllOf(HasSubstr("fake-meminfo line 2"), HasSubstr("expected 'Name: value [kB]'"),
                    HasSubstr("'this is not meminfo'")));
  EXPECT_THAT(ErrorOf("MemAvailable: lots kB\n"), HasSubstr("line 1: value is not a whole number"));
  EXPECT_THAT(ErrorOf("MemAvailable: -5 kB\n"), HasSubstr("value is not a whole number"));
  EXPECT_THAT(ErrorOf("MemAvailable:\n"), HasSubstr("expected 'Name: value [kB]'"));
  EXPECT_THAT(ErrorOf("MemAvailable: 5 kB extra\n"), HasSubstr("expected 'Name: value [kB]'"));
  EXPECT_THAT(ErrorOf("MemAvailable: 5 MB\n"), HasSubstr("unknown unit (only kB)"));
  EXPECT_THAT(ErrorOf("Mem Available: 5 kB\n"), HasSubstr("bad field name"));
  EXPECT_THAT(ErrorOf(": 5 kB\n"), HasSubstr("bad field name"));
  EXPECT_THAT(ErrorOf("MemAvailable: 5 kB\nMemAvailable: 6 kB\n"), HasSubstr("line 2: field repeated"));
  EXPECT_THAT(ErrorOf("MemAvailable: 99999999999999999999 kB\n"), HasSubstr("value is not a whole number"));
  EXPECT_THAT(ErrorOf("MemAvailable: 18014398509481984 kB\n"), HasSubstr("value too large"));
}

TEST(Meminfo, TheFieldsUsedMustBeInKb) {
  EXPECT_THAT(ErrorOf("MemAvailable: 4096\n"), HasSubstr("MemAvailable has no kB unit"));
  EXPECT_THAT(ErrorOf("MemFree: 1 kB\nBuffers: 1 kB\nCached: 1\n"), HasSubstr("Cached has no kB unit"));
}

TEST(Meminfo, AFallbackSumThatOverflowsIsAnError) {
  EXPECT_THAT(ErrorOf("MemFree: 18014398509481983 kB\nBuffers: 18014398509481983 kB\nCached: 1 kB\n"),
              HasSubstr("overflows"));
}

class MeminfoFile : public ::testing::Test {
 protected:
  MeminfoFile()
      : path_(std::filesystem::temp_directory_path() /
              ("meminfo_test_" + std::to_string(::getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name())) {}
  ~MeminfoFile() override { std::filesystem::remove(path_); }

  std::string Write(const std::string& text) {
    std::ofstream(path_) << text;
    return path_.string();
  }

  std::filesystem::path path_;
};

TEST_F(MeminfoFile, ReadsAFakeFile) {
  auto available = ReadAvailableBytes(Write(kSparkMeminfo));
  ASSERT_TRUE(available.ok()) << available.status();
  EXPECT_EQ(*available, 117440512 * kKiB);
}

TEST_F(MeminfoFile, ErrorsNameTheFile) {
  const std::string path = Write("MemAvailable: 12 GB\n");
  auto available = ReadAvailableBytes(path);
  ASSERT_FALSE(available.ok());
  EXPECT_THAT(available.status().message(), HasSubstr(path + " line 1: unknown unit"));

  std::filesystem::remove(path_);
  available = ReadAvailableBytes(path);
  ASSERT_FALSE(available.ok());
  EXPECT_THAT(available.status().message(), AllOf(HasSubstr(path), HasSubstr("cannot open")));
}

// This machine's own report parses, and what it says is available fits in its total.
TEST(Meminfo, ThisMachinesMeminfoParses) {
  auto available = ReadAvailableBytes();
  ASSERT_TRUE(available.ok()) << available.status();
  EXPECT_GT(*available, 0u);
  const uint64_t total = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  EXPECT_LE(*available, total);
}

}  // namespace
}  // namespace spriteforge::engine
