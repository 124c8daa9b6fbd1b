// The planner as a pure function: compatibility, memory fit, out-of-memory splits,
// priorities and fairness between jobs.
#include "coordinator/scheduling/planner.h"

#include <gtest/gtest.h>

#include <set>

namespace spriteforge::coordinator {
namespace {

constexpr uint64_t GB = 1'000'000'000ull;

BatchKey Key(int size = 1024, const std::string& model = "sdxl") {
  v1::SamplingParams sampling;
  sampling.set_width(size);
  sampling.set_height(size);
  sampling.set_steps(30);
  sampling.set_sampler(v1::SAMPLER_EULER);
  sampling.set_schedule(v1::SCHEDULE_NORMAL);
  return KeyOf(model, sampling, v1::ImageParams());
}

std::vector<PendingItem> Items(const std::string& job, int count, int priority = 0, int64_t submitted = 0,
                               BatchKey key = Key()) {
  std::vector<PendingItem> out;
  for (int i = 0; i < count; ++i) out.push_back({job, i, priority, submitted, key});
  return out;
}

WorkerView Worker(const std::string& id, const MemoryModel& memory, uint64_t budget = 80 * GB, int max_batch = 8) {
  return WorkerView{id, {"sdxl"}, budget, max_batch, true, &memory};
}

std::vector<PendingItem> Join(std::vector<PendingItem> a, const std::vector<PendingItem>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(Planner, BatchesOnlyCompatibleItems) {
  MemoryModel memory(kSdxlFp16Prior);
  auto pending = Join(Items("a", 3, 0, 0, Key(1024)), Items("b", 3, 0, 1, Key(512)));
  auto plan = Plan(pending, {Worker("w1", memory), Worker("w2", memory)}, {});
  ASSERT_EQ(plan.size(), 2u);
  for (const auto& a : plan) {
    for (const auto& item : a.items) EXPECT_EQ(item.key, a.key);
  }
  EXPECT_EQ(plan[0].items.size(), 3u);
  EXPECT_EQ(plan[1].items.size(), 3u);
}

TEST(Planner, BatchSizeFitsTheWorkersMemoryBudget) {
  MemoryModel memory({6 * GB, 1 * GB});
  auto plan = Plan(Items("a", 20), {Worker("w1", memory, 10 * GB, 16)}, {});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].items.size(), 4u);
  EXPECT_LE(memory.PredictPeak(4, 1024, 1024), 10 * GB);
  // A worker whose budget fits nothing gets nothing.
  EXPECT_TRUE(Plan(Items("a", 20), {Worker("small", memory, 5 * GB)}, {}).empty());
}

TEST(Planner, OutOfMemorySplitsTheNextBatch) {
  MemoryModel memory({1 * GB, 1 * GB});
  auto before = Plan(Items("a", 20), {Worker("w1", memory, 100 * GB, 16)}, {});
  ASSERT_EQ(before[0].items.size(), 16u);
  memory.OnOutOfMemory(16, 1024, 1024);
  auto after = Plan(Items("a", 20), {Worker("w1", memory, 100 * GB, 16)}, {});
  EXPECT_EQ(after[0].items.size(), 8u);
}

TEST(Planner, HigherPriorityFirst) {
  MemoryModel memory(kSdxlFp16Prior);
  auto pending = Join(Items("low", 4, 0, 0), Items("high", 4, 5, 1));
  auto plan = Plan(pending, {Worker("w1", memory, 80 * GB, 2)}, {});
  ASSERT_EQ(plan.size(), 1u);
  for (const auto& item : plan[0].items) EXPECT_EQ(item.job_id, "high");
}

TEST(Planner, FairBetweenJobsOfEqualPriority) {
  MemoryModel memory(kSdxlFp16Prior);
  auto pending = Join(Items("a", 10, 0, 0), Items("b", 10, 0, 1));
  // Job a was served more recently than b: b goes first.
  auto plan = Plan(pending, {Worker("w1", memory, 80 * GB, 2)}, {{"a", 7}, {"b", 3}});
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].items[0].job_id, "b");
  // Two idle workers in one call take turns between the jobs.
  auto both = Plan(pending, {Worker("w1", memory, 80 * GB, 2), Worker("w2", memory, 80 * GB, 2)}, {});
  ASSERT_EQ(both.size(), 2u);
  EXPECT_NE(both[0].items[0].job_id, both[1].items[0].job_id);
}

TEST(Planner, TopsUpABatchFromOtherJobsWithTheSameKey) {
  MemoryModel memory(kSdxlFp16Prior);
  auto pending = Join(Items("a", 2, 0, 0), Items("b", 5, 0, 1));
  auto plan = Plan(pending, {Worker("w1", memory, 80 * GB, 4)}, {});
  ASSERT_EQ(plan[0].items.size(), 4u);
  EXPECT_EQ(plan[0].items[0].job_id, "a");
  EXPECT_EQ(plan[0].items[1].job_id, "a");
  EXPECT_EQ(plan[0].items[2].job_id, "b");
}

TEST(Planner, NeverAssignsAnItemTwiceNorToBusyOrWrongModelWorkers) {
  MemoryModel memory(kSdxlFp16Prior);
  auto pending = Items("a", 5);
  WorkerView busy = Worker("busy", memory);
  busy.idle = false;
  WorkerView other = Worker("other", memory);
  other.models = {"sd15"};
  auto plan = Plan(pending, {busy, other, Worker("w1", memory, 80 * GB, 3), Worker("w2", memory, 80 * GB, 3)}, {});
  std::set<int> seen;
  size_t total = 0;
  for (const auto& a : plan) {
    EXPECT_TRUE(a.worker_id == "w1" || a.worker_id == "w2");
    for (const auto& item : a.items) {
      EXPECT_TRUE(seen.insert(item.index).second) << "item " << item.index << " assigned twice";
      ++total;
    }
  }
  EXPECT_EQ(total, 5u);
}

}  // namespace
}  // namespace spriteforge::coordinator
