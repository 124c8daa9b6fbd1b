// PostgreSQL-only behaviour of the store: a lease never waits on rows another transaction
// holds (SELECT ... FOR UPDATE SKIP LOCKED) but fails at once, and succeeds once they are
// free. The other transaction is a plain libpq connection standing for a second coordinator.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <thread>

#include "coordinator/store/store.h"
#include "tests/coordinator/store/store_backends.h"
#ifdef SPRITEFORGE_WITH_POSTGRES
#include <libpq-fe.h>
#endif

namespace spriteforge::coordinator {
namespace {

// Each test on a database of its own on the server SPRITEFORGE_TEST_POSTGRES names; skipped
// without one or without libpq.
class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef SPRITEFORGE_WITH_POSTGRES
    GTEST_SKIP() << "built without libpq";
#else
    SPRITEFORGE_SKIP_WITHOUT_POSTGRES(testing::Backend::kPostgres);
    db_.emplace(testing::Backend::kPostgres);
    ASSERT_FALSE(db_->spec().empty());
#endif
  }

  const std::string& spec() const { return db_->spec(); }

  // The job the tests lease from.
  static JobRecord JobA() {
    JobRecord job;
    job.id = "job-a";
    job.name = "a";
    job.model = "tiny-sdxl";
    return job;
  }

 private:
  std::optional<testing::TestDatabase> db_;
};

TEST_F(PostgresStoreTest, ALeaseSkipsRowsAnotherTransactionHoldsInsteadOfWaiting) {
#ifdef SPRITEFORGE_WITH_POSTGRES
  auto store = Store::Open(spec());
  ASSERT_TRUE(store.ok()) << store.status();
  const JobRecord job = JobA();
  std::vector<ItemRecord> items(2);
  items[1].index = 1;
  bool dedup = false;
  ASSERT_TRUE((*store)->CreateJob(job, items, &dedup).ok());

  PGconn* other = PQconnectdb(spec().c_str());
  ASSERT_EQ(PQstatus(other), CONNECTION_OK) << PQerrorMessage(other);
  for (const char* sql : {"BEGIN", "SELECT idx FROM items WHERE job_id = 'job-a' AND idx = 1 FOR UPDATE"}) {
    PGresult* r = PQexec(other, sql);
    ASSERT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
  }
  const auto start = std::chrono::steady_clock::now();
  auto held = (*store)->Lease("b1", "w1", {{"job-a", 0}, {"job-a", 1}}, 5000, 100);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2)) << "the lease waited for the lock";
  EXPECT_EQ(held.code(), absl::StatusCode::kFailedPrecondition) << held;
  EXPECT_EQ((*store)->Counts("job-a")->queued, 2);  // nothing half-leased
  EXPECT_TRUE((*store)->Lease("b0", "w1", {{"job-a", 0}}, 5000, 100).ok());  // an unlocked row leases
  PQclear(PQexec(other, "ROLLBACK"));
  PQfinish(other);
  EXPECT_TRUE((*store)->Lease("b1", "w1", {{"job-a", 1}}, 5000, 100).ok());
  EXPECT_EQ((*store)->Counts("job-a")->running, 2);
#endif
}

// A leader stopped inside its result transaction (here: its `place` stalls, as a SIGSTOP
// would) holds the leader row's share lock; the server ends its session after
// idle_in_transaction_session_timeout (200 ms here, 2 s by default), so a takeover waits that
// long at most, not for the stopped leader; the stalled placement finds its deadline passed
// (nothing may be placed) and nothing of the old leader's is recorded.
TEST_F(PostgresStoreTest, ALeaderStoppedInsideAResultTransactionHoldsATakeoverOffOnlyUntilItsIdleLimit) {
#ifdef SPRITEFORGE_WITH_POSTGRES
  auto leader = Store::Open(spec() + "%20-cidle_in_transaction_session_timeout%3D200");
  ASSERT_TRUE(leader.ok()) << leader.status();
  auto standby = Store::Open(spec());
  ASSERT_TRUE(standby.ok()) << standby.status();
  bool dedup = false;
  ASSERT_TRUE((*leader)->CreateJob(JobA(), std::vector<ItemRecord>(1), &dedup).ok());
  auto free = (*leader)->ReadLeader();
  ASSERT_TRUE(*(*leader)->ClaimLeader(*free, "a", "10.0.0.1:50051", 100));
  (*leader)->SetFencingEpoch((*leader)->ReadLeader()->epoch);
  ASSERT_TRUE((*leader)->Lease("b1", "w1", {{"job-a", 0}}, 5000, 100).ok());

  std::promise<void> inside;
  std::atomic<bool> past_deadline{false};
  std::thread stopped([&] {
    auto recorded = (*leader)->CompleteItems(
        {{"b1", {"job-a", 0}, "/out/0.png", ""}}, 200,
        [&](const std::vector<bool>& accepted, std::chrono::steady_clock::time_point deadline) {
          inside.set_value();
          std::this_thread::sleep_for(std::chrono::milliseconds(800));
          past_deadline = std::chrono::steady_clock::now() >= deadline;
          return accepted;  // what a leader that does not look at its deadline would do
        });
    EXPECT_FALSE(recorded.ok()) << "a result transaction the server ended was recorded";
  });
  inside.get_future().wait();
  const auto start = std::chrono::steady_clock::now();
  auto lapsed = (*standby)->ReadLeader();
  while (lapsed.ok() && lapsed->now_ms <= lapsed->expires_ms) lapsed = (*standby)->ReadLeader();
  ASSERT_TRUE(lapsed.ok()) << lapsed.status();
  auto took = (*standby)->ClaimLeader(*lapsed, "b", "10.0.0.2:50051", 60000);
  const auto waited = std::chrono::steady_clock::now() - start;
  stopped.join();
  ASSERT_TRUE(took.ok()) << took.status();
  EXPECT_TRUE(*took);
  EXPECT_LT(waited, std::chrono::milliseconds(650)) << "the takeover waited for the stopped leader";
  EXPECT_TRUE(past_deadline);
  EXPECT_EQ((*standby)->Counts("job-a")->done, 0);
#endif
}

}  // namespace
}  // namespace spriteforge::coordinator
