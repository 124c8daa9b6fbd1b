// The memory model starts from a prior, calibrates from reported peaks, and never plans a
// batch over budget.
#include "coordinator/scheduling/memory_model.h"

#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cstdint>

namespace spriteforge::coordinator {
namespace {

constexpr uint64_t GB = 1'000'000'000ull;

TEST(MemoryModel, PriorScalesPerImageTermWithPixels) {
  MemoryModel m({6 * GB, 1 * GB});
  EXPECT_EQ(m.PredictPeak(1, 1024, 1024), 7 * GB);
  EXPECT_EQ(m.PredictPeak(4, 1024, 1024), 10 * GB);
  EXPECT_EQ(m.PredictPeak(4, 512, 512), 7 * GB);  // a quarter of the pixels
}

TEST(MemoryModel, MaxBatchNeverExceedsBudgetOrHardCap) {
  MemoryModel m({6 * GB, 1 * GB});
  EXPECT_EQ(m.MaxBatch(1024, 1024, 10 * GB, 16), 4);
  EXPECT_EQ(m.MaxBatch(1024, 1024, 10 * GB, 2), 2);
  EXPECT_EQ(m.MaxBatch(1024, 1024, 5 * GB, 16), 0);  // not even one image fits
  for (uint64_t budget = 6 * GB; budget < 30 * GB; budget += GB / 3) {
    int b = m.MaxBatch(1024, 1024, budget, 64);
    if (b > 0) EXPECT_LE(m.PredictPeak(b, 1024, 1024), budget);
  }
}

TEST(MemoryModel, CalibratesFromReportedPeaks) {
  MemoryModel m({6 * GB, 1 * GB});
  m.Observe(1, 1024, 1024, 9 * GB);  // the worker is heavier than the prior thought
  EXPECT_EQ(m.PredictPeak(1, 1024, 1024), 9 * GB);
  EXPECT_EQ(m.PredictPeak(3, 1024, 1024), 11 * GB);  // prior slope, measured intercept
  m.Observe(5, 1024, 1024, 17 * GB);                 // two points: a measured line
  EXPECT_EQ(m.PredictPeak(3, 1024, 1024), 13 * GB);
  EXPECT_EQ(m.PredictPeak(1, 512, 512), 6 * GB + GB / 4);  // other shapes keep the prior
}

TEST(MemoryModel, OutOfMemoryHalvesTheCapForThatShape) {
  MemoryModel m({1 * GB, 1 * GB});
  EXPECT_EQ(m.MaxBatch(1024, 1024, 100 * GB, 16), 16);
  m.OnOutOfMemory(16, 1024, 1024);
  EXPECT_EQ(m.MaxBatch(1024, 1024, 100 * GB, 16), 8);
  m.OnOutOfMemory(8, 1024, 1024);
  EXPECT_EQ(m.MaxBatch(1024, 1024, 100 * GB, 16), 4);
  m.OnOutOfMemory(16, 1024, 1024);  // a late report of an older, larger batch: no raise
  EXPECT_EQ(m.CapFor(1024, 1024), 4);
  EXPECT_EQ(m.MaxBatch(512, 512, 100 * GB, 16), 16);
}

// A worker once registered with max_batch 2^31-1 and a budget of 2^64-1: the search for
// the largest batch looped ~2^31 predictions per item under the coordinator's lock.
TEST(MemoryModel, HugeCapsAndBudgetsAreAnsweredAtOnce) {
  MemoryModel m({6 * GB, 1 * GB});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(m.MaxBatch(1024, 1024, UINT64_MAX, INT_MAX), INT_MAX);
  EXPECT_EQ(m.MaxBatch(1024, 1024, 1000 * GB, INT_MAX), 994);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 0.1);
  MemoryModel free_images({6 * GB, 0});
  EXPECT_EQ(free_images.MaxBatch(64, 64, 7 * GB, 256), 256);
}

TEST(MemoryModel, HugeObservedPeaksSaturateInsteadOfWrapping) {
  MemoryModel m({6 * GB, 1 * GB});
  m.Observe(1, 1024, 1024, UINT64_MAX);
  EXPECT_EQ(m.PredictPeak(1000, 1024, 1024), UINT64_MAX);
  EXPECT_EQ(m.MaxBatch(1024, 1024, 100 * GB, 64), 0);
}

}  // namespace
}  // namespace spriteforge::coordinator
