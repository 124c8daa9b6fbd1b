// PostgreSQL-only behaviour of the store: a lease never waits on rows another transaction
// holds (SELECT ... FOR UPDATE SKIP LOCKED) but fails at once, and succeeds once they are
// free. The other transaction is a plain libpq connection standing for a second coordinator.
#include <gtest/gtest.h>

#include <chrono>

#include "coordinator/store/store.h"
#include "tests/coordinator/store/store_backends.h"
#ifdef SPRITEFORGE_WITH_POSTGRES
#include <libpq-fe.h>
#endif

namespace spriteforge::coordinator {
namespace {

TEST(PostgresStoreTest, ALeaseSkipsRowsAnotherTransactionHoldsInsteadOfWaiting) {
#ifndef SPRITEFORGE_WITH_POSTGRES
  GTEST_SKIP() << "built without libpq";
#else
  SPRITEFORGE_SKIP_WITHOUT_POSTGRES(testing::Backend::kPostgres);
  testing::TestDatabase db(testing::Backend::kPostgres);
  ASSERT_FALSE(db.spec().empty());
  auto store = Store::Open(db.spec());
  ASSERT_TRUE(store.ok()) << store.status();
  JobRecord job;
  job.id = "job-a";
  job.name = "a";
  job.model = "tiny-sdxl";
  std::vector<ItemRecord> items(2);
  items[1].index = 1;
  bool dedup = false;
  ASSERT_TRUE((*store)->CreateJob(job, items, &dedup).ok());

  PGconn* other = PQconnectdb(db.spec().c_str());
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

}  // namespace
}  // namespace spriteforge::coordinator
