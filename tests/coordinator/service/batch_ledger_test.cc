// The batch ledger's rules: a worker's report counts only for a batch it still holds, a
// preview only for an item of that batch at 1/8 of its size; batches in dispatch order;
// leases renewed by real progress only, lost after one lease without it;
// which failures count against the items; the storage pause's doubling. Pure.
#include "coordinator/core/batch_ledger.h"

#include <gtest/gtest.h>

namespace spriteforge::coordinator {
namespace {

ItemRecord Item(const std::string& job_id, int index, int size) {
  ItemRecord item;
  item.job_id = job_id;
  item.index = index;
  item.sampling.set_width(size);
  item.sampling.set_height(size);
  return item;
}

BatchState Batch(const std::string& id, const std::string& worker_id, std::vector<ItemRecord> records) {
  BatchState b;
  b.id = id;
  b.worker_id = worker_id;
  b.key.model = "m";
  for (const ItemRecord& r : records) b.items.push_back({r.job_id, r.index});
  b.records = std::move(records);
  return b;
}

TEST(BatchLedgerTest, AResultCountsOnlyFromTheWorkerHoldingTheBatch) {
  BatchLedger ledger;
  ledger.Add(Batch("b1", "w1", {Item("j", 0, 512), Item("j", 1, 512)}));
  v1::BatchResultMsg result;
  result.set_batch_id("b1");
  EXPECT_FALSE(ledger.TakeResult("w2", result).has_value());
  auto work = ledger.TakeResult("w1", result);
  ASSERT_TRUE(work.has_value());
  EXPECT_EQ(work->batch_size, 2);
  EXPECT_EQ(work->model, "m");
  ASSERT_EQ(work->items.size(), 2u);
  EXPECT_EQ(work->items[1].index, 1);
  // Released meanwhile (lease expired, worker lost): a late result does not count.
  ledger.Remove("b1");
  EXPECT_FALSE(ledger.TakeResult("w1", result).has_value());
  result.set_batch_id("b-unknown");
  EXPECT_FALSE(ledger.TakeResult("w1", result).has_value());
}

TEST(BatchLedgerTest, APreviewIsRelayedOnlyForTheBatchsItemsAtAnEighthOfTheirSize) {
  const BatchState b = Batch("b1", "w1", {Item("j", 3, 512)});
  v1::PreviewImage image;
  image.set_job_id("j");
  image.set_index(3);
  image.set_width(64);
  image.set_height(64);
  EXPECT_NE(BatchLedger::PreviewedItem(b, image), nullptr);
  image.set_width(128);
  EXPECT_EQ(BatchLedger::PreviewedItem(b, image), nullptr);  // not 1/8
  image.set_width(64);
  image.set_index(4);
  EXPECT_EQ(BatchLedger::PreviewedItem(b, image), nullptr);  // another item
  image.set_index(3);
  image.set_job_id("other");
  EXPECT_EQ(BatchLedger::PreviewedItem(b, image), nullptr);  // another job
}

TEST(BatchLedgerTest, AWorkersBatchesComeInDispatchOrderAndOnlyItMarksThemRendered) {
  BatchLedger ledger;
  // Ids that sort against dispatch order.
  ledger.Add(Batch("b-z", "w1", {Item("j", 0, 512)}));
  ledger.Add(Batch("b-a", "w1", {Item("j", 1, 512), Item("j", 2, 512)}));
  ledger.Add(Batch("b-m", "w2", {Item("j", 3, 512)}));
  EXPECT_EQ(ledger.BatchesOf("w1"), (std::vector<std::string>{"b-z", "b-a"}));
  EXPECT_EQ(ledger.RunningItems("w1"), 3);
  EXPECT_EQ(ledger.Unrendered("w1"), 2);
  EXPECT_FALSE(ledger.MarkRendered("w2", "b-z", 0));  // not w2's
  EXPECT_EQ(ledger.Unrendered("w1"), 2);
  EXPECT_TRUE(ledger.MarkRendered("w1", "b-z", 0));
  EXPECT_FALSE(ledger.MarkRendered("w1", "b-z", 0));  // once
  EXPECT_EQ(ledger.Unrendered("w1"), 1);
  EXPECT_EQ(ledger.HeldBy("w2", "b-a"), nullptr);
  EXPECT_NE(ledger.HeldBy("w1", "b-a"), nullptr);
  ledger.Remove("b-z");
  ledger.Remove("b-a");
  EXPECT_FALSE(ledger.HoldsAny("w1"));
  EXPECT_TRUE(ledger.HoldsAny("w2"));
}

// Leases: the batches below are dispatched at 0 with 4 steps; a lease is 1000 ms.
BatchState Leased(const std::string& id, const std::string& worker_id, int64_t at_ms = 0) {
  ItemRecord item = Item("j", 0, 512);
  item.sampling.set_steps(4);
  BatchState b = Batch(id, worker_id, {item});
  b.started_ms = at_ms;
  return b;
}

TEST(BatchLedgerTest, ABatchWithoutProgressIsLostAfterOneLease) {
  BatchLedger ledger;
  ledger.Add(Leased("b1", "w1"));
  EXPECT_TRUE(ledger.Overdue(1000, 1000).empty());
  EXPECT_EQ(ledger.Overdue(1001, 1000), std::vector<std::string>{"b1"});
  // A new step renews it for one lease from then, no more.
  EXPECT_TRUE(ledger.Stepped("w1", "b1", 1, 900));
  EXPECT_TRUE(ledger.Overdue(1900, 1000).empty());
  EXPECT_EQ(ledger.Overdue(1901, 1000), std::vector<std::string>{"b1"});
}

TEST(BatchLedgerTest, RepeatedStepsDoNotRenewALease) {
  BatchLedger ledger;
  ledger.Add(Leased("b1", "w1"));
  EXPECT_TRUE(ledger.Stepped("w1", "b1", 2, 500));
  EXPECT_FALSE(ledger.Stepped("w1", "b1", 2, 1400));  // the same step again
  EXPECT_FALSE(ledger.Stepped("w1", "b1", 1, 1400));  // an older one
  EXPECT_FALSE(ledger.Stepped("w1", "b1", 5, 1400));  // beyond the batch's 4 steps
  EXPECT_EQ(ledger.Overdue(1501, 1000), std::vector<std::string>{"b1"});
  // Rendered counts once; a second report of it is no progress either.
  EXPECT_TRUE(ledger.MarkRendered("w1", "b1", 1500));
  EXPECT_FALSE(ledger.MarkRendered("w1", "b1", 2400));
  EXPECT_EQ(ledger.Overdue(2501, 1000), std::vector<std::string>{"b1"});
}

TEST(BatchLedgerTest, ProgressForABatchItDoesNotHoldIsIgnored) {
  BatchLedger ledger;
  ledger.Add(Leased("b1", "w1"));
  ledger.Add(Leased("b2", "w2"));
  EXPECT_FALSE(ledger.Stepped("w1", "b-made-up", 1, 900));
  EXPECT_FALSE(ledger.Stepped("w1", "b2", 1, 900));  // another worker's
  EXPECT_FALSE(ledger.MarkRendered("w1", "b-made-up", 900));
  EXPECT_FALSE(ledger.Renew("w1", "b-made-up", 900));  // a result for it
  EXPECT_EQ(ledger.Overdue(1001, 1000), (std::vector<std::string>{"b1", "b2"}));
}

TEST(BatchLedgerTest, ProgressRenewsTheBatchesWaitingBehindItButNotThoseBefore) {
  BatchLedger ledger;
  ledger.Add(Leased("b1", "w1"));
  ledger.Add(Leased("b2", "w1"));  // prefetched: waits for b1
  ledger.Add(Leased("b3", "w1"));
  EXPECT_TRUE(ledger.Stepped("w1", "b1", 4, 800));
  EXPECT_TRUE(ledger.Overdue(1800, 1000).empty());
  EXPECT_TRUE(ledger.MarkRendered("w1", "b1", 900));
  // b1 is being packaged; steps of b2 do not keep it.
  EXPECT_TRUE(ledger.Stepped("w1", "b2", 1, 1500));
  EXPECT_EQ(ledger.Overdue(1901, 1000), std::vector<std::string>{"b1"});
  // b3 waits behind b2, so b2's step renewed it too.
  EXPECT_EQ(ledger.Overdue(2500, 1000), std::vector<std::string>{"b1"});
}

TEST(BatchLedgerTest, OnlyTheItemsOwnFailuresCountAgainstTheirAttempts) {
  for (auto reason : {v1::FAILURE_WORKER_LOST, v1::FAILURE_OUT_OF_MEMORY, v1::FAILURE_CANCELLED}) {
    EXPECT_FALSE(BatchLedger::RuleFor(reason, 3, 20).items_fault) << reason;
  }
  const ReleaseRule invalid = BatchLedger::RuleFor(v1::FAILURE_INVALID_REQUEST, 3, 20);
  EXPECT_TRUE(invalid.items_fault);
  EXPECT_EQ(invalid.max_attempts, 1);
  EXPECT_EQ(BatchLedger::RuleFor(v1::FAILURE_STORAGE, 3, 20).max_attempts, 20);
  const ReleaseRule internal = BatchLedger::RuleFor(v1::FAILURE_INTERNAL, 3, 20);
  EXPECT_TRUE(internal.items_fault);
  EXPECT_EQ(internal.max_attempts, 3);
  EXPECT_EQ(BatchLedger::RuleFor(v1::FAILURE_INVALID_RESULT, 3, 20).max_attempts, 3);
}

TEST(StoragePauseTest, DoublesFromOneSecondToThirtyAndResetsAfterAWrite) {
  StoragePause pause;
  EXPECT_FALSE(pause.Paused(0));
  EXPECT_EQ(pause.Failed(0), 1000);
  EXPECT_TRUE(pause.Paused(999));
  EXPECT_FALSE(pause.Paused(1000));
  EXPECT_EQ(pause.Failed(1000), 2000);
  EXPECT_TRUE(pause.Paused(2999));
  int64_t last = 0;
  for (int i = 0; i < 10; ++i) last = pause.Failed(5000);
  EXPECT_EQ(last, 30000);
  pause.Stored();
  EXPECT_EQ(pause.Failed(40000), 1000);
}

}  // namespace
}  // namespace spriteforge::coordinator
