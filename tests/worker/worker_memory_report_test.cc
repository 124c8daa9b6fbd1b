// The memory a worker reports: its budget (free memory plus its own weights, less the reserve
// it keeps for the rest of the machine) and its own use, apart from the machine's. On unified
// memory (DGX Spark's GB10: CPU and GPU share 128 GB) "free" is the system's available memory
// from /proc/meminfo, here a fake one.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "worker/engine/base/meminfo.h"
#include "worker/memory_report.h"
#include "worker/worker_session.h"

namespace spriteforge::worker {
namespace {

constexpr uint64_t kGiB = 1ull << 30;

// A Spark with 112 GiB available to share between the engine and everything else.
constexpr const char* kSparkMeminfo =
    "MemTotal:       124590860 kB\n"
    "MemFree:        90012344 kB\n"
    "MemAvailable:   117440512 kB\n"
    "Buffers:          102400 kB\n"
    "Cached:         25165824 kB\n";

class UnifiedMemoryBudget : public ::testing::Test {
 protected:
  UnifiedMemoryBudget()
      : path_(std::filesystem::temp_directory_path() /
              ("worker_memory_report_test_" + std::to_string(::getpid()) + "_" +
               ::testing::UnitTest::GetInstance()->current_test_info()->name())) {
    std::ofstream(path_) << kSparkMeminfo;
  }
  ~UnifiedMemoryBudget() override { std::filesystem::remove(path_); }

  // What the engine reports on a unified-memory GPU: the device total, the system's available
  // memory as "free", the weights it holds.
  engine::MemoryStats SparkStats(uint64_t weights_bytes) const {
    auto available = engine::ReadAvailableBytes(path_.string());
    EXPECT_TRUE(available.ok()) << available.status();
    engine::MemoryStats stats;
    stats.total_bytes = 124590860ull * 1024;
    stats.free_bytes = available.value_or(0);
    stats.weights_bytes = weights_bytes;
    stats.peak_allocated_bytes = 9 * kGiB;
    stats.peak_reserved_bytes = 10 * kGiB;
    return stats;
  }

  std::filesystem::path path_;
};

TEST_F(UnifiedMemoryBudget, IsAvailablePlusWeightsLessTheReserve) {
  const auto report = MemoryReportOf(SparkStats(7 * kGiB), 16 * kGiB);
  EXPECT_EQ(report.free_bytes(), 112 * kGiB);
  EXPECT_EQ(report.weights_bytes(), 7 * kGiB);
  EXPECT_EQ(report.budget_bytes(), (112 + 7 - 16) * kGiB);
  EXPECT_EQ(report.total_bytes(), 124590860ull * 1024);
  EXPECT_EQ(report.peak_allocated_bytes(), 9 * kGiB);
  EXPECT_EQ(report.peak_reserved_bytes(), 10 * kGiB);
}

TEST_F(UnifiedMemoryBudget, WithoutAReserveTheEngineMayUseAllOfIt) {
  EXPECT_EQ(MemoryReportOf(SparkStats(7 * kGiB), 0).budget_bytes(), (112 + 7) * kGiB);
}

TEST_F(UnifiedMemoryBudget, AReserveAboveWhatIsThereLeavesNothingNotANegative) {
  EXPECT_EQ(MemoryReportOf(SparkStats(7 * kGiB), 119 * kGiB).budget_bytes(), 0u);
  EXPECT_EQ(MemoryReportOf(SparkStats(7 * kGiB), 500 * kGiB).budget_bytes(), 0u);
  EXPECT_EQ(MemoryReportOf(SparkStats(7 * kGiB), 119 * kGiB - 1).budget_bytes(), 1u);
}

// Before the model loads, weights are 0 and the budget is the available memory less the reserve.
TEST_F(UnifiedMemoryBudget, BeforeWeightsLoadItIsAvailableLessTheReserve) {
  EXPECT_EQ(MemoryReportOf(SparkStats(0), 8 * kGiB).budget_bytes(), (112 - 8) * kGiB);
}

// A batch's result carries what the engine measured during it; the budget is the
// heartbeat's business, so the result leaves it unset.
TEST_F(UnifiedMemoryBudget, AResultCarriesTheMeasurementWithoutABudget) {
  const auto measured = MeasuredMemory(SparkStats(7 * kGiB));
  const auto reported = MemoryReportOf(SparkStats(7 * kGiB), 16 * kGiB);
  EXPECT_EQ(measured.budget_bytes(), 0u);
  EXPECT_EQ(measured.free_bytes(), reported.free_bytes());
  EXPECT_EQ(measured.total_bytes(), reported.total_bytes());
  EXPECT_EQ(measured.weights_bytes(), reported.weights_bytes());
  EXPECT_EQ(measured.peak_allocated_bytes(), reported.peak_allocated_bytes());
  EXPECT_EQ(measured.peak_reserved_bytes(), reported.peak_reserved_bytes());
  EXPECT_EQ(MeasuredMemory(SparkStats(7 * kGiB), kGiB).process_bytes(),
            MemoryReportOf(SparkStats(7 * kGiB), 16 * kGiB, kGiB).process_bytes());
}

// The worker's own memory: on unified memory (and CPUs) total - free is the machine's use,
// every process's; the worker's own is its resident memory plus the device memory it
// allocated, which the driver keeps outside the resident set.
TEST_F(UnifiedMemoryBudget, TheWorkersOwnUseIsItsResidentMemoryPlusItsDeviceMemory) {
  engine::MemoryStats stats = SparkStats(7 * kGiB);
  stats.host_memory = true;
  stats.reserved_bytes = 9 * kGiB;
  const auto report = MemoryReportOf(stats, 16 * kGiB, 3 * kGiB);
  EXPECT_EQ(report.process_bytes(), (3 + 9) * kGiB);
  EXPECT_EQ(report.resident_bytes(), 3 * kGiB);
  // A result carries the same.
  EXPECT_EQ(MeasuredMemory(stats, 3 * kGiB).process_bytes(), (3 + 9) * kGiB);
  EXPECT_EQ(MeasuredMemory(stats, 3 * kGiB).resident_bytes(), 3 * kGiB);
}

// On a discrete GPU total and free are the device's: the worker's own use of them is the
// device memory its allocator holds; its host memory is reported apart.
TEST(MemoryReportTest, OnADiscreteGpuTheWorkersOwnUseIsTheDeviceMemoryItHolds) {
  engine::MemoryStats stats;
  stats.total_bytes = 80 * kGiB;
  stats.free_bytes = 50 * kGiB;
  stats.weights_bytes = 7 * kGiB;
  stats.reserved_bytes = 25 * kGiB;
  const auto report = MemoryReportOf(stats, 2 * kGiB, 6 * kGiB);
  EXPECT_EQ(report.process_bytes(), 25 * kGiB);
  EXPECT_EQ(report.resident_bytes(), 6 * kGiB);
  EXPECT_EQ(report.budget_bytes(), (50 + 7 - 2) * kGiB);
}

// Unless told otherwise, a report reads this process's resident memory: on the CPU, where
// the allocator's memory is resident memory, that is all of the worker's own.
TEST(MemoryReportTest, ReadsThisProcessesResidentMemory) {
  const uint64_t before = ProcessResidentBytes();
  ASSERT_GT(before, 0u);
  engine::MemoryStats cpu;
  cpu.host_memory = true;
  cpu.total_bytes = 64 * kGiB;
  cpu.free_bytes = 32 * kGiB;
  const auto report = MemoryReportOf(cpu, 0);
  EXPECT_GT(report.resident_bytes(), 0u);
  EXPECT_EQ(report.process_bytes(), report.resident_bytes());
  // Resident memory moves a little between reads; the same order of size.
  EXPECT_GT(report.resident_bytes(), before / 2);
  EXPECT_LT(report.resident_bytes(), before * 2);
  EXPECT_GT(MeasuredMemory(cpu).process_bytes(), 0u);
}

// Not memory, but the other thing a worker tells the coordinator about itself at every
// connection: the id it registers under when started without --worker-id.
TEST(DefaultWorkerIdTest, IsTheHostAndDeviceTheSameAtEveryStart) {
  EXPECT_EQ(DefaultWorkerId("gpu1", "cuda:0"), "gpu1-cuda0");
  EXPECT_EQ(DefaultWorkerId("gpu1", "cuda:0"), DefaultWorkerId("gpu1", "cuda:0"));
  EXPECT_EQ(DefaultWorkerId("gpu1", "cuda"), "gpu1-cuda0");
  EXPECT_EQ(DefaultWorkerId("gpu1", "cuda:1"), "gpu1-cuda1");
  EXPECT_EQ(DefaultWorkerId("spark.lan", "cpu"), "spark.lan-cpu");
  // Only what the coordinator accepts in an id.
  EXPECT_EQ(DefaultWorkerId("-odd host!", "cuda:0"), "oddhost-cuda0");
}

}  // namespace
}  // namespace spriteforge::worker
