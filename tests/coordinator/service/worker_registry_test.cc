// The worker registry's rules: one stream per worker id, quarantine, when a worker's
// stored leases are extended (real progress, never heartbeats), when it counts as silent, and
// which models are served. Pure: no store, no streams (NullChannel stands in for one).
#include "coordinator/core/worker_registry.h"

#include <gtest/gtest.h>

namespace spriteforge::coordinator {
namespace {

class NullChannel : public WorkerChannel {
 public:
  void Send(const v1::CoordinatorMessage&) override {}
  void Close(const std::string&) override {}
};

v1::Register Registration(const std::string& model, int prefetch = 0) {
  v1::Register reg;
  reg.add_models(model);
  reg.set_max_batch(4);
  reg.set_prefetch(prefetch);
  reg.mutable_memory()->set_budget_bytes(10'000'000'000ull);
  return reg;
}

WorkerRules Rules() {
  WorkerRules rules;
  rules.lease_ms = 1000;
  rules.max_prefetch = 1;
  rules.invalid_result_strikes = 2;
  rules.quarantine_ms = 5000;
  return rules;
}

TEST(WorkerRegistryTest, AConnectedWorkersIdCannotBeTakenBySecondStream) {
  WorkerRegistry registry(Rules());
  auto first = std::make_shared<NullChannel>();
  auto second = std::make_shared<NullChannel>();
  ASSERT_TRUE(registry.Register(first, Registration("m"), "w1", 0).ok());
  auto taken = registry.Register(second, Registration("m"), "w1", 10);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.Of(first.get())->id, "w1");
  EXPECT_EQ(registry.Of(second.get()), nullptr);
  // Once its stream is gone, the id may connect again on another.
  ASSERT_NE(registry.Disconnect(first.get()), nullptr);
  EXPECT_EQ(registry.Of(first.get()), nullptr);
  ASSERT_TRUE(registry.Register(second, Registration("m"), "w1", 20).ok());
  EXPECT_EQ(registry.Of(second.get())->id, "w1");
  EXPECT_EQ(registry.all().size(), 1u);
}

TEST(WorkerRegistryTest, PrefetchIsCappedByTheCoordinatorsLimit) {
  WorkerRegistry registry(Rules());
  auto w = registry.Register(std::make_shared<NullChannel>(), Registration("m", 5), "w1", 0);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ((*w)->prefetch, 1);
  EXPECT_EQ((*w)->budget_bytes(), 10'000'000'000ull);
}

TEST(WorkerRegistryTest, AQuarantinedWorkerIsRefusedUntilItsTimeIsUp) {
  WorkerRegistry registry(Rules());
  EXPECT_FALSE(registry.quarantine().Strike("w1", 0));
  EXPECT_TRUE(registry.quarantine().Strike("w1", 0));
  auto refused = registry.Register(std::make_shared<NullChannel>(), Registration("m"), "w1", 4999);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(registry.Register(std::make_shared<NullChannel>(), Registration("m"), "w1", 5000).ok());
}

TEST(WorkerRegistryTest, HeartbeatsKeepAWorkerRegisteredButNeverExtendItsLeases) {
  WorkerRegistry registry(Rules());
  WorkerState& w = **registry.Register(std::make_shared<NullChannel>(), Registration("m"), "w1", 0);
  registry.Heard(w, 900);
  EXPECT_EQ(w.last_seen_ms, 900);
  EXPECT_EQ(w.last_progress_ms, 0);  // hearing from it is not progress
  EXPECT_EQ(w.renewed_ms, 0);
  EXPECT_TRUE(registry.Silent(1900).empty());
  // Real progress (the ledger decides what counts): the stored leases are extended.
  EXPECT_TRUE(registry.Progressed(w, 1000));
  // Within a tenth of a lease of that renewal: not again (extending is a write).
  EXPECT_FALSE(registry.Progressed(w, 1050));
  EXPECT_EQ(w.last_progress_ms, 1050);
  EXPECT_TRUE(registry.Progressed(w, 1100));
}

TEST(WorkerRegistryTest, AWorkerGivenItsFirstBatchStartsItsProgressClock) {
  WorkerRegistry registry(Rules());
  WorkerState& w = **registry.Register(std::make_shared<NullChannel>(), Registration("m"), "w1", 0);
  registry.Assigned(w, /*held_nothing=*/false, 500);
  EXPECT_EQ(w.last_progress_ms, 0);
  registry.Assigned(w, /*held_nothing=*/true, 700);
  EXPECT_EQ(w.last_progress_ms, 700);
}

TEST(WorkerRegistryTest, ConnectedWorkersUnheardForALeaseAreSilent) {
  WorkerRegistry registry(Rules());
  auto a = std::make_shared<NullChannel>();
  auto b = std::make_shared<NullChannel>();
  ASSERT_TRUE(registry.Register(a, Registration("m"), "a", 0).ok());
  ASSERT_TRUE(registry.Register(b, Registration("m"), "b", 0).ok());
  registry.Heard(*registry.Find("b"), 800);
  EXPECT_TRUE(registry.Silent(1000).empty());
  auto silent = registry.Silent(1001);
  ASSERT_EQ(silent.size(), 1u);
  EXPECT_EQ(silent[0]->id, "a");
  // Dropped (detached): no longer connected, so no longer silent, and its stream comes back to close.
  EXPECT_EQ(registry.Detach(*silent[0]), a);
  EXPECT_TRUE(registry.Silent(1001).empty());
  EXPECT_EQ(registry.Of(a.get()), nullptr);
}

TEST(WorkerRegistryTest, ADisconnectedWorkerIsForgottenAfterTheRetentionTime) {
  WorkerRegistry registry(Rules());
  auto gone = std::make_shared<NullChannel>();
  auto stays = std::make_shared<NullChannel>();
  ASSERT_TRUE(registry.Register(gone, Registration("m"), "gone", 0).ok());
  ASSERT_TRUE(registry.Register(stays, Registration("m"), "stays", 0).ok());
  registry.Disconnect(gone.get());
  EXPECT_TRUE(registry.Forget(60'000, 60'000).empty());
  // Connected workers are never forgotten, however long ago they were heard (Silent drops them).
  EXPECT_EQ(registry.Forget(60'001, 60'000), std::vector<std::string>{"gone"});
  EXPECT_EQ(registry.Find("gone"), nullptr);
  EXPECT_NE(registry.Find("stays"), nullptr);
  // It may come back, as a new worker.
  ASSERT_TRUE(registry.Register(gone, Registration("m"), "gone", 70'000).ok());
  EXPECT_EQ(registry.all().size(), 2u);
}

TEST(WorkerRegistryTest, OnlyConnectedWorkersServeTheirModels) {
  WorkerRegistry registry(Rules());
  auto channel = std::make_shared<NullChannel>();
  ASSERT_TRUE(registry.Register(channel, Registration("tiny"), "w1", 0).ok());
  EXPECT_TRUE(registry.Serves("tiny"));
  EXPECT_FALSE(registry.Serves("other"));
  registry.Disconnect(channel.get());
  EXPECT_FALSE(registry.Serves("tiny"));
}

TEST(WorkerRegistryTest, RateFollowsResultsAndPeakIsKept) {
  WorkerRegistry registry(Rules());
  WorkerState& w = **registry.Register(std::make_shared<NullChannel>(), Registration("m"), "w1", 0);
  registry.RecordImages(w, 2, 1000);
  EXPECT_DOUBLE_EQ(w.images_per_second, 2.0);
  registry.RecordImages(w, 4, 1000);
  EXPECT_DOUBLE_EQ(w.images_per_second, 0.7 * 2 + 0.3 * 4);
  EXPECT_EQ(w.images_done, 6);
  registry.RecordPeak(w, 3'000'000'000ull, 2, 1024, 1024);
  registry.RecordPeak(w, 2'000'000'000ull, 1, 1024, 1024);
  EXPECT_EQ(w.peak_bytes, 3'000'000'000ull);
}

// On a Spark the device's memory is the machine's: total less free is every process's use.
// What the worker reports as its own is what it uses; the machine's stays beside it.
TEST(WorkerRegistryTest, UsedMemoryIsTheWorkersOwnAndTheMachinesIsKeptApart) {
  WorkerRegistry registry(Rules());
  v1::Register reg = Registration("m");
  v1::MemoryReport& m = *reg.mutable_memory();
  m.set_total_bytes(128'000'000'000ull);
  m.set_free_bytes(40'000'000'000ull);
  m.set_process_bytes(30'000'000'000ull);
  m.set_resident_bytes(20'000'000'000ull);
  WorkerState& w = **registry.Register(std::make_shared<NullChannel>(), reg, "w1", 0);
  EXPECT_EQ(w.used_bytes(), 30'000'000'000ull);
  EXPECT_EQ(w.machine_used_bytes(), 88'000'000'000ull);
}

// A worker that predates process_bytes sends neither it nor resident_bytes: "used" is then
// all it can be, the machine's. A worker that holds no device memory yet (0, with its
// resident memory set) uses none of the device.
TEST(WorkerRegistryTest, UsedMemoryOfAWorkerThatDoesNotReportItsOwnIsTheMachines) {
  WorkerRegistry registry(Rules());
  v1::Register reg = Registration("m");
  reg.mutable_memory()->set_total_bytes(80'000'000'000ull);
  reg.mutable_memory()->set_free_bytes(60'000'000'000ull);
  WorkerState& w = **registry.Register(std::make_shared<NullChannel>(), reg, "old", 0);
  EXPECT_EQ(w.used_bytes(), 20'000'000'000ull);
  EXPECT_EQ(w.machine_used_bytes(), 20'000'000'000ull);
  w.memory.set_resident_bytes(3'000'000'000ull);
  EXPECT_EQ(w.used_bytes(), 0u);
  EXPECT_EQ(w.machine_used_bytes(), 20'000'000'000ull);
}

}  // namespace
}  // namespace spriteforge::coordinator
