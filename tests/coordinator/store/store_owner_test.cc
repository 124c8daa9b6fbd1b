// Job ownership in the store: a database made before jobs had owners is upgraded in place
// (its jobs belong to nobody), an owner's backlog counts only its unfinished work, and
// idempotency keys are per owner.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>

#include "coordinator/store/store.h"
#include "tests/coordinator/store/store_backends.h"

namespace spriteforge::coordinator {
namespace {

std::string TempDb(const std::string& name) {
  const std::string path = std::filesystem::temp_directory_path() / ("store_owner_" + name + ".db");
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return path;
}

JobRecord Job(const std::string& id, const std::string& owner) {
  JobRecord job;
  job.id = id;
  job.name = "potions";
  job.model = "tiny-sdxl";
  job.owner = owner;
  return job;
}

std::vector<ItemRecord> Items(int n) {
  std::vector<ItemRecord> items(n);
  for (int i = 0; i < n; ++i) {
    items[i].index = i;
    items[i].image.set_prompt("potion");
  }
  return items;
}

TEST(StoreOwnerTest, ADatabaseWithoutOwnersIsUpgradedAndKeepsItsJobs) {
  const std::string path = TempDb("upgrade");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  // The jobs and items tables as the first schema made them.
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
                         "name TEXT NOT NULL, model TEXT NOT NULL, priority INTEGER NOT NULL, state INTEGER NOT NULL, "
                         "created_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL DEFAULT 0, "
                         "finished_ms INTEGER NOT NULL DEFAULT 0, idempotency_key TEXT, "
                         "postprocess TEXT NOT NULL DEFAULT '');"
                         "CREATE UNIQUE INDEX jobs_key ON jobs(idempotency_key) WHERE idempotency_key <> '';"
                         "CREATE TABLE items(job_id TEXT NOT NULL REFERENCES jobs(id), idx INTEGER NOT NULL, "
                         "prompt TEXT NOT NULL, negative TEXT, seed INTEGER NOT NULL, random_seed INTEGER NOT NULL, "
                         "width INTEGER NOT NULL, height INTEGER NOT NULL, steps INTEGER NOT NULL, cfg REAL NOT NULL, "
                         "sampler TEXT NOT NULL, schedule TEXT NOT NULL, model TEXT NOT NULL, "
                         "tileable INTEGER NOT NULL, state INTEGER NOT NULL, batch_id TEXT NOT NULL DEFAULT '', "
                         "worker_id TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0, "
                         "image_path TEXT NOT NULL DEFAULT '', sprite_path TEXT NOT NULL DEFAULT '', "
                         "failure INTEGER NOT NULL DEFAULT 0, failure_message TEXT NOT NULL DEFAULT '', "
                         "done_ms INTEGER NOT NULL DEFAULT 0, workflow TEXT NOT NULL DEFAULT '', "
                         "PRIMARY KEY(job_id, idx));"
                         "INSERT INTO jobs(id, name, model, priority, state, created_ms, idempotency_key) "
                         "VALUES('job-old', 'old', 'tiny-sdxl', 0, 1, 5, 'nightly');",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = Store::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  auto old = (*store)->GetJob("job-old");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->owner, "");
  bool dedup = false;
  JobRecord alices = Job("job-new", "alice");
  alices.idempotency_key = "nightly";  // the old job's key, which had no owner: alice's is another
  ASSERT_TRUE((*store)->CreateJob(alices, Items(1), &dedup).ok());
  EXPECT_FALSE(dedup);
  EXPECT_EQ((*store)->GetJob("job-new")->owner, "alice");
  store->reset();
  auto again = Store::Open(path);  // a second open finds the column and leaves it
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->GetJob("job-new")->owner, "alice");
}

class StoreOwnerBackendTest : public ::testing::TestWithParam<testing::Backend> {};
SPRITEFORGE_ALL_STORE_BACKENDS(StoreOwnerBackendTest);

TEST_P(StoreOwnerBackendTest, IdempotencyKeysArePerOwner) {
  SPRITEFORGE_SKIP_WITHOUT_POSTGRES(GetParam());
  testing::TestDatabase db(GetParam());
  auto store = Store::Open(db.spec());
  ASSERT_TRUE(store.ok()) << store.status();
  auto create = [&](const std::string& id, const std::string& owner, bool* dedup) {
    JobRecord job = Job(id, owner);
    job.idempotency_key = "nightly-1";
    auto stored = (*store)->CreateJob(job, Items(1), dedup);
    EXPECT_TRUE(stored.ok()) << stored.status();
    return stored.ok() ? stored->id : "";
  };
  bool dedup = false;
  EXPECT_EQ(create("a1", "alice", &dedup), "a1");
  // Bob's key is his own: neither alice's job nor a refusal comes back.
  EXPECT_EQ(create("b1", "bob", &dedup), "b1");
  EXPECT_FALSE(dedup);
  EXPECT_EQ(create("a2", "alice", &dedup), "a1");
  EXPECT_TRUE(dedup);
}

TEST_P(StoreOwnerBackendTest, BacklogAndListingArePerOwner) {
  SPRITEFORGE_SKIP_WITHOUT_POSTGRES(GetParam());
  testing::TestDatabase db(GetParam());
  ASSERT_FALSE(db.spec().empty());
  auto store = Store::Open(db.spec());
  ASSERT_TRUE(store.ok()) << store.status();
  bool dedup = false;
  ASSERT_TRUE((*store)->CreateJob(Job("a1", "alice"), Items(3), &dedup).ok());
  ASSERT_TRUE((*store)->CreateJob(Job("a2", "alice"), Items(4), &dedup).ok());
  ASSERT_TRUE((*store)->CreateJob(Job("b1", "bob"), Items(5), &dedup).ok());
  auto alice = (*store)->OwnerBacklog("alice");
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->jobs, 2);
  EXPECT_EQ(alice->images, 7);
  ASSERT_TRUE((*store)->CancelJob("a2", 10).ok());
  EXPECT_EQ((*store)->OwnerBacklog("alice")->images, 3);
  EXPECT_EQ((*store)->OwnerBacklog("alice")->jobs, 1);
  EXPECT_EQ((*store)->OwnerBacklog("carol")->jobs, 0);
  auto bobs = (*store)->ListJobs(10, std::string("bob"));
  ASSERT_TRUE(bobs.ok());
  ASSERT_EQ(bobs->size(), 1u);
  EXPECT_EQ((*bobs)[0].id, "b1");
  EXPECT_EQ((*store)->ListJobs(10)->size(), 3u);
}

}  // namespace
}  // namespace spriteforge::coordinator
