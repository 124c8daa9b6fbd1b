// Active/standby between coordinators sharing a database, on real stores of both backends:
// the pure decision, a standby waiting while the leader renews, taking over once the leader
// stops renewing, and the old leader finding out it lost.
#include "coordinator/core/leader.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/coordinator/store/store_backends.h"

namespace spriteforge::coordinator {
namespace {

using testing::Backend;
using testing::TestDatabase;

TEST(LeaderMoveTest, RenewOwnTakeFreeOrLapsedFollowOthers) {
  EXPECT_EQ(DecideLeaderMove({"", "", 0, 1000}, "a"), LeaderMove::kTakeOver);
  EXPECT_EQ(DecideLeaderMove({"a", "x:1", 2000, 1000}, "a"), LeaderMove::kRenew);
  EXPECT_EQ(DecideLeaderMove({"a", "x:1", 500, 1000}, "a"), LeaderMove::kRenew);  // late, still its own
  EXPECT_EQ(DecideLeaderMove({"b", "y:1", 2000, 1000}, "a"), LeaderMove::kFollow);
  EXPECT_EQ(DecideLeaderMove({"b", "y:1", 2000, 2000}, "a"), LeaderMove::kFollow);  // lapses after, not at
  EXPECT_EQ(DecideLeaderMove({"b", "y:1", 999, 1000}, "a"), LeaderMove::kTakeOver);
}

class LeaderLeaseTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    SPRITEFORGE_SKIP_WITHOUT_POSTGRES(GetParam());
    db_ = std::make_unique<TestDatabase>(GetParam());
    ASSERT_FALSE(db_->spec().empty());
    ASSERT_TRUE(Store::Open(db_->spec()).ok());  // makes the schema
  }
  std::unique_ptr<LeaderLeaseKeeper> Keeper(const std::string& id) {
    auto store = Store::Open(db_->spec());
    EXPECT_TRUE(store.ok()) << store.status();
    return std::make_unique<LeaderLeaseKeeper>(std::move(*store), LeaderOptions{id, id + ":50051", 600, 100});
  }
  std::unique_ptr<TestDatabase> db_;
};
SPRITEFORGE_ALL_STORE_BACKENDS(LeaderLeaseTest);

TEST_P(LeaderLeaseTest, TheStandbyWaitsWhileTheLeaderRenewsThenTakesOver) {
  auto a = Keeper("a"), b = Keeper("b");
  std::atomic<bool> stop{false};
  ASSERT_TRUE(a->WaitToLead(stop, [](const LeaderLease&) {}).ok());

  std::atomic<bool> b_leads{false};
  std::string followed;
  std::thread standby([&] {
    b_leads = b->WaitToLead(stop, [&](const LeaderLease& lease) { followed = lease.address; }).ok();
  });
  // Two lease lengths of renewals: b must not lead meanwhile.
  const auto renew_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1200);
  while (std::chrono::steady_clock::now() < renew_until) {
    ASSERT_TRUE(a->Renew().ok());
    EXPECT_FALSE(b_leads);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // a stops renewing (as if killed): b leads within the lease and a poll.
  const auto stopped = std::chrono::steady_clock::now();
  standby.join();
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - stopped);
  EXPECT_TRUE(b_leads);
  EXPECT_EQ(followed, "a:50051");
  EXPECT_LT(waited.count(), 600 + 100 + 500);
  // a, were it alive, finds out at its next renewal.
  absl::Status lost = a->Renew();
  EXPECT_EQ(lost.code(), absl::StatusCode::kAborted) << lost;
  EXPECT_NE(lost.message().find("b:50051"), std::string::npos) << lost;
  EXPECT_TRUE(b->Renew().ok());
}

TEST_P(LeaderLeaseTest, AReleasedLeaseIsTakenAtTheNextPoll) {
  auto a = Keeper("a"), b = Keeper("b");
  std::atomic<bool> stop{false};
  ASSERT_TRUE(a->WaitToLead(stop, [](const LeaderLease&) {}).ok());
  a->Release();
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(b->WaitToLead(stop, [](const LeaderLease&) {}).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
}

// Each takeover moves the epoch on (the fencing token of the new leader's writes); a
// leader's renewals and release keep it.
TEST_P(LeaderLeaseTest, EachTakeoverLeadsInTheNextEpoch) {
  auto a = Keeper("a"), b = Keeper("b");
  std::atomic<bool> stop{false};
  ASSERT_TRUE(a->WaitToLead(stop, [](const LeaderLease&) {}).ok());
  EXPECT_EQ(a->epoch(), 1);
  ASSERT_TRUE(a->Renew().ok());
  a->Release();
  ASSERT_TRUE(b->WaitToLead(stop, [](const LeaderLease&) {}).ok());
  EXPECT_EQ(b->epoch(), 2);
}

TEST_P(LeaderLeaseTest, AStandbyStopsWaitingWhenAskedTo) {
  auto a = Keeper("a"), b = Keeper("b");
  std::atomic<bool> stop{false};
  ASSERT_TRUE(a->WaitToLead(stop, [](const LeaderLease&) {}).ok());
  int polls = 0;
  EXPECT_EQ(b->WaitToLead(stop,
                          [&](const LeaderLease&) {
                            if (++polls == 2) stop = true;
                          })
                .code(),
            absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace spriteforge::coordinator
